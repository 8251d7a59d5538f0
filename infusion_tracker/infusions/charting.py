"""Charting at the bedside: readings and adverse events on the session page.

The session page itself is the lifecycle view (`infusions.detail`); it merges
`charting_context(infusion)` into its template context. A refused reading or adverse event
re-renders that same page with what was typed and the messages beside the boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import clinical, units
from ..errors import RuleError, show_on_form
from ..extensions import db
from ..inputs import arg_id
from ..models import RHYTHMS, AdverseEvent, InfusionSession, Reading
from ..permissions import clinician_required
from ..timeutil import format_time, utcnow
from . import adverse_events as ae_services
from . import guards, services
from . import readings as reading_services
from .blueprint import bp
from .reading_forms import (
    AdverseEventForm,
    ReadingForm,
    ReasonForm,
    ReviewForm,
    clinic_now,
    wall_time,
)

# Typed this long after the clinical time, a reading shows when it was entered.
LATE_ENTRY = timedelta(minutes=10)
READING_PREFIX = "reading"
AE_PREFIX = "ae"
PHASE_FOR_STATUS = {
    "planned": "baseline",
    "checked_in": "baseline",
    "infusing": "infusion",
    "paused": "infusion",
    "recovery": "recovery",
    "stopped_early": "recovery",
    "discharged": "discharge",
}
# Rhythm names short enough for a table column (the form and the record use models.RHYTHMS).
RHYTHM_SHORT = {
    "nsr": "NSR",
    "sinus_tach": "Sinus tach",
    "sinus_brady": "Sinus brady",
    "af": "AF",
    "flutter": "Flutter",
    "vt": "VT",
    "artifact": "Artifact",
}
# Fields with a "last …" hint beside their box.
HINT_FIELDS = ("systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "moaas", "pain")


@dataclass
class ReadingRow:
    """One reading as the table shows it: its stored flags, deltas and cross-references."""

    reading: Reading
    assessment: clinical.ReadingAssessment
    deltas: dict[str, int] = field(default_factory=dict)
    news2_risk: str | None = None
    late: bool = False
    corrected_by: list[int] = field(default_factory=list)
    answered_by: list[int] = field(default_factory=list)
    void_form: ReasonForm | None = None

    def level(self, name: str) -> str | None:
        return self.assessment.field_level(name)

    @property
    def bp_level(self) -> str | None:
        """One word for the BP cell: the worse of systolic and diastolic."""
        levels = [level for level in (self.level("systolic"), self.level("diastolic")) if level]
        return clinical.worst(levels) if levels else None

    @property
    def needs_action(self) -> bool:
        return services.is_open_critical(self.reading)

    @property
    def rhythm_short(self) -> str:
        if self.reading.rhythm == "other":
            return rhythm_text(self.reading)
        return RHYTHM_SHORT.get(self.reading.rhythm) or rhythm_text(self.reading)


@dataclass
class AdverseEventRow:
    event: AdverseEvent
    reading: Reading | None = None
    corrected_by: list[int] = field(default_factory=list)
    void_form: ReasonForm | None = None


@dataclass
class NextDue:
    due_at: datetime
    overdue: bool
    interval_min: int


def void_form(prefix: str) -> ReasonForm:
    """A void box whose prefix comes from the URL it posts to, so ids are unique per row."""
    return ReasonForm(formdata=None, prefix=prefix)


def _assessment(reading: Reading) -> clinical.ReadingAssessment:
    """The flags stored when the reading was charted (not re-derived from today's limits)."""
    flags = [clinical.Flag(**flag) for flag in reading.flags or []]
    return clinical.ReadingAssessment(reading.severity, flags)


def _news2_risk(reading: Reading) -> str | None:
    if reading.news2 is None:
        return None
    parts = clinical.news2_parts(reading_services.vitals(reading)) or {}
    return clinical.news2_risk(reading.news2, any(score == 3 for score in parts.values()))


def _o2_text(flow: float | None) -> str:
    if flow is None:
        return ""
    return "room air" if flow == 0 else f"{flow:g} L/min"


def previous_hints(previous: Reading | None, system: str) -> dict[str, str]:
    """The hint beside each box: its value in the previous reading ("last 128")."""
    if previous is None:
        return {}
    hints = {
        name: f"last {getattr(previous, name)}"
        for name in HINT_FIELDS
        if getattr(previous, name) is not None
    }
    if previous.o2_flow_lpm is not None:
        hints["o2"] = f"last {_o2_text(previous.o2_flow_lpm)}"
    temperature = units.temperature_to_display(previous.temperature_c, system)
    if temperature is not None:
        hints["temperature"] = f"last {temperature:.1f}"
    if previous.avpu:
        hints["avpu"] = f"last {previous.avpu}"
    if previous.rhythm:
        hints["rhythm"] = "last " + rhythm_text(previous)
    return hints


def rhythm_text(reading: Reading) -> str:
    if reading.rhythm == "other" and reading.rhythm_other:
        return reading.rhythm_other
    return RHYTHMS.get(reading.rhythm, reading.rhythm)


def new_reading_form(infusion: InfusionSession, previous: Reading | None) -> ReadingForm:
    """A blank reading form: now (clinic time), the phase the status suggests, room air unless
    the patient was last on oxygen."""
    form = ReadingForm(
        formdata=None, prefix=READING_PREFIX, units_system=current_app.config["UNITS"]
    )
    form.taken_at.data = clinic_now()
    form.phase.data = PHASE_FOR_STATUS.get(infusion.status, "baseline")
    form.o2_room_air.data = previous is None or not previous.o2_flow_lpm
    return form


def new_adverse_event_form(reading: Reading | None = None) -> AdverseEventForm:
    form = AdverseEventForm(formdata=None, prefix=AE_PREFIX)
    form.onset_at.data = wall_time(reading.taken_at) if reading else clinic_now()
    form.infusion_action.data = "none"
    form.reading_id.data = str(reading.id) if reading else ""
    return form


def _answered_reading(all_readings: list[Reading]) -> Reading | None:
    """The critical reading named by ?ae_reading= ("Record adverse event" on that row)."""
    wanted = arg_id("ae_reading")
    return next((r for r in all_readings if r.id == wanted), None) if wanted else None


def charting_context(
    infusion: InfusionSession,
    *,
    reading_form: ReadingForm | None = None,
    ae_form: AdverseEventForm | None = None,
    now: datetime | None = None,
) -> dict:
    """What the charting partials need. Works on the rows already loaded with
    services.get_infusion_or_404(..., full=True): no query per reading."""
    now = now or utcnow()
    system = current_app.config["UNITS"]
    all_readings = list(infusion.readings)
    previous = services.latest_of(all_readings)
    baseline = services.latest_of(all_readings, "baseline")
    open_criticals = [r for r in all_readings if services.is_open_critical(r)]

    corrected_by: dict[int, list[int]] = {}
    for reading in all_readings:
        if reading.corrects_id:
            corrected_by.setdefault(reading.corrects_id, []).append(reading.id)
    answered_by: dict[int, list[int]] = {}
    for event in infusion.adverse_events:
        if event.reading_id and not event.is_voided:
            answered_by.setdefault(event.reading_id, []).append(event.id)

    def changeable(row) -> bool:
        """Void and Correct are offered to whoever may use them (readings.ensure_entry_rights)."""
        return not (infusion.is_signed or row.is_voided) and (
            row.recorded_by_id == current_user.id or current_user.is_physician
        )

    rows = []
    for reading in all_readings:
        deltas = {}
        if baseline is not None and reading.phase != "baseline":
            for name in ("systolic", "heart_rate"):
                value, base = getattr(reading, name), getattr(baseline, name)
                if value is not None and base is not None:
                    deltas[name] = value - base
        rows.append(
            ReadingRow(
                reading=reading,
                assessment=_assessment(reading),
                deltas=deltas,
                news2_risk=_news2_risk(reading),
                late=reading.created_at - reading.taken_at > LATE_ENTRY,
                corrected_by=corrected_by.get(reading.id, []),
                answered_by=answered_by.get(reading.id, []),
                void_form=void_form(f"void-reading-{reading.id}") if changeable(reading) else None,
            )
        )

    next_due = None
    line = services.status_line(infusion, previous, open_criticals, now)
    interval = services.reading_interval(infusion)
    if line.due_at is not None and interval:
        next_due = NextDue(line.due_at, line.overdue, interval)

    refusal = reading_services.chart_refusal(infusion)
    if reading_form is None and refusal is None:
        reading_form = new_reading_form(infusion, previous)

    readings_by_id = {r.id: r for r in all_readings}
    ae_corrected_by: dict[int, list[int]] = {}
    for event in infusion.adverse_events:
        if event.corrects_id:
            ae_corrected_by.setdefault(event.corrects_id, []).append(event.id)
    ae_rows = [
        AdverseEventRow(
            event,
            readings_by_id.get(event.reading_id),
            ae_corrected_by.get(event.id, []),
            void_form(f"void-ae-{event.id}") if changeable(event) else None,
        )
        for event in infusion.adverse_events
    ]
    ae_refusal = _ae_refusal(infusion)
    ae_reading = _answered_reading(all_readings)
    if ae_form is None and ae_refusal is None:
        ae_form = new_adverse_event_form(ae_reading)

    return {
        "reading_form": reading_form,
        "reading_refusal": refusal,
        "reading_temp_unit": units.temperature_unit(system),
        "reading_hints": previous_hints(previous, system),
        "previous_reading": previous,
        "baseline_reading": baseline,
        "reading_rows": rows,
        "next_due": next_due,
        "open_criticals": open_criticals,
        "reading_review_forms": {
            reading.id: ReviewForm(formdata=None, prefix=f"review-{reading.id}")
            for reading in open_criticals
        },
        "ae_form": ae_form,
        "ae_refusal": ae_refusal,
        "ae_reading": ae_reading,
        "ae_rows": ae_rows,
    }


def _ae_refusal(infusion: InfusionSession) -> str | None:
    if infusion.is_signed:
        return "This session was signed and is locked."
    if infusion.status not in ae_services.RECORDABLE_STATUSES:
        return (
            "Adverse events can be recorded from check-in until the session is signed "
            f"(this session is {infusion.status_label.lower()})."
        )
    return None


# --- Views ------------------------------------------------------------------------------------


def _actor():
    return current_user._get_current_object()


def _detail_url(infusion_id: int, anchor: str | None = None) -> str:
    return url_for("infusions.detail", infusion_id=infusion_id, _anchor=anchor)


def _session_page(infusion_id: int, status: int = 200, **forms):
    """The session page again, with the refused form as typed and its messages."""
    from .routes import detail_context  # the lifecycle routes import this module

    infusion = services.get_infusion_or_404(infusion_id, full=True)
    context = {**detail_context(infusion), **charting_context(infusion, **forms)}
    return render_template("infusions/detail.html", **context), status


def _flash_recorded(reading: Reading) -> None:
    when = format_time(reading.taken_at)
    if reading.severity == "critical":
        flash(
            f"Reading at {when} recorded. CRITICAL: record an action (an adverse event, "
            "or reviewed, no action).",
            "error",
        )
    elif reading.severity == "abnormal":
        flash(f"Reading at {when} recorded, with abnormal values.", "warning")
    else:
        flash(f"Reading at {when} recorded.", "success")


@bp.route("/infusions/<int:infusion_id>/readings", methods=["POST"])
@clinician_required
def record_reading(infusion_id: int):
    infusion = services.get_infusion_or_404(infusion_id)
    reading_services.ensure_chartable(infusion)
    form = ReadingForm(prefix=READING_PREFIX, units_system=current_app.config["UNITS"])
    if form.validate():
        try:
            reading = reading_services.record_reading(infusion, form.to_values(), _actor())
        except reading_services.ReadingRefused as refused:
            db.session.rollback()
            form.add_problems(refused.problems)
        else:
            db.session.commit()
            _flash_recorded(reading)
            return redirect(_detail_url(infusion_id))
    return _session_page(infusion_id, reading_form=form)


def _reading_for_change(reading_id: int) -> Reading:
    reading = reading_services.get_reading_or_404(reading_id)
    guards.ensure_editable(reading.infusion)
    return reading


@bp.route("/readings/<int:reading_id>/void", methods=["POST"])
@clinician_required
def void_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    form = ReasonForm(prefix=f"void-reading-{reading_id}")
    if not form.validate():
        flash("Nothing was voided: " + " ".join(form.reason.errors), "error")
        return redirect(_detail_url(reading.infusion_id, "readings"))
    reading_services.void_reading(reading, _actor(), form.reason.data)
    db.session.commit()
    flash(f"Reading at {format_time(reading.taken_at)} voided.", "success")
    return redirect(_detail_url(reading.infusion_id, "readings"))


@bp.route("/readings/<int:reading_id>/correct", methods=["GET", "POST"])
@clinician_required
def correct_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    if reading.is_voided:
        raise RuleError("This reading was voided; chart a new reading instead of correcting it.")
    reading_services.ensure_entry_rights(reading, _actor(), "reading")
    system = current_app.config["UNITS"]
    form = ReadingForm(prefix=READING_PREFIX, units_system=system)
    if request.method == "GET":
        form.fill_from(reading)
    elif form.validate():
        try:
            new = reading_services.correct_reading(reading, form.to_values(), _actor())
        except reading_services.ReadingRefused as refused:
            db.session.rollback()
            form.add_problems(refused.problems)
        else:
            db.session.commit()
            flash(f"Reading #{reading.id} corrected (now #{new.id}).", "success")
            return redirect(_detail_url(new.infusion_id, "readings"))
    reading = reading_services.get_reading_or_404(reading_id)
    return render_template(
        "infusions/correct_reading.html",
        reading=reading,
        infusion=reading.infusion,
        reading_form=form,
        row=ReadingRow(reading, _assessment(reading), news2_risk=_news2_risk(reading)),
        reading_temp_unit=units.temperature_unit(system),
        reading_hints=previous_hints(reading, system),
    )


@bp.route("/readings/<int:reading_id>/review", methods=["POST"])
@clinician_required
def review_critical_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    form = ReviewForm(prefix=f"review-{reading_id}")
    if not form.validate():
        flash("Not recorded: " + " ".join(form.note.errors), "error")
        return redirect(_detail_url(reading.infusion_id, "readings"))
    reading_services.review_critical(reading, _actor(), form.note.data)
    db.session.commit()
    flash(f"Critical reading at {format_time(reading.taken_at)}: reviewed, no action.", "success")
    return redirect(_detail_url(reading.infusion_id))


@bp.route("/infusions/<int:infusion_id>/adverse-events", methods=["POST"])
@clinician_required
def record_adverse_event(infusion_id: int):
    infusion = services.get_infusion_or_404(infusion_id)
    refusal = _ae_refusal(infusion)
    if refusal:
        raise RuleError(refusal)
    form = AdverseEventForm(prefix=AE_PREFIX)
    if form.validate():
        try:
            event = ae_services.record_adverse_event(infusion, form.to_values(), _actor())
        except ae_services.AdverseEventRefused as refused:
            db.session.rollback()
            form.add_problems(refused.problems)
        except RuleError as error:
            # The pause or stop was refused (e.g. out of order): nothing was saved.
            db.session.rollback()
            show_on_form(form, error)
            return _session_page(infusion_id, 409, ae_form=form)
        else:
            db.session.commit()
            action = {
                "paused": " The infusion is paused.",
                "stopped": " The infusion was stopped.",
            }.get(event.infusion_action, "")
            flash(f"Adverse event recorded: {event.type_label}.{action}", "success")
            return redirect(_detail_url(infusion_id, "adverse-events"))
    return _session_page(infusion_id, ae_form=form)


def _event_for_change(ae_id: int) -> AdverseEvent:
    event = ae_services.get_adverse_event_or_404(ae_id)
    guards.ensure_editable(event.infusion)
    return event


@bp.route("/adverse-events/<int:ae_id>/void", methods=["POST"])
@clinician_required
def void_adverse_event(ae_id: int):
    event = _event_for_change(ae_id)
    form = ReasonForm(prefix=f"void-ae-{ae_id}")
    if not form.validate():
        flash("Nothing was voided: " + " ".join(form.reason.errors), "error")
        return redirect(_detail_url(event.infusion_id, "adverse-events"))
    ae_services.void_adverse_event(event, _actor(), form.reason.data)
    db.session.commit()
    flash(f"Adverse event voided: {event.type_label}.", "success")
    return redirect(_detail_url(event.infusion_id, "adverse-events"))


@bp.route("/adverse-events/<int:ae_id>/correct", methods=["GET", "POST"])
@clinician_required
def correct_adverse_event(ae_id: int):
    event = _event_for_change(ae_id)
    if event.is_voided:
        raise RuleError("This adverse event was voided; record a new one instead.")
    reading_services.ensure_entry_rights(event, _actor(), "adverse event")
    form = AdverseEventForm(prefix=AE_PREFIX)
    if request.method == "GET":
        form.fill_from(event)
    elif form.validate():
        try:
            new = ae_services.correct_adverse_event(event, form.to_values(), _actor())
        except ae_services.AdverseEventRefused as refused:
            db.session.rollback()
            form.add_problems(refused.problems)
        else:
            db.session.commit()
            flash(f"Adverse event #{event.id} corrected (now #{new.id}).", "success")
            return redirect(_detail_url(new.infusion_id, "adverse-events"))
    event = ae_services.get_adverse_event_or_404(ae_id)
    return render_template(
        "infusions/correct_adverse_event.html",
        event=event,
        infusion=event.infusion,
        ae_form=form,
    )
