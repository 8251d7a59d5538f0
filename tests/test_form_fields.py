"""render_field (form_fields.py, issue 8) draws what the Jinja macro it replaced drew, for
every field of every form in the app, blank and refused, with and without the hint, unit,
size, input mode, class and autofocus a template passes. Whitespace between tags aside (the
macro's came from its indentation), the markup is the same."""

import importlib
import pkgutil
import re

import pytest
from flask_wtf import FlaskForm

import infusion_tracker
from infusion_tracker.form_fields import render_field

# The macro as it stood in templates/_macros/forms.html before it became Python.
MACRO = """{% macro render_field(field, hint=None, unit=None, size=None, class_="", inputmode=None, autofocus=False) %}
{% set field_id = field.id %}
{% set hint_text = hint or field.description %}
{% set describedby = [] %}
{% if hint_text %}{% set _ = describedby.append(field_id ~ '-hint') %}{% endif %}
{% if field.errors %}{% set _ = describedby.append(field_id ~ '-error') %}{% endif %}
{% set attrs = {} %}
{% if describedby %}{% set _ = attrs.update({'aria-describedby': describedby|join(' ')}) %}{% endif %}
{% if field.errors %}{% set _ = attrs.update({'aria-invalid': 'true'}) %}{% endif %}
{% if inputmode %}{% set _ = attrs.update({'inputmode': inputmode}) %}{% endif %}
{% if size %}{% set _ = attrs.update({'size': size}) %}{% endif %}
{% if autofocus %}{% set _ = attrs.update({'autofocus': True}) %}{% endif %}
{% if field.type == 'BooleanField' %}
<div class="field field--checkbox {{ class_ }}{% if field.errors %} field--error{% endif %}">
  {{ field(class_="checkbox", **attrs) }}
  {{ field.label(class_="field__label field__label--inline") }}
  {% if hint_text %}<p class="field__hint" id="{{ field_id }}-hint">{{ hint_text }}</p>{% endif %}
  {% for error in field.errors %}<p class="field__error" id="{{ field_id }}-error"><span class="visually-hidden">Error:</span> {{ error }}</p>{% endfor %}
</div>
{% elif field.type in ('RadioField',) %}
<fieldset class="field field--radios {{ class_ }}{% if field.errors %} field--error{% endif %}" id="{{ field_id }}">
  <legend class="field__label">{{ field.label.text }}</legend>
  {% if hint_text %}<p class="field__hint" id="{{ field_id }}-hint">{{ hint_text }}</p>{% endif %}
  {% for error in field.errors %}<p class="field__error" id="{{ field_id }}-error"><span class="visually-hidden">Error:</span> {{ error }}</p>{% endfor %}
  <div class="radios">
  {% for option in field %}
    <div class="radio">{{ option() }} {{ option.label() }}</div>
  {% endfor %}
  </div>
</fieldset>
{% else %}
<div class="field {{ class_ }}{% if field.errors %} field--error{% endif %}">
  {{ field.label(class_="field__label") }}
  {% if hint_text %}<p class="field__hint" id="{{ field_id }}-hint">{{ hint_text }}</p>{% endif %}
  {% for error in field.errors %}<p class="field__error" id="{{ field_id }}-error"><span class="visually-hidden">Error:</span> {{ error }}</p>{% endfor %}
  <div class="field__control">
    {{ field(class_="input", **attrs) }}{% if unit %}<span class="field__unit">{{ unit }}</span>{% endif %}
  </div>
</div>
{% endif %}
{% endmacro %}
"""  # noqa: E501 (verbatim)

VARIANTS = [
    {},
    {"hint": 'Last 120 <b>"high"</b>', "unit": "mmHg", "size": 5, "inputmode": "numeric"},
    {"class_": "field--wide", "autofocus": True},
    {"unit": "mg/kg", "size": 4, "class_": 'x" onclick="y'},
]


def all_form_classes() -> list[type]:
    for module in pkgutil.walk_packages(infusion_tracker.__path__, "infusion_tracker."):
        if not module.name.split(".")[-1].startswith("migrations"):
            importlib.import_module(module.name)
    found, todo = [], list(FlaskForm.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__name__}")


def blank(cls):
    """The form as a page draws it before anything is typed; None for a form that needs
    what only its page has (a session, a patient)."""
    try:
        return cls(formdata=None)
    except (TypeError, AttributeError, KeyError):
        return None


def normal(html) -> str:
    text = re.sub(r"\s+", " ", str(html)).strip()
    return re.sub(r">\s+<", "><", text)


@pytest.fixture
def oracle(app):
    return app.jinja_env.from_string(MACRO + "{{ render_field(field, **options) }}")


def test_every_field_of_every_form_is_drawn_as_the_macro_drew_it(app, oracle):
    classes = all_form_classes()
    fields = 0
    with app.test_request_context():
        forms = [form for form in map(blank, classes) if form is not None]
        assert len(forms) >= 0.8 * len(classes), [c.__name__ for c in classes]
        for form in forms:
            for field in form:
                if field.type in ("CSRFTokenField", "HiddenField", "SubmitField"):
                    continue
                for refused in (False, True):
                    field.errors = ['Must be <b>below</b> 300 & "whole"'] if refused else []
                    for options in VARIANTS:
                        ours = render_field(field, **options)
                        theirs = oracle.render(field=field, options=options)
                        assert normal(ours) == normal(theirs), (type(form).__name__, field.name)
                        fields += 1
    assert fields > 400


def test_an_option_and_its_label_stay_apart_and_a_unit_sits_against_its_box(app):
    from infusion_tracker.infusions.reading_forms import ReadingForm

    with app.test_request_context():
        form = ReadingForm(formdata=None, prefix="reading")
        phase = str(render_field(form.phase))
        systolic = str(render_field(form.systolic, unit="mmHg"))
    assert '<input id="reading-phase-0" name="reading-phase" required type="radio"' in phase
    assert 'value="baseline"> <label for="reading-phase-0">Baseline</label>' in phase
    assert 'value=""><span class="field__unit">mmHg</span>' in systolic
