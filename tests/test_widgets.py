"""The faster html_params (widgets.py, issue 8) writes exactly what WTForms' own writes, for
any attributes: names with underscores, data_ and aria_ names, True and False, numbers,
text with quotes and markup, and Markup values."""

from hypothesis import given
from hypothesis import strategies as st
from markupsafe import Markup
from wtforms import Form, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Length
from wtforms.widgets import core

from infusion_tracker import widgets

names = st.from_regex(r"(data_|aria_)?[a-z][a-z_]{0,8}", fullmatch=True)
values = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.text().map(Markup),
    st.sampled_from(['say "hi"', "<b>&amp;</b>", Markup('<i title="x">'), "it's"]),
)


@given(st.dictionaries(names, values, max_size=6))
def test_the_same_bytes_as_wtforms(attributes):
    assert widgets.html_params(**attributes) == widgets.WTFORMS_HTML_PARAMS(**attributes)


class Sample(Form):
    name = StringField("Name", [InputRequired(), Length(max=20)])
    kind = SelectField(
        "Kind", choices=[SelectChoice("a", 'A "quoted" <one>'), SelectChoice("b", "B & C")]
    )


def drawn(form) -> list[str]:
    return [
        str(form.name(class_="input", aria_describedby="h")),
        str(form.kind()),
        str(form.name.label(class_="field__label")),
    ]


def test_the_app_draws_fields_with_it_and_they_come_out_the_same(app, monkeypatch):
    form = Sample(data={"name": 'O"Brien <x>', "kind": "b"})
    assert core.html_params is widgets.html_params  # create_app installed it
    ours = drawn(form)
    monkeypatch.setattr(core, "html_params", widgets.WTFORMS_HTML_PARAMS)
    for widget in (core.Input, core.Button):
        monkeypatch.setattr(widget, "html_params", staticmethod(widgets.WTFORMS_HTML_PARAMS))
    assert ours == drawn(form)
    assert ours[0] == (
        '<input aria-describedby="h" class="input" id="name" maxlength="20" name="name" required'
        ' type="text" value="O&#34;Brien &lt;x&gt;">'
    )
