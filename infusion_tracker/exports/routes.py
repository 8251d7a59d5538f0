"""Export routes: a patient's readings (CSV) and record (FHIR R4 Bundle). Every export is
audited (SPEC §5); both load everything up front, so the query count does not grow with the
number of readings."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint, Response, request
from sqlalchemy.orm import selectinload

from .. import audit
from ..extensions import db
from ..models import Assessment, InfusionSession, Patient, with_staff
from ..patients.services import get_patient_or_404
from ..permissions import clinician_required
from ..timeutil import clinic_today, clinic_zone
from . import csv_export, fhir

bp = Blueprint("exports", __name__)


def load_infusions(patient: Patient) -> list[InfusionSession]:
    """Sessions in series order with their events and staff names, in a fixed number of
    queries (their readings come as plain rows: csv_export.reading_rows)."""
    statement = (
        sa.select(InfusionSession)
        .where(InfusionSession.patient_id == patient.id)
        .order_by(InfusionSession.series_number)
        .options(
            with_staff(InfusionSession.clinician),
            with_staff(InfusionSession.physician),
            selectinload(InfusionSession.events),
        )
    )
    return list(db.session.scalars(statement).unique())


def load_assessments(patient: Patient) -> list[Assessment]:
    statement = (
        sa.select(Assessment)
        .where(Assessment.patient_id == patient.id)
        .order_by(Assessment.taken_at, Assessment.id)
        .options(with_staff(Assessment.recorded_by), with_staff(Assessment.voided_by))
    )
    return list(db.session.scalars(statement))


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while an export allocates its hundred thousand small
    dicts and lists: its passes, triggered by the allocations themselves, took 40 % of a FHIR
    export's CPU and free next to nothing (bench/RESULTS.md). Cycles made meanwhile are
    collected at the next pass after it resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_bundle(patient: Patient, base_url: str, now: datetime | None = None) -> dict:
    """The patient's FHIR bundle from the database (fhir.patient_bundle)."""
    with _gc_paused():
        infusions = load_infusions(patient)
        readings = csv_export.reading_rows(patient)
        assessments = load_assessments(patient)
        return fhir.patient_bundle(patient, infusions, readings, assessments, base_url, now)


def _attachment(body: str | bytes, mimetype: str, filename: str) -> Response:
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/patients/<int:patient_id>/readings.csv")
@clinician_required
def readings_csv(patient_id: int):
    patient = get_patient_or_404(patient_id)
    rows = csv_export.reading_rows(patient)
    body = csv_export.readings_csv(patient, rows, clinic_zone())
    sessions = db.session.scalar(
        sa.select(sa.func.count()).where(InfusionSession.patient_id == patient.id)
    )
    audit.record(
        "export.readings_csv",
        entity=patient,
        patient_id=patient.id,
        details={"rows": len(rows), "sessions": sessions},
    )
    filename = fhir.export_filename(patient, clinic_today(), "-readings.csv")
    return _attachment(body, "text/csv", filename)


@bp.route("/patients/<int:patient_id>/fhir")
@clinician_required
def fhir_bundle(patient_id: int):
    patient = get_patient_or_404(patient_id)
    base_url = request.url_root.rstrip("/") + "/fhir"
    bundle = build_bundle(patient, base_url)
    audit.record(
        "export.fhir",
        entity=patient,
        patient_id=patient.id,
        details={"entries": len(bundle["entry"]), "bundle_id": bundle["id"]},
    )
    filename = fhir.export_filename(patient, clinic_today(), ".fhir.json")
    return _attachment(fhir.bundle_json(bundle), "application/fhir+json", filename)
