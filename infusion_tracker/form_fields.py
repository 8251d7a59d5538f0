"""One way to draw every input: label above, hint under it, the error beside it, the typed
value kept. A template global (`render_field(form.systolic, unit="mmHg", size=5)`).

Python rather than a Jinja macro: the session page draws a few dozen fields, and a macro call
with its set-statements cost more than WTForms drawing the input itself (bench/RESULTS.md,
Stop 17). tests/test_form_fields.py checks it against the macro it replaced, field by field,
on every form of the app. Every value written here goes through escape() or is WTForms'
Markup (hence the S704 exemptions).
"""

from __future__ import annotations

from markupsafe import Markup, escape


def _hint(field_id: str, hint_text) -> str:
    if not hint_text:
        return ""
    return f'<p class="field__hint" id="{field_id}-hint">{escape(hint_text)}</p>\n'


def _errors(field_id: str, errors) -> str:
    return "".join(
        f'<p class="field__error" id="{field_id}-error">'
        f'<span class="visually-hidden">Error:</span> {escape(error)}</p>\n'
        for error in errors
    )


def render_field(
    field,
    hint=None,
    unit=None,
    size=None,
    class_="",
    inputmode=None,
    autofocus=False,
) -> Markup:
    field_id = escape(field.id)
    hint_text = hint or field.description
    errors = field.errors
    describedby = []
    if hint_text:
        describedby.append(f"{field.id}-hint")
    if errors:
        describedby.append(f"{field.id}-error")
    attrs = {}
    if describedby:
        attrs["aria-describedby"] = " ".join(describedby)
    if errors:
        attrs["aria-invalid"] = "true"
    if inputmode:
        attrs["inputmode"] = inputmode
    if size:
        attrs["size"] = size
    if autofocus:
        attrs["autofocus"] = True
    error_class = " field--error" if errors else ""
    notes = _hint(field_id, hint_text) + _errors(field_id, errors)

    if field.type == "BooleanField":
        return Markup(  # noqa: S704
            f'<div class="field field--checkbox {escape(class_)}{error_class}">\n'
            f'{field(class_="checkbox", **attrs)}\n'
            f'{field.label(class_="field__label field__label--inline")}\n'
            f"{notes}</div>\n"
        )
    if field.type == "RadioField":
        options = "".join(
            f'<div class="radio">{option()} {option.label()}</div>\n' for option in field
        )
        return Markup(  # noqa: S704
            f'<fieldset class="field field--radios {escape(class_)}{error_class}"'
            f' id="{field_id}">\n'
            f'<legend class="field__label">{escape(field.label.text)}</legend>\n'
            f'{notes}<div class="radios">\n{options}</div>\n</fieldset>\n'
        )
    unit_html = f'<span class="field__unit">{escape(unit)}</span>' if unit else ""
    return Markup(  # noqa: S704
        f'<div class="field {escape(class_)}{error_class}">\n'
        f'{field.label(class_="field__label")}\n'
        f"{notes}"
        f'<div class="field__control">\n{field(class_="input", **attrs)}{unit_html}\n</div>\n'
        f"</div>\n"
    )
