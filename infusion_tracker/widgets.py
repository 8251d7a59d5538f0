"""WTForms' html_params, the same output written faster.

WTForms draws each attribute of every input, label and option with Markup.format, a
string.Formatter that escapes through Python calls: on the session page that was a fifth of
the request's CPU (bench/RESULTS.md, Stop 16). This writes the same bytes with an f-string;
tests/test_widgets.py checks it against WTForms' own function on generated attributes, so a
WTForms upgrade that changes the output is caught there.
"""

from __future__ import annotations

import wtforms.widgets
from markupsafe import Markup, escape
from wtforms.widgets import core

WTFORMS_HTML_PARAMS = core.html_params


# Attribute names as written ("class_" -> "class", "data_x" -> "data-x"), escaped: the names
# come from the code, so there are a few dozen of them.
_NAMES: dict[str, str] = {}


def _name(key: str) -> str:
    name = _NAMES.get(key)
    if name is None:
        name = _NAMES[key] = str(escape(core.clean_key(key)))
    return name


def html_params(**kwargs) -> Markup:
    params = []
    for key, value in sorted(kwargs.items()):
        if value is True:
            params.append(_name(key))
        elif value is not False:
            # escape() leaves a Markup value as it is: its quotes are escaped here, as WTForms does
            # (on the plain string: Markup.replace would escape its own arguments).
            text = str(escape(value)).replace('"', "&quot;")
            params.append(f'{_name(key)}="{text}"')
    return Markup(" ".join(params))  # noqa: S704 (every part escaped above)


def install() -> None:
    """Every WTForms widget and label draws its attributes with html_params above."""
    core.html_params = html_params
    wtforms.widgets.html_params = html_params  # what Label calls (fields/core.py)
    for widget in (core.Input, core.Button):  # the two that hold it as a static method
        widget.html_params = staticmethod(html_params)
    # A select asked inspect.signature, on each drawing, whether a subclass changed how
    # render_option is called (30 µs a select); none here does.
    core.Select._dispatch_render_option = classmethod(lambda cls: cls.render_option)
