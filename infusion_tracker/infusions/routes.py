"""Session lifecycle routes: plan a session, the session (charting) page, and one POST per
action named by its result — check in, start, pause, resume, rate, stop, discharge, cancel."""

from __future__ import annotations

import math

import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import charts, clinical, units
from ..errors import RuleError, show_on_form
from ..extensions import db
from ..models import CLINICAL_ROLES, ROLE_PHYSICIAN, InfusionSession, Protocol, Staff
from ..patients.services import get_patient_or_404
from ..permissions import clinician_required
from ..timeutil import format_time, utcnow
from . import charting, guards, services
from .blueprint import bp
from .forms import (
    CancelForm,
    CheckInForm,
    DetailsForm,
    DischargeForm,
    PauseForm,
    PlanForm,
    RateForm,
    ResumeForm,
    StartForm,
    StopForm,
)

# context name -> (form class, field prefix, clinical action): the action forms on the session
# page. Prefixes keep field ids unique across the page's many forms.
ACTION_FORMS = {
    "checkin_form": (CheckInForm, "checkin", "check_in"),
    "start_form": (StartForm, "start", "start"),
    "pause_form": (PauseForm, "pause", "pause"),
    "resume_form": (ResumeForm, "resume", "resume"),
    "rate_form": (RateForm, "rate", "rate"),
    "stop_form": (StopForm, "stop", "stop"),
    "cancel_form": (CancelForm, "cancel", "cancel"),
}


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


def session_chart(infusion: InfusionSession):
    """BP, HR and SpO2 against time with the infusion's start, pauses and stop marked."""
    points = [
        charts.VitalPoint(
            at=reading.taken_at,
            systolic=reading.systolic,
            diastolic=reading.diastolic,
            heart_rate=reading.heart_rate,
            spo2=reading.spo2,
            abnormal=reading.severity == "abnormal",
            critical=reading.severity == "critical",
            field_levels={
                flag["field"]: flag["level"]
                for flag in reading.flags or []
                if flag.get("field") and flag.get("level")
            },
        )
        for reading in infusion.readings
        if not reading.is_voided
    ]
    marks = [
        charts.EventMark(at=event.occurred_at, label=event.kind_label)
        for event in infusion.events
        if event.kind in ("start", "pause", "resume", "stop")
    ]
    return charts.vitals_chart(
        points, marks, title="Blood pressure, heart rate and SpO2", fmt_time=format_time
    )


def detail_context(infusion: InfusionSession, **forms) -> dict:
    """The lifecycle half of the session page's context, for a session loaded with
    services.get_infusion_or_404(..., full=True) (no query per row). `forms` replaces a
    default form with the one just submitted, so a refused submit keeps what was typed."""
    now = utcnow()
    readings = infusion.readings
    baseline = services.latest_of(readings, "baseline")
    line = services.status_line(
        infusion,
        services.latest_of(readings),
        [reading for reading in readings if services.is_open_critical(reading)],
        now,
    )
    defaults = {
        name: form_class(formdata=None, prefix=prefix, version=infusion.version)
        for name, (form_class, prefix, _action) in ACTION_FORMS.items()
    }
    defaults["details_form"] = DetailsForm(formdata=None, prefix="details", infusion=infusion)
    not_started = infusion.status in services.NOT_STARTED_STATUSES
    return {
        "infusion": infusion,
        "patient": infusion.patient,
        "protocol": infusion.protocol,
        "line": line,
        "status_kinds": services.STATUS_KINDS,
        "actions": [] if infusion.is_signed else clinical.allowed_actions(infusion.status),
        "dose": services.compute_dose(infusion),
        "dose_problem": services.dose_problem(infusion) if not_started else None,
        "rate": services.current_rate(infusion),
        "infused_minutes": (
            round(services.infused_minutes(infusion.events, infusion.ended_at or now))
            if infusion.started_at
            else None
        ),
        "start_problems": (
            services.start_problems(infusion, baseline, now)
            if infusion.status == "checked_in"
            else []
        ),
        "observation_remaining_min": (
            math.ceil(services.observation_remaining(infusion, now).total_seconds() / 60)
            if infusion.status in ("recovery", "stopped_early")
            else None
        ),
        "vitals_chart": session_chart(infusion),
        "aldrete_items": clinical.ALDRETE_ITEMS,
        "aldrete_min": clinical.ALDRETE_DISCHARGE_MIN,
        "units_weight": units.weight_unit(current_app.config["UNITS"]),
        "is_physician": current_user.role == ROLE_PHYSICIAN,
        **defaults,
        **forms,
    }


def render_detail(infusion_id: int, status: int = 200, **forms):
    """The session page, with any just-submitted lifecycle form as typed."""
    infusion = services.get_infusion_or_404(infusion_id, full=True)
    context = {**detail_context(infusion, **forms), **charting.charting_context(infusion)}
    return render_template("infusions/detail.html", **context), status


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
        form.clinician_id.data = current_user.id
        if current_user.role == ROLE_PHYSICIAN:
            form.physician_id.data = current_user.id
        elif len(physicians) == 1:
            form.physician_id.data = physicians[0].id
        if len(protocols) == 1:
            form.protocol_id.data = protocols[0].id
    status = 200
    if form.validate_on_submit():
        try:
            infusion = services.plan_infusion(patient, form.service_data(), _actor())
        except RuleError as error:
            db.session.rollback()
            show_on_form(form, error)
            status = 409
        else:
            db.session.commit()
            flash(f"Session {infusion.series_number} planned.", "success")
            return _detail(infusion.id)
    return render_template(
        "infusions/plan.html", form=form, patient=patient, protocols=protocols
    ), status


# --- The session page -------------------------------------------------------------------------


@bp.route("/infusions/<int:infusion_id>")
@clinician_required
def detail(infusion_id: int):
    return render_detail(infusion_id)


@bp.route("/infusions/<int:infusion_id>/edit", methods=["POST"])
@clinician_required
def update(infusion_id: int):
    infusion = services.get_infusion_or_404(infusion_id)
    form = DetailsForm(prefix="details", infusion=infusion)
    guards.ensure_editable(infusion)
    guards.check_version(infusion, _posted_version(form))
    if not form.validate_on_submit():
        _hidden_errors_to_summary(form)
        return render_detail(infusion_id, details_form=form)
    try:
        changed = services.update_infusion(
            infusion, form.service_data(), _actor(), form.version.data
        )
    except RuleError as error:
        db.session.rollback()
        show_on_form(form, error, weight_kg="weight")
        return render_detail(infusion_id, 409, details_form=form)
    db.session.commit()
    flash("Checklist and details saved." if changed else "Nothing had changed.", "success")
    return _detail(infusion_id, "details")


def _act(
    infusion_id: int,
    form_name: str,
    act,
    done: str,
    anchor: str | None = None,
    errors_on_top: bool = False,
):
    """Validate one action form, call its service, commit once, then back to the page.

    A click drawn from an older page, or for an action the state no longer allows, is refused
    (409) before the form is looked at: its form may not even be on the page any more."""
    form_class, prefix, action = ACTION_FORMS[form_name]
    infusion = services.get_infusion_or_404(infusion_id)
    form = form_class(prefix=prefix)
    guards.ensure_editable(infusion)
    guards.check_version(infusion, _posted_version(form))
    services.ensure_allowed(infusion, action)
    if not form.validate_on_submit():
        _hidden_errors_to_summary(form)
        return render_detail(infusion_id, **{form_name: form})
    try:
        act(infusion, form)
    except RuleError as error:
        db.session.rollback()
        if errors_on_top:
            form.form_errors.append(str(error))
        else:
            show_on_form(form, error)
        return render_detail(infusion_id, 409, **{form_name: form})
    db.session.commit()
    flash(done, "success")
    return _detail(infusion_id, anchor)


@bp.route("/infusions/<int:infusion_id>/check-in", methods=["POST"])
@clinician_required
def check_in(infusion_id: int):
    return _act(
        infusion_id,
        "checkin_form",
        lambda infusion, form: services.check_in(infusion, _actor(), version=form.version.data),
        "Checked in. Take the baseline reading.",
    )


@bp.route("/infusions/<int:infusion_id>/start", methods=["POST"])
@clinician_required
def start(infusion_id: int):
    # The override box is shown to physicians only, so a refusal is said at the top.
    return _act(
        infusion_id,
        "start_form",
        lambda infusion, form: services.start_infusion(
            infusion,
            _actor(),
            override_reason=form.override_reason.data,
            version=form.version.data,
        ),
        "Infusion started.",
        errors_on_top=True,
    )


@bp.route("/infusions/<int:infusion_id>/pause", methods=["POST"])
@clinician_required
def pause(infusion_id: int):
    return _act(
        infusion_id,
        "pause_form",
        lambda infusion, form: services.pause_infusion(
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
        lambda infusion, form: services.resume_infusion(
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
        lambda infusion, form: services.change_rate(
            infusion, _actor(), form.mg_per_h.data, form.reason.data, version=form.version.data
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
        lambda infusion, form: services.stop_infusion(
            infusion, _actor(), reason=form.reason.data or "", version=form.version.data
        ),
        "Infusion stopped. Recovery observation has begun.",
    )


@bp.route("/infusions/<int:infusion_id>/cancel", methods=["POST"])
@clinician_required
def cancel(infusion_id: int):
    return _act(
        infusion_id,
        "cancel_form",
        lambda infusion, form: services.cancel_infusion(
            infusion, _actor(), form.reason.data, version=form.version.data
        ),
        "Session cancelled.",
    )


# --- Discharge --------------------------------------------------------------------------------


@bp.route("/infusions/<int:infusion_id>/discharge", methods=["GET", "POST"])
@clinician_required
def discharge(infusion_id: int):
    infusion = services.get_infusion_or_404(infusion_id)
    guards.ensure_editable(infusion)
    if request.method == "POST":
        services.ensure_allowed(infusion, "discharge")  # a refused POST answers 409
    elif "discharge" not in clinical.allowed_actions(infusion.status):
        flash(
            f"Discharge follows recovery; the session is {infusion.status_label.lower()}.",
            "error",
        )
        return _detail(infusion_id)
    last = services.latest_reading(infusion)
    baseline = services.latest_reading(infusion, "baseline")
    prefill = clinical.aldrete_prefill(
        services.reading_values(last), services.reading_values(baseline)
    )
    form = DischargeForm(version=infusion.version, escort=infusion.escort_name)
    if not form.is_submitted():
        for name, score in prefill.items():
            form[name].data = score
    status = 200
    if form.validate_on_submit():
        try:
            services.discharge(infusion, form.service_data(), _actor(), version=form.version.data)
        except RuleError as error:
            db.session.rollback()
            show_on_form(form, error)
            status = 409
            infusion = services.get_infusion_or_404(infusion_id)
        else:
            db.session.commit()
            flash(f"Session {infusion.series_number}: patient discharged.", "success")
            return _detail(infusion_id)
    else:
        _hidden_errors_to_summary(form)
    now = utcnow()
    remaining = services.observation_remaining(infusion, now)
    return render_template(
        "infusions/discharge.html",
        form=form,
        infusion=infusion,
        patient=infusion.patient,
        prefill=prefill,
        last=last,
        remaining_min=math.ceil(remaining.total_seconds() / 60),
        earliest=now + remaining,
        status_kinds=services.STATUS_KINDS,
        aldrete_min=clinical.ALDRETE_DISCHARGE_MIN,
    ), status
