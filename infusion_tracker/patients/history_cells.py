"""The patient page's two long tables, a row for each session and a row for each outcome score,
as templates/patients/_view_body.html drew them.

Python rather than the template, as the readings table's rows (infusions/reading_cells): a
patient page's first view drew its sixty rows in Jinja, an attribute lookup, a filter call and
an escape per value, about half of its Python calls (bench/RESULTS.md, Stop 35). The same HTML
byte for byte, whitespace included. Every text goes through escape() (hence the S704
exemptions); numbers are written as digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from markupsafe import Markup, escape

from ..templating import id_url, status_tag
from ..timeutil import formatter
from ..vocab import FLAG_KINDS, STATUS_KINDS
from .assessments import score_label
from .history import PatientHistory, ScoreLine, SeriesRow

# A cell's indentation, as the template wrote it.
CELL = "      "
# Another area's page: each session's number links to it once it exists.
SESSION_ENDPOINT = "infusions.detail"

Written = Callable[[datetime | None], str]


@dataclass(frozen=True)
class Cells:
    """What a patient page's rows share, worked out once for the page: the links (a session's,
    a score's Correct and Void), who may void, and the clinic's zone its times are written in."""

    history: PatientHistory
    can_void: Callable[[ScoreLine], bool]
    session_url: Callable[[int], str] | None
    correct_url: Callable[[int], str]
    void_url: Callable[[int], str]
    day: Written  # "07 Dec 2026"
    day_month: Written  # "07 Dec"
    stamp: Written  # "07 Dec 2026 14:05"

    @classmethod
    def for_page(
        cls, patient_id: int, history: PatientHistory, can_void: Callable[[ScoreLine], bool]
    ) -> Cells:
        zone = current_app.config["CLINIC_TIMEZONE"]
        return cls(
            history,
            can_void,
            id_url(SESSION_ENDPOINT, "infusion_id")
            if SESSION_ENDPOINT in current_app.view_functions
            else None,
            id_url("patients.new_assessment", "corrects", patient_id=patient_id),
            id_url("patients.void_assessment", "assessment_id"),
            formatter(zone, "%d %b %Y"),
            formatter(zone, "%d %b"),
            formatter(zone, "%d %b %Y %H:%M"),
        )

    def series_row(self, row: SeriesRow) -> Markup:
        return series_row(row, self)

    def score_row(self, score: ScoreLine) -> Markup:
        return score_row(score, self)


def _signed(infusion, cells: Cells) -> str:
    if infusion.is_signed:
        return (
            f'{status_tag("Signed", "ok")} {escape(cells.day_month(infusion.signed_at))}'
            f'<br><span class="small">{escape(infusion.signed_by)}</span>'
        )
    if infusion.status in ("discharged", "stopped_early"):
        return str(status_tag("Unsigned", "warning"))
    return '<span class="muted">Not yet</span>'


def series_row(row: SeriesRow, cells: Cells) -> Markup:
    """A session of the series: its number (a link to it), date, protocol, dose, clinician,
    state, signature, worst flag, adverse events, PHQ-9 before and peak rise."""
    infusion = row.infusion
    number = infusion.series_number
    if cells.session_url:
        number = f'<a href="{escape(cells.session_url(infusion.id))}">{number}</a>'
    when = cells.day(infusion.started_at or infusion.scheduled_for)
    total = "—" if infusion.total_mg is None else escape(f"{infusion.total_mg:g}")
    status = status_tag(infusion.status_label, STATUS_KINDS.get(infusion.status, "neutral"))
    worst = (
        str(status_tag(row.worst.capitalize(), FLAG_KINDS[row.worst]))
        if row.worst
        else '<span class="muted">No readings</span>'
    )
    events = "None"
    if row.adverse_events:
        names = ", ".join(str(escape(name)) for name in row.adverse_events)
        events = (
            f'{status_tag(f"{len(row.adverse_events)} AE", "warning")} '
            f'<span class="small">{names}</span>'
        )
    phq9 = row.phq9_before.score if row.phq9_before else "—"
    sbp = "—" if row.sbp_rise is None else f"{row.sbp_rise:+d} mmHg"
    hr = "—" if row.hr_rise is None else f"{row.hr_rise:+d} bpm"
    critical = ' class="row--critical"' if row.worst == "critical" else ""
    return Markup(  # noqa: S704
        f"    <tr{critical}>\n"
        f'{CELL}<td class="num">{number}</td>\n'
        f"{CELL}<td>{escape(when)}</td>\n"
        f"{CELL}<td>{escape(infusion.protocol_label)}</td>\n"
        f'{CELL}<td class="num">{total}</td>\n'
        f"{CELL}<td>{escape(infusion.clinician)}</td>\n"
        f"{CELL}<td>{status}</td>\n"
        f"{CELL}<td>{_signed(infusion, cells)}</td>\n"
        f"{CELL}<td>{worst}</td>\n"
        f"{CELL}<td>{events}</td>\n"
        f'{CELL}<td class="num">{phq9}</td>\n'
        f'{CELL}<td class="num nowrap">{sbp}<br>{hr}</td>\n'
        "    </tr>"
    )


def score_row(score: ScoreLine, cells: Cells) -> Markup:
    """An outcome score: when, instrument, score, session, who recorded it, its void, flag,
    correction and baseline, and Correct and Void where the viewer may use them."""
    history = cells.history
    items = ' <span class="small muted">(items)</span>' if score.items else ""
    session = "—"
    if score.infusion_id:
        session = f"Infusion {escape(history.session_numbers.get(score.infusion_id, '?'))}"
    notes = ""
    if score.is_voided:
        notes += (
            f'{status_tag("Voided", "neutral")} {escape(cells.stamp(score.voided_at))} by '
            f"{escape(score.voided_by or '?')}: {escape(score.void_reason)}"
        )
    if score.flag_physician:
        notes += str(status_tag("Item 9 positive", "critical"))
    if score.corrects_id:
        notes += (
            f'<span class="small">Corrects <a href="#assessment-{score.corrects_id}">'
            f"entry #{score.corrects_id}</a></span>"
        )
    if history.baseline_phq9 and score.id == history.baseline_phq9.id:
        notes += str(status_tag("Baseline", "info"))
    actions = ""
    if score.infusion_id in history.signed_session_ids:
        actions = '<span class="small muted">Locked: session signed</span>'
    elif not score.is_voided and cells.can_void(score):
        actions = (
            f'<a href="{escape(cells.correct_url(score.id))}">Correct</a> · '
            f'<a href="{escape(cells.void_url(score.id))}">Void</a>'
        )
    voided = ' class="voided"' if score.is_voided else ""
    return Markup(  # noqa: S704
        f'    <tr id="assessment-{score.id}"{voided}>\n'
        f"{CELL}<td>{escape(cells.stamp(score.taken_at))}</td>\n"
        f"{CELL}<td>{escape(score.instrument_label)}{items}</td>\n"
        f'{CELL}<td class="num">{escape(score_label(score.instrument, score.score))}</td>\n'
        f"{CELL}<td>{session}</td>\n"
        f"{CELL}<td>{escape(score.recorded_by)}</td>\n"
        f'{CELL}<td class="void-note">\n'
        f"{notes}{CELL}</td>\n"
        f"{CELL}<td>{actions}</td>\n"
        "    </tr>"
    )
