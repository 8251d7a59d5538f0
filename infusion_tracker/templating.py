"""Jinja filters and globals: clinic time, display units, status words, the page's header."""

from collections.abc import Callable
from functools import lru_cache

from flask import current_app, render_template, request, url_for
from flask.templating import Environment as FlaskEnvironment
from flask_login import current_user
from markupsafe import Markup, escape

from . import clinical, timeutil, units, vocab
from .form_fields import render_field
from .memo import drawn


def format_mg(mg: float | None) -> str:
    """A dose in mg as every page and export shows it: clinical.round_mg, one decimal."""
    return "—" if mg is None else f"{clinical.round_mg(mg):.1f}"


class Environment(FlaskEnvironment):
    """Flask's Jinja environment, with each template's globals a plain dict taken when the
    template is first loaded (create_app has set every global by then), not a ChainMap over
    the environment's. Jinja compares a page's globals with a macro file's each time the page
    imports it (`{% from ... import ... %}`: the layout once, a session page eight times); over
    a ChainMap the comparison ran in Python, 150 calls an import (bench/RESULTS.md, Stop 35)."""

    def make_globals(self, d):
        return {**self.globals, **(d or {})}


def register(app) -> None:
    app.jinja_env.filters["clinic_datetime"] = timeutil.format_datetime
    app.jinja_env.filters["clinic_time"] = timeutil.format_time
    app.jinja_env.filters["temperature"] = lambda c: units.format_temperature(
        c, current_app.config["UNITS"]
    )
    app.jinja_env.filters["weight"] = lambda kg: units.format_weight(
        kg, current_app.config["UNITS"]
    )
    app.jinja_env.filters["mg"] = format_mg
    app.jinja_env.filters["o2"] = units.format_o2
    app.jinja_env.globals["units_system"] = lambda: current_app.config["UNITS"]
    app.jinja_env.globals["clinic_name"] = lambda: current_app.config["CLINIC_NAME"]
    app.jinja_env.globals["site_header"] = site_header
    # Code -> words and code -> status_tag kind, for templates (e.g. vocab.STATUS_KINDS).
    app.jinja_env.globals["vocab"] = vocab
    app.jinja_env.globals["status_tag"] = status_tag
    app.jinja_env.filters["level_tag"] = level_tag
    app.jinja_env.globals["render_field"] = render_field
    app.jinja_env.globals["id_url"] = id_url
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True


# A number no row has: url_for writes it once, and each row's id goes where it stands.
_ID_SLOT = str(9_080_706_050_403)


def id_url(endpoint: str, name: str, **values) -> Callable[[int], str]:
    """url_for(endpoint, **values, name=<id>) for each of a table's rows, from one url_for: a
    call costs about 20 µs, and a table asked it once or twice a row (a patient page's thirty
    sessions, a session's readings: bench/RESULTS.md, Stop 35)."""
    url = url_for(endpoint, **values, **{name: _ID_SLOT})
    if url.count(_ID_SLOT) != 1:  # the slot's digits in another value: ask for each row
        return lambda row_id: url_for(endpoint, **values, **{name: row_id})
    head, _, tail = url.partition(_ID_SLOT)
    return lambda row_id: f"{head}{int(row_id)}{tail}"


# Status words as markup. Python functions rather than Jinja macros: a macro call (or
# Markup.format, a pure-Python formatter) costs several times an f-string of escaped values
# (bench/RESULTS.md, "Stop 15"); the readings table's cells, which call them most, are drawn in
# Python too (infusions/reading_cells). Every value put into these strings goes through
# escape() (hence the S704 exemptions).
# A few dozen words and kinds in all, drawn a dozen times a page: each drawn once. `typed`:
# markup and plain text with the same letters are not the same tag.
@lru_cache(maxsize=512, typed=True)
def status_tag(text, kind: str = "neutral") -> Markup:
    """Status in words and colour together, never colour alone."""
    return Markup(f'<span class="tag tag--{escape(kind)}">{escape(text)}</span>')  # noqa: S704


_LEVEL_TAGS = {
    "critical": Markup(" ") + status_tag("CRITICAL", "critical"),
    "abnormal": Markup(" ") + status_tag("abnormal", "abnormal"),
}


def level_tag(level: str | None) -> Markup:
    """A flagged value says so in a word, not by colour alone."""
    return _LEVEL_TAGS.get(level, Markup())


def nav_items() -> list[tuple[str, str, int | None]]:
    """Role-aware navigation: (endpoint, label, badge count)."""
    from .models import ROLE_ADMIN, ROLE_PHYSICIAN

    if current_user.role == ROLE_ADMIN:
        items = [("admin.staff_list", "Staff"), ("admin.audit_log", "Audit log")]
        items.append(("devices.device_list", "Monitors"))
    else:
        items = [("main.board", "Suite"), ("patients.search", "Patients")]
        if current_user.role == ROLE_PHYSICIAN:
            items.append(("review.queue", "Review"))
        items.append(("protocols.index", "Protocols"))
    items += [("ledger.stock", "Ledger")] + (  # issue 11
        [("quality.report", "Quality")] if current_user.role in (ROLE_ADMIN, ROLE_PHYSICIAN) else []
    )
    result = []
    for endpoint, label in items:
        if endpoint not in current_app.view_functions:
            continue
        badge = None
        if endpoint == "review.queue":
            from .review.services import awaiting_count  # the queue's own count

            badge = awaiting_count() or None
        result.append((endpoint, label, badge))
    return result


def site_header() -> Markup:
    """The header every page opens with (the clinic's name, the navigation with the review
    queue's count, who is signed in and Sign out), kept drawn under what it shows: each page
    view drew its dozen links again (bench/RESULTS.md, Stop 28). Sign out's CSRF token is
    filled in on each view (memo.keep)."""
    nav: tuple = ()
    current = None
    if current_user.is_authenticated:
        nav = tuple(nav_items())
        # The page's own entry is marked as the current one; any other page marks none.
        current = next((item[0] for item in nav if item[0] == request.endpoint), None)
        who = (current_user.display_name, current_user.role_label)
    else:
        who = None
    key = (who, nav, current, current_app.config["CLINIC_NAME"], request.script_root)
    return drawn(
        "site_headers",
        key,
        lambda: render_template("_site_header.html", nav=nav, current=current),
        size=256,
    )
