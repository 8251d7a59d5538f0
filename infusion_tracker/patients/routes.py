"""Patients: search, register, edit, archive/reactivate, the patient page, outcome scores."""

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from wtforms import SelectChoice

from .. import audit
from ..errors import form_status, refusals_flashed, refusals_on
from ..extensions import db
from ..infusions.guards import ensure_editable
from ..inputs import arg_id, bounded_id, page_number
from ..models import SEXES, InfusionSession
from ..permissions import clinician_required
from ..security import is_safe_next
from ..timeutil import clinic_today, format_datetime, utcnow
from . import assessments, history, history_cells, services
from .forms import AssessmentForm, PatientEditForm, PatientForm, PatientSearchForm, VoidForm
from .page import drawn_page, results_table

bp = Blueprint("patients", __name__, url_prefix="/patients")

# An endpoint another area provides; the patient page links to it once it exists (and to
# each session: history_cells.SESSION_ENDPOINT).
PLAN_ENDPOINT = "infusions.plan"


def _actor():
    return current_user._get_current_object()


def _safe_next(target: str | None) -> str | None:
    return target if is_safe_next(target) else None


@bp.route("/")
@clinician_required
def search():
    form = PatientSearchForm(request.args)
    page = page_number()
    problem = None
    pagination = None
    if form.validate():
        try:
            found = services.search_statement(form.q.data, form.archived.data)
        except services.SearchProblem as error:
            problem = str(error)
        else:
            pagination = services.search_page(found, page, current_app.config["PER_PAGE"])
            audit.record("patient.searched", details={
                "query": form.q.data,
                "results": f"more than {services.COUNT_LIMIT}" if pagination.more
                else pagination.total,
                "shown": [patient.id for patient in pagination.items]})
    return render_template(
        "patients/search.html",
        form=form,
        pagination=pagination,
        problem=problem,
        results=results_table(pagination.items) if pagination and pagination.total else None,
    )


@bp.route("/new", methods=["GET", "POST"])
@clinician_required
def new():
    form = PatientForm()
    if form.validate_on_submit():
        with refusals_on(form):
            patient = services.create_patient(form.values(), _actor())
            flash("Patient registered.", "success")
            return redirect(url_for("patients.view", patient_id=patient.id))
    return render_template("patients/form.html", form=form, patient=None), form_status(form)


@bp.route("/<int:patient_id>")
@clinician_required
def view(patient_id: int):
    def draw() -> tuple[str, str]:
        patient = services.get_patient_or_404(patient_id)
        series = history.patient_history(patient)
        body = render_template(
            "patients/_view_body.html",
            patient=patient,
            history=series,
            age=services.age_on(patient.date_of_birth, clinic_today()),
            sexes=SEXES,
            can_plan=PLAN_ENDPOINT in current_app.view_functions,
            cells=history_cells.Cells.for_page(
                patient.id, series, lambda score: assessments.can_void(score, current_user)
            ),
        )
        return patient.full_name, body

    page = drawn_page(patient_id, draw)  # 404: no audit row
    services.record_view(patient_id, _actor())
    return render_template("patients/view.html", title=page.title, body=page.body)


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@clinician_required
def edit(patient_id: int):
    patient = services.get_patient_or_404(patient_id)
    form = PatientEditForm(obj=patient, patient_id=patient.id)
    if not form.is_submitted():
        audit.record("patient.edit_viewed", entity=patient, patient_id=patient.id)
    if form.validate_on_submit():
        with refusals_on(form):
            changed = services.update_patient(patient, form.values(), _actor(), form.version.data)
            flash("Changes saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("patients.view", patient_id=patient.id))
    return render_template(
        "patients/form.html", form=form, patient=patient
    ), form_status(form)


def _toggle_active(patient_id: int, action):
    patient = services.get_patient_or_404(patient_id)
    with refusals_flashed():
        action(patient, _actor())
        flash("Patient record reactivated." if patient.active else "Patient record archived.",
              "success")
    return redirect(url_for("patients.view", patient_id=patient_id))


@bp.route("/<int:patient_id>/archive", methods=["POST"])
@clinician_required
def archive(patient_id: int):
    return _toggle_active(patient_id, services.archive_patient)


@bp.route("/<int:patient_id>/reactivate", methods=["POST"])
@clinician_required
def reactivate(patient_id: int):
    return _toggle_active(patient_id, services.reactivate_patient)


def _session_choices(patient_id: int) -> list[SelectChoice]:
    infusions = db.session.scalars(
        sa.select(InfusionSession)
        .where(InfusionSession.patient_id == patient_id, InfusionSession.status != "cancelled")
        .order_by(InfusionSession.series_number.desc())
    )
    return [SelectChoice("", "Not linked to a session")] + [
        SelectChoice(
            infusion.id,
            f"Infusion {infusion.series_number} — "
            f"{format_datetime(infusion.started_at or infusion.scheduled_for, '%d %b %Y')}"
            f" ({infusion.status_label})",
        )
        for infusion in infusions
    ]


@bp.route("/<int:patient_id>/assessments/new", methods=["GET", "POST"])
@clinician_required
def new_assessment(patient_id: int):
    patient = services.get_patient_or_404(patient_id)
    form = AssessmentForm()
    form.infusion_id.choices = _session_choices(patient.id)
    corrects = None
    corrects_id = bounded_id(form.corrects_id.data) if request.method == "POST" else None
    corrects_id = corrects_id or arg_id("corrects")
    if corrects_id:
        corrects = assessments.get_assessment_or_404(corrects_id)
        if corrects.patient_id != patient.id:
            abort(404)
    if request.method == "GET":
        audit.record("assessment.form_viewed", entity=patient, patient_id=patient.id)
        form.next.data = _safe_next(request.args.get("next"))
        form.taken_at.data = utcnow()
        form.infusion_id.data = arg_id("infusion_id")
        if corrects is not None:
            form.corrects_id.data = corrects.id
            form.instrument.data = corrects.instrument
            form.score.data = corrects.score
            form.taken_at.data = corrects.taken_at
            form.infusion_id.data = corrects.infusion_id
            for item, answer in zip(form.item_fields(), corrects.items or [], strict=False):
                item.data = answer
    if form.validate_on_submit():
        infusion = (
            db.session.get(InfusionSession, form.infusion_id.data)
            if (form.infusion_id.data)
            else None
        )
        with refusals_on(form):
            assessment = assessments.record_assessment(
                patient,
                instrument=form.instrument.data,
                score=form.score.data,
                items=form.items(),
                taken_at=form.taken_at.data,
                infusion=infusion,
                actor=_actor(),
                corrects=corrects,
                correction_reason=form.correction_reason.data or "",
            )
            flash(
                f"{assessment.instrument_label} "
                f"{assessments.score_label(assessment.instrument, assessment.score)} recorded"
                + (" as a correction." if corrects is not None else "."),
                "success",
            )
            if assessment.flag_physician:
                flash(
                    f"PHQ-9 item 9 (thoughts of death or self-harm) answered "
                    f"{assessment.items[assessments.PHQ9_SELF_HARM_ITEM]}: the physician is "
                    "flagged. Assess suicide risk now and tell the physician in person.",
                    "error",
                )
            target = _safe_next(form.next.data)
            return redirect(target or url_for("patients.view", patient_id=patient.id))
    return render_template(
        "patients/assessment_form.html",
        patient=patient,
        form=form,
        corrects=corrects,
        may_correct=corrects is None or assessments.can_void(corrects, current_user),
        score_label=assessments.score_label,
        stem=assessments.PHQ9_STEM,
        back=_safe_next(form.next.data) or url_for("patients.view", patient_id=patient.id),
    ), form_status(form)


@bp.route("/assessments/<int:assessment_id>/void", methods=["GET", "POST"])
@clinician_required
def void_assessment(assessment_id: int):
    assessment = assessments.get_assessment_or_404(assessment_id)
    patient = services.get_patient_or_404(assessment.patient_id)
    if assessment.infusion is not None:
        # A signed session's scores are locked like the rest of it (409, SPEC §3).
        ensure_editable(assessment.infusion)
    form = VoidForm()
    if request.method == "GET":
        audit.record("assessment.viewed", entity=assessment, patient_id=patient.id)
        form.next.data = _safe_next(request.args.get("next"))
    back = _safe_next(form.next.data) or url_for("patients.view", patient_id=patient.id)
    if form.validate_on_submit():
        with refusals_on(form):
            assessments.void_assessment(assessment, form.reason.data, _actor())
            flash(f"{assessment.instrument_label} score voided.", "success")
            return redirect(back)
    return render_template(
        "patients/void_assessment.html",
        patient=patient,
        assessment=assessment,
        form=form,
        back=back,
        may_void=assessments.can_void(assessment, current_user) and not assessment.is_voided,
        score_label=assessments.score_label,
    ), form_status(form)
