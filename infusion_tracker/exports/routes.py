"""Export routes: a patient's readings (CSV) and record (FHIR R4 Bundle). Every export is
audited (SPEC §5); both load everything up front, so the query count does not grow with the
number of readings."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Blueprint, Response, request
from sqlalchemy.orm import joinedload, selectinload

from .. import audit
from ..extensions import db
from ..models import Assessment, InfusionSession, Patient, Reading
from ..patients.services import get_patient_or_404
from ..permissions import clinician_required
from ..timeutil import clinic_today, clinic_zone
from . import csv_export, fhir

bp = Blueprint("exports", __name__)


def load_infusions(patient: Patient) -> list[InfusionSession]:
    """Sessions in series order with their readings, events and staff names, in a fixed
    number of queries."""
    statement = (
        sa.select(InfusionSession)
        .where(InfusionSession.patient_id == patient.id)
        .order_by(InfusionSession.series_number)
        .options(
            joinedload(InfusionSession.clinician),
            joinedload(InfusionSession.physician),
            selectinload(InfusionSession.events),
            selectinload(InfusionSession.readings).options(
                joinedload(Reading.recorded_by), joinedload(Reading.voided_by)
            ),
        )
    )
    return list(db.session.scalars(statement).unique())


def load_assessments(patient: Patient) -> list[Assessment]:
    statement = (
        sa.select(Assessment)
        .where(Assessment.patient_id == patient.id)
        .order_by(Assessment.taken_at, Assessment.id)
        .options(joinedload(Assessment.recorded_by), joinedload(Assessment.voided_by))
    )
    return list(db.session.scalars(statement))


def _attachment(body: str, mimetype: str, filename: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/patients/<int:patient_id>/readings.csv")
@clinician_required
def readings_csv(patient_id: int):
    patient = get_patient_or_404(patient_id)
    infusions = load_infusions(patient)
    body = csv_export.readings_csv(patient, infusions, clinic_zone())
    audit.record(
        "export.readings_csv",
        entity=patient,
        patient_id=patient.id,
        details={"rows": csv_export.row_count(infusions), "sessions": len(infusions)},
    )
    filename = fhir.export_filename(patient, clinic_today(), "-readings.csv")
    return _attachment(body, "text/csv", filename)


@bp.route("/patients/<int:patient_id>/fhir")
@clinician_required
def fhir_bundle(patient_id: int):
    patient = get_patient_or_404(patient_id)
    infusions = load_infusions(patient)
    assessments = load_assessments(patient)
    base_url = request.url_root.rstrip("/") + "/fhir"
    bundle = fhir.patient_bundle(patient, infusions, assessments, base_url)
    audit.record(
        "export.fhir",
        entity=patient,
        patient_id=patient.id,
        details={"entries": len(bundle["entry"]), "bundle_id": bundle["id"]},
    )
    filename = fhir.export_filename(patient, clinic_today(), ".fhir.json")
    return _attachment(
        json.dumps(bundle, ensure_ascii=False, indent=1), "application/fhir+json", filename
    )
