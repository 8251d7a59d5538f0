"""The readings table's two rows per reading, as templates/infusions/_readings_table.html
drew them: its values (time, BP, HR, RR, SpO2 and O2, temperature, rhythm, AVPU, MOAA/S, pain,
NEWS2: values_row), then who charted it, its note, flags, answer, void and actions
(about_row).

Python rather than the template: a session's first view draws 40 of each. In Jinja a values
row cost 37 µs (an attribute lookup, an escape and a filter call per value), 1.5 ms of the
page (bench/RESULTS.md, Stop 26); the table's first draw went 2.90 -> 2.47 ms again with the
second row here (Stop 27). The same HTML byte for byte, whitespace included. Every text goes
through escape() (hence the S704 exemption); numbers are written as digits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup, escape

from ..templating import id_url, level_tag, status_tag
from ..timeutil import format_time
from ..units import format_o2, format_temperature
from ..vocab import NEWS2_RISK_KINDS

# A cell's indentation, as the template wrote it.
CELL = "        "


# A value and its flag level, a score and its risk: a few hundred of each in all, drawn
# hundreds of times a page. `typed`: 98 and 98.0 are equal keys, but not the same text.
@lru_cache(maxsize=4096, typed=True)
def flagged(text, level: str | None) -> str:
    """A value, coloured and worded by its flag level."""
    return f'<span class="{_class(level)}">{escape(text)}</span>{level_tag(level)}'


@lru_cache(maxsize=256, typed=True)
def news2_tag(score: int | None, risk: str | None) -> str:
    if score is None:
        return ""
    tag = status_tag(risk, NEWS2_RISK_KINDS.get(risk, ""))
    return f'<span class="news2">{escape(score)}</span> {tag}'


def _flagged(value: int | None, level: str | None) -> str:
    return "" if value is None else flagged(value, level)


def _delta(change: int | None) -> str:
    return "" if change is None else f'<span class="delta">{change:+d}</span>'


def _class(level: str | None) -> str:
    return f"value--{escape(level)}" if level else ""


def values_row(
    r, row_class: str, units_system: str, hhmm: Callable[[datetime | None], str]
) -> Markup:
    """`r`: a page.TableLine; `hhmm`: its times in the clinic's zone (timeutil.formatter)."""
    levels = r.levels
    # Markup + str would escape the str: the cells are joined as plain strings.
    saved = f"{status_tag('Just saved', 'info')}" if r.just_saved else ""
    late = (
        f'<span class="reading__sub">entered {escape(hhmm(r.created_at))}</span>'
        if r.late
        else ""
    )
    time = (
        f"\n{CELL}  <strong>{escape(hhmm(r.taken_at))}</strong>"
        f'\n{CELL}  <span class="reading__sub">{escape(r.phase.capitalize())}</span>\n'
        f"{saved}{late}"
    )
    bp = ""
    if r.systolic is not None or r.diastolic is not None:
        systolic = "–" if r.systolic is None else r.systolic
        diastolic = "–" if r.diastolic is None else r.diastolic
        bp = (
            f'{CELL}  <span class="{_class(levels["systolic"])}">{systolic}</span>/'
            f'<span class="{_class(levels["diastolic"])}">{diastolic}</span>'
            f"{level_tag(r.bp_level)}\n"
        )
    heart_rate = _flagged(r.heart_rate, levels["heart_rate"])
    spo2 = "" if r.spo2 is None else flagged(f"{r.spo2} %", levels["spo2"])
    if r.o2_flow_lpm is not None:
        spo2 = f'{spo2}<span class="reading__sub">{format_o2(r.o2_flow_lpm)}</span>'
    temperature = "" if r.temperature_c is None else flagged(
        format_temperature(r.temperature_c, units_system), levels["temperature_c"]
    )
    cells = (
        f"{CELL}<td>{time}{CELL}</td>\n",
        f'{CELL}<td class="num">\n{bp}{_delta(r.systolic_delta)}{CELL}</td>\n',
        f'{CELL}<td class="num">\n{heart_rate}{_delta(r.heart_rate_delta)}{CELL}</td>\n',
        f'{CELL}<td class="num">{_flagged(r.resp_rate, levels["resp_rate"])}</td>\n',
        f'{CELL}<td class="num">\n{spo2}{CELL}</td>\n',
        f'{CELL}<td class="num">{temperature}</td>\n',
        f'{CELL}<td class="reading__rhythm">'
        f'{flagged(r.rhythm_short, levels["rhythm"]) if r.rhythm else ""}</td>\n',
        f'{CELL}<td>{flagged(r.avpu, levels["avpu"]) if r.avpu else ""}</td>\n',
        f'{CELL}<td class="num">{_flagged(r.moaas, levels["moaas"])}</td>\n',
        f'{CELL}<td class="num">{"" if r.pain is None else r.pain}</td>\n',
        f"{CELL}<td>{news2_tag(r.news2, r.news2_risk)}</td>\n",
    )
    return Markup(  # noqa: S704
        f'      <tr class="reading__values {escape(row_class)}">\n{"".join(cells)}      </tr>'
    )


# The about row's indentation: the row, its cell, the inner box, its notes and actions, the
# void form's parts.
ABOUT = "          "
NOTES = "              "
FORM = "                  "


def _answers(r) -> str:
    """The critical value's answer and the void or correction, each a line of its own."""
    lines = ""
    if r.critical_action == "reviewed":
        lines += (
            f'{NOTES}<span class="reading__answer">Reviewed, no action — '
            f"{escape(r.critical_action_by)} at {escape(format_time(r.critical_action_at))}: "
            f"{escape(r.critical_action_note)}</span>\n"
        )
    elif r.critical_action == "adverse_event":
        links = "".join(
            f' <a href="#adverse-event-{ae_id}">#{ae_id}</a>' for ae_id in r.answered_by
        )
        lines += f'{NOTES}<span class="reading__answer">Answered by adverse event{links}</span>\n'
    if r.voided:
        when = escape(format_time(r.voided_at))
        if r.corrected_by:
            links = "".join(f'<a href="#reading-{n}">#{n}</a>' for n in r.corrected_by)
            what = f"Corrected by {links} ({escape(r.voided_by)} at {when})"
        else:
            what = f"Voided by {escape(r.voided_by)} at {when}: {escape(r.void_reason)}"
        lines += f'{NOTES}<span class="reading__answer">\n{NOTES}{what}\n{NOTES}</span>\n'
    return lines


class RowLinks(NamedTuple):
    """Where a reading's Correct and Void go, by its id: built once for a table."""

    correct: Callable[[int], str]
    void: Callable[[int], str]


def row_links() -> RowLinks:
    return RowLinks(
        id_url("infusions.correct_reading", "reading_id"),
        id_url("infusions.void_reading", "reading_id"),
    )


def _void_form(r, csrf: str, void_reason_max: int, links: RowLinks) -> str:
    """Correct (a link) and Void (a reason and a button): plain HTML with the same names as
    ReasonForm(prefix="void-reading-<id>"), one CSRF token for every row (a WTForms form per
    row was most of this table's cost once)."""
    p = f"void-reading-{r.id}"
    correct = links.correct(r.id)
    void = links.void(r.id)
    return (
        f'{NOTES}<a class="button button--secondary button--small" href="{escape(correct)}">'
        "Correct</a>\n"
        f'{NOTES}<details class="row-void">\n'
        f'{NOTES}  <summary class="button button--secondary button--small">Void</summary>\n'
        f'{NOTES}  <form method="post" action="{escape(void)}" class="row-void__form">\n'
        f'{FORM}<input id="{p}-csrf_token" name="{p}-csrf_token" type="hidden" '
        f'value="{escape(csrf)}">\n'
        f'{FORM}<div class="field">\n'
        f'{FORM}  <label class="field__label" for="{p}-reason">Reason</label>\n'
        f'{FORM}  <div class="field__control"><input class="input" id="{p}-reason" '
        f'maxlength="{void_reason_max}" name="{p}-reason" required type="text" value="">'
        "</div>\n"
        f"{FORM}</div>\n"
        f'{FORM}<button type="submit" class="button button--warning button--small">'
        "Void reading</button>\n"
        f"{NOTES}  </form>\n"
        f"{NOTES}</details>\n"
    )


def about_row(r, row_class: str, csrf: str, void_reason_max: int, links: RowLinks) -> Markup:
    """Who charted the reading, what it corrects, its note and flags, the answer to a
    critical value, its void or correction, and the actions offered on it. `r`: a
    page.TableLine; `csrf`: the token of every row's Void form."""
    notes = f'<span class="muted">#{r.id}</span> {escape(r.recorded_by)}\n'
    if r.corrects_id:
        notes += f' · corrects <a href="#reading-{r.corrects_id}">#{r.corrects_id}</a>'
    if r.note:
        notes += f' · <span class="reading__note">{escape(r.note)}</span>'
    if r.flags:
        notes += " · " + "; ".join(
            f'<span class="flag flag--{escape(level)}">{escape(message)}</span>'
            for level, message in r.flags
        )
    actions = ""
    if r.needs_action or r.can_void:
        needed = (
            f'<a class="button button--warning button--small" href="#critical-{r.id}">'
            "Action needed</a>"
            if r.needs_action
            else ""
        )
        form = _void_form(r, csrf, void_reason_max, links) if r.can_void else ""
        actions = f'{ABOUT}  <div class="reading__actions">\n{needed}{form}{ABOUT}  </div>\n'
    void_note = "void-note" if r.voided else ""
    return Markup(  # noqa: S704
        f'      <tr class="reading__about {escape(row_class)}">\n'
        f'        <td colspan="11" class="{void_note}">\n'
        f'{ABOUT}<div class="reading__about-inner">\n'
        f'{ABOUT}  <div class="reading__notes">\n'
        f"{NOTES}{notes}{_answers(r)}"
        f"{ABOUT}  </div>\n"
        f"{actions}"
        f"{ABOUT}</div>\n"
        "        </td>\n"
        "      </tr>"
    )


def reading_body(
    r, units_system: str, hhmm, csrf: str, void_reason_max: int, links: RowLinks
) -> str:
    """A reading's <tbody>: its values row, then its about row, as the table's loop wrote
    them (a Jinja loop's own work was a tenth of the table's)."""
    row_class = "voided" if r.voided else (f"row--{r.severity}" if r.severity != "normal" else "")
    saved = " reading--saved" if r.just_saved else ""
    return (
        f'    <tbody class="reading{saved}" id="reading-{r.id}">\n'
        f"{values_row(r, row_class, units_system, hhmm)}\n"
        f"{about_row(r, row_class, csrf, void_reason_max, links)}\n"
        "    </tbody>"
    )
