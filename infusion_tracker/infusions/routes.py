"""The `infusions` blueprint: plan a session, the session (charting) page, one POST per
lifecycle action named by its result (check in, start, pause, resume, rate, stop, discharge,
cancel), and charting: readings and adverse events recorded, voided, corrected.

Views stay thin: validate the form, call a service, redirect. The request's unit of work
commits; a refusal answers 422 with the session page as typed (page.render_session_page).
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit, clinical, units
from ..errors import RuleError, form_status, refusals_on
from ..extensions import db
from ..models import CLINICAL_ROLES, ROLE_PHYSICIAN, InfusionSession, Protocol, Reading, Staff
from ..patients.services import get_patient_or_404
from ..permissions import clinician_required
from ..timeutil import format_time, utcnow
from . import adverse_events as ae_services
from . import drawn, guards, lifecycle, page, queries
from . import readings as reading_services
from .forms import DetailsForm, DischargeForm, PlanForm
from .reading_forms import AdverseEventForm, ReadingForm, ReasonForm, ReviewForm

bp = Blueprint("infusions", __name__)


def _actor() -> Staff:
    return current_user._get_current_object()


def _detail(infusion_id: int, anchor: str | None = None):
    return redirect(url_for("infusions.detail", infusion_id=infusion_id, _anchor=anchor))


def _posted_version(form) -> int | None:
    # A missing or garbled version is a form error (below), not a stale record.
    return form.version.data if not form.version.process_errors else None


def _hidden_errors_to_summary(form) -> None:
    # The error summary lists visible fields; a missing or bad hidden version must still show.
    form.form_errors.extend(form.version.errors)


# --- Planning ---------------------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/infusions/new", methods=["GET", "POST"])
@clinician_required
def plan(patient_id: int):
    patient = get_patient_or_404(patient_id)
    protocols = db.session.scalars(
        sa.select(Protocol).where(Protocol.is_current.is_(True)).order_by(Protocol.name)
    ).all()
    staff = db.session.scalars(
        sa.select(Staff)
        .where(Staff.active.is_(True), Staff.role.in_(CLINICAL_ROLES))
        .order_by(Staff.full_name)
    ).all()
    physicians = [member for member in staff if member.role == ROLE_PHYSICIAN]
    form = PlanForm(protocols=protocols, clinicians=staff, physicians=physicians)
    if not form.is_submitted():
        audit.record("session.plan_viewed", entity=patient, patient_id=patient.id)
        form.clinician_id.data = current_user.id
        if current_user.role == ROLE_PHYSICIAN:
            form.physician_id.data = current_user.id
        elif len(physicians) == 1:
            form.physician_id.data = physicians[0].id
        if len(protocols) == 1:
            form.protocol_id.data = protocols[0].id
    if form.validate_on_submit():
        with refusals_on(form):
            infusion = lifecycle.plan_infusion(patient, form.service_data(), _actor())
            flash(f"Session {infusion.series_number} planned.", "success")
            return _detail(infusion.id)
    return render_template(
        "infusions/plan.html", form=form, patient=patient, protocols=protocols
    ), form_status(form)


# --- The session page and its lifecycle actions -------------------------------------------


@bp.route("/infusions/<int:infusion_id>")
@clinician_required
def detail(infusion_id: int):
    shown, patient_id = drawn.shown_session_page(infusion_id)  # 404: no audit row
    audit.record(
        "session.viewed",
        entity_type=InfusionSession.__tablename__,
        entity_id=infusion_id,
        patient_id=patient_id,
    )
    return shown


@bp.route("/infusions/<int:infusion_id>/edit", methods=["POST"])
@clinician_required
def update(infusion_id: int):
    infusion = queries.get_infusion_or_404(infusion_id)
    form = DetailsForm(prefix="details", infusion=infusion)
    guards.infusion_for_write(infusion_id, _posted_version(form))
    if form.validate_on_submit():
        with refusals_on(form, weight_kg="weight"):
            changed = lifecycle.update_infusion(
                infusion, form.service_data(), _actor(), form.version.data
            )
            flash("Checklist and details saved." if changed else "Nothing had changed.", "success")
            return _detail(infusion_id, "details")
    _hidden_errors_to_summary(form)
    return page.render_session_page(infusion_id, 422, details_form=form)


def _act(infusion_id: int, form_name: str, act, done: str, anchor: str | None = None):
    """Validate one action form, call its service, then back to the page.

    A click drawn from an older page, or for an action the state no longer allows, is refused
    (409) before the form is looked at: its form may not even be on the page any more."""
    form_class, prefix, action = page.ACTION_FORMS[form_name]
    form = form_class(prefix=prefix)
    infusion = guards.infusion_for_write(infusion_id, _posted_version(form))
    lifecycle.ensure_allowed(infusion, action)
    # The override box is drawn for physicians only: anyone else reads the refusal on top.
    renames = {} if current_user.is_physician else {"override_reason": ""}
    if form.validate_on_submit():
        with refusals_on(form, **renames):
            act(infusion, form)
            flash(done, "success")
            return _detail(infusion_id, anchor)
    _hidden_errors_to_summary(form)
    return page.render_session_page(infusion_id, 422, **{form_name: form})


@bp.route("/infusions/<int:infusion_id>/check-in", methods=["POST"])
@clinician_required
def check_in(infusion_id: int):
    return _act(
        infusion_id,
        "checkin_form",
        lambda infusion, form: lifecycle.check_in(infusion, _actor(), version=form.version.data),
        "Checked in. Take the baseline reading.",
    )


@bp.route("/infusions/<int:infusion_id>/start", methods=["POST"])
@clinician_required
def start(infusion_id: int):
    return _act(
        infusion_id,
        "start_form",
        lambda infusion, form: lifecycle.start_infusion(
            infusion,
            _actor(),
            override_reason=form.override_reason.data,
            version=form.version.data,
        ),
        "Infusion started.",
    )


@bp.route("/infusions/<int:infusion_id>/pause", methods=["POST"])
@clinician_required
def pause(infusion_id: int):
    return _act(
        infusion_id,
        "pause_form",
        lambda infusion, form: lifecycle.pause_infusion(
            infusion, _actor(), form.reason.data, version=form.version.data
        ),
        "Infusion paused.",
    )


@bp.route("/infusions/<int:infusion_id>/resume", methods=["POST"])
@clinician_required
def resume(infusion_id: int):
    return _act(
        infusion_id,
        "resume_form",
        lambda infusion, form: lifecycle.resume_infusion(
            infusion, _actor(), version=form.version.data
        ),
        "Infusion resumed.",
    )


@bp.route("/infusions/<int:infusion_id>/rate", methods=["POST"])
@clinician_required
def rate(infusion_id: int):
    return _act(
        infusion_id,
        "rate_form",
        lambda infusion, form: lifecycle.change_rate(
            infusion,
            _actor(),
            form.mg_per_h.data,
            form.reason.data,
            override_reason=form.override_reason.data,
            version=form.version.data,
        ),
        "Rate changed.",
        "events",
    )


@bp.route("/infusions/<int:infusion_id>/stop", methods=["POST"])
@clinician_required
def stop(infusion_id: int):
    return _act(
        infusion_id,
        "stop_form",
        lambda infusion, form: lifecycle.stop_infusion(
            infusion, _actor(), reason=form.reason.data or "", version=form.version.data
        ),
        "Infusion stopped. Recovery observation has begun.",
    )


@bp.route("/infusions/<int:infusion_id>/run-on", methods=["POST"])
@clinician_required
def run_on(infusion_id: int):
    return _act(
        infusion_id,
        "run_on_form",
        lambda infusion, form: lifecycle.record_run_on(
            infusion, _actor(), form.reason.data, version=form.version.data
        ),
        "Reason for running on recorded.",
    )


@bp.route("/infusions/<int:infusion_id>/cancel", methods=["POST"])
@clinician_required
def cancel(infusion_id: int):
    return _act(
        infusion_id,
        "cancel_form",
        lambda infusion, form: lifecycle.cancel_infusion(
            infusion, _actor(), form.reason.data, version=form.version.data
        ),
        "Session cancelled.",
    )


@bp.route("/infusions/<int:infusion_id>/discharge", methods=["GET", "POST"])
@clinician_required
def discharge(infusion_id: int):
    infusion = queries.get_infusion_or_404(infusion_id)
    guards.ensure_editable(infusion)
    if request.method == "POST":
        lifecycle.ensure_allowed(infusion, "discharge")  # a refused POST answers 409
    elif "discharge" not in clinical.allowed_actions(infusion.status):
        flash(
            f"Discharge follows recovery; the session is {infusion.status_label.lower()}.",
            "error",
        )
        return _detail(infusion_id)
    last = queries.latest_reading(infusion)
    prefill = clinical.aldrete_prefill(
        queries.reading_values(last),
        queries.reading_values(queries.latest_reading(infusion, "baseline")),
    )
    form = DischargeForm(version=infusion.version, escort=infusion.escort_name)
    if not form.is_submitted():
        audit.record("discharge.viewed", entity=infusion, patient_id=infusion.patient_id)
        for name, score in prefill.items():
            form[name].data = score
    if form.validate_on_submit():
        with refusals_on(form):
            lifecycle.discharge(infusion, form.service_data(), _actor(), version=form.version.data)
            flash("Patient discharged.", "success")
            return _detail(infusion_id)
        infusion = queries.get_infusion_or_404(infusion_id)
    else:
        _hidden_errors_to_summary(form)
    now = utcnow()
    remaining = lifecycle.observation_remaining(infusion, now)
    return render_template(
        "infusions/discharge.html",
        form=form,
        infusion=infusion,
        patient=infusion.patient,
        prefill=prefill,
        last=last,
        remaining_min=math.ceil(remaining.total_seconds() / 60),
        earliest=now + remaining,
        status_kinds=page.STATUS_KINDS,
        aldrete_min=clinical.ALDRETE_DISCHARGE_MIN,
    ), form_status(form)


# --- Readings -----------------------------------------------------------------------------


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
    form = ReadingForm(prefix=page.READING_PREFIX, units_system=current_app.config["UNITS"])
    # Read, not locked: a form with a mistake in it never waits for another writer (nor
    # holds SQLite's lock), and a correct one only for its writes (chart_reading).
    read = reading_services.read_for_charting(infusion_id, form.posted_key())
    reading_services.ensure_chartable(read.infusion)
    if not form.validate():
        return page.render_session_page(infusion_id, 422, reading_form=form)
    with refusals_on(form):
        try:
            reading = reading_services.chart_reading(read, form.to_values(), _actor())
        except reading_services.AlreadyRecorded as repeat:
            when = format_time(repeat.row.taken_at)  # as the readings table lists it
            flash(f"This reading was already recorded at {when}.", "warning")
            return _detail(infusion_id, "readings")
        _flash_recorded(reading)
        # Back to the form, not the top, with the new row highlighted: the address names
        # Systolic, which the browser focuses and scrolls to (its scroll margin keeps the
        # form's head in view). A critical value lands on its banner, above the form.
        anchor = "critical-actions" if reading.severity == "critical" else "reading-systolic"
        return redirect(
            url_for("infusions.detail", infusion_id=infusion_id, saved=reading.id,
                    _anchor=anchor)
        )
    return page.render_session_page(infusion_id, 422, reading_form=form)


def _reading_for_change(reading_id: int) -> Reading:
    reading = queries.get_reading_or_404(reading_id)
    guards.ensure_editable(reading.infusion)
    return reading


@bp.route("/readings/<int:reading_id>/void", methods=["POST"])
@clinician_required
def void_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    form = ReasonForm(prefix=f"void-reading-{reading_id}")
    if not form.validate():
        flash("Nothing was voided: " + " ".join(form.reason.errors), "error")
        return _detail(reading.infusion_id, "readings")
    reading_services.void_reading(reading, _actor(), form.reason.data)
    flash(f"Reading at {format_time(reading.taken_at)} voided.", "success")
    return _detail(reading.infusion_id, "readings")


@bp.route("/readings/<int:reading_id>/correct", methods=["GET", "POST"])
@clinician_required
def correct_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    if reading.is_voided:
        raise RuleError("This reading was voided; chart a new reading instead of correcting it.")
    reading_services.ensure_entry_rights(reading, _actor(), "reading")
    system = current_app.config["UNITS"]
    form = ReadingForm(prefix=page.READING_PREFIX, units_system=system)
    if request.method == "GET":
        audit.record("reading.viewed", entity=reading, patient_id=reading.infusion.patient_id)
        form.fill_from(reading)
    elif form.validate():
        with refusals_on(form):
            new = reading_services.correct_reading(reading, form.to_values(), _actor())
            flash(f"Reading #{reading.id} corrected (now #{new.id}).", "success")
            return _detail(new.infusion_id, "readings")
    reading = queries.get_reading_or_404(reading_id)
    return render_template(
        "infusions/correct_reading.html",
        reading=reading,
        infusion=reading.infusion,
        reading_form=form,
        reading_temp_unit=units.temperature_unit(system),
        reading_hints=page.previous_hints(reading, system),
    ), form_status(form)


@bp.route("/readings/<int:reading_id>/review", methods=["POST"])
@clinician_required
def review_critical_reading(reading_id: int):
    reading = _reading_for_change(reading_id)
    form = ReviewForm(prefix=f"review-{reading_id}")
    if not form.validate():
        flash("Not recorded: " + " ".join(form.note.errors), "error")
        return _detail(reading.infusion_id, "readings")
    reading_services.review_critical(reading, _actor(), form.note.data)
    flash(f"Critical reading at {format_time(reading.taken_at)}: reviewed, no action.", "success")
    return _detail(reading.infusion_id)


# --- Adverse events -----------------------------------------------------------------------


@bp.route("/infusions/<int:infusion_id>/adverse-events", methods=["POST"])
@clinician_required
def record_adverse_event(infusion_id: int):
    infusion = guards.infusion_for_write(infusion_id)
    refusal = page.ae_refusal(infusion)
    if refusal:
        raise RuleError(refusal)
    form = AdverseEventForm(prefix=page.AE_PREFIX)
    if form.validate():
        with refusals_on(form):
            try:
                event = ae_services.record_adverse_event(infusion, form.to_values(), _actor())
            except reading_services.AlreadyRecorded as repeat:
                flash(f"This adverse event was already recorded ({repeat.row.type_label}, "
                      f"onset {format_time(repeat.row.onset_at)}).", "warning")
                return _detail(infusion_id, "adverse-events")
            action = {
                "paused": " The infusion is paused.",
                "stopped": " The infusion was stopped.",
            }.get(event.infusion_action, "")
            flash(f"Adverse event recorded: {event.type_label}.{action}", "success")
            return _detail(infusion_id, "adverse-events")
    return page.render_session_page(infusion_id, 422, ae_form=form)


def _event_for_change(ae_id: int):
    event = queries.get_adverse_event_or_404(ae_id)
    guards.ensure_editable(event.infusion)
    return event


@bp.route("/adverse-events/<int:ae_id>/void", methods=["POST"])
@clinician_required
def void_adverse_event(ae_id: int):
    event = _event_for_change(ae_id)
    form = ReasonForm(prefix=f"void-ae-{ae_id}")
    if not form.validate():
        flash("Nothing was voided: " + " ".join(form.reason.errors), "error")
        return _detail(event.infusion_id, "adverse-events")
    ae_services.void_adverse_event(event, _actor(), form.reason.data)
    flash(f"Adverse event voided: {event.type_label}.", "success")
    return _detail(event.infusion_id, "adverse-events")


@bp.route("/adverse-events/<int:ae_id>/correct", methods=["GET", "POST"])
@clinician_required
def correct_adverse_event(ae_id: int):
    event = _event_for_change(ae_id)
    if event.is_voided:
        raise RuleError("This adverse event was voided; record a new one instead.")
    reading_services.ensure_entry_rights(event, _actor(), "adverse event")
    form = AdverseEventForm(prefix=page.AE_PREFIX)
    if request.method == "GET":
        audit.record("adverse_event.viewed", entity=event, patient_id=event.infusion.patient_id)
        form.fill_from(event)
    elif form.validate():
        with refusals_on(form):
            new = ae_services.correct_adverse_event(event, form.to_values(), _actor())
            flash(f"Adverse event #{event.id} corrected (now #{new.id}).", "success")
            return _detail(new.infusion_id, "adverse-events")
    event = queries.get_adverse_event_or_404(ae_id)
    return render_template(
        "infusions/correct_adverse_event.html",
        event=event,
        infusion=event.infusion,
        ae_form=form,
    ), form_status(form)
