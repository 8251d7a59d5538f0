"""A patient's readings as CSV: one row per reading, voided rows kept and marked.

Columns (units in the header; times both in clinic time and as ISO 8601 UTC):
MRN, Session number, Session ID, Reading ID, Taken at (clinic time, <zone>),
Taken at (UTC, ISO 8601), Phase, Systolic BP (mmHg), Diastolic BP (mmHg), Heart rate (bpm),
Respiratory rate (breaths/min), SpO2 (%), O2 flow (L/min; blank = room air),
Temperature (°C), Rhythm, AVPU, MOAA/S (0-5), Pain (0-10), NEWS2, Severity, Flags, Note,
Recorded by, Entered at (UTC, ISO 8601), Status (VOIDED or valid), Void reason, Voided by,
Voided at (UTC, ISO 8601), Corrects reading ID.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import InfusionSession, Patient, Reading, Staff
from ..vocab import AVPU, PHASES, RHYTHMS
from .fhir import instant, staff_name

VOIDED = "VOIDED"
VALID = "valid"


def header(zone: ZoneInfo) -> list[str]:
    return [
        "MRN",
        "Session number",
        "Session ID",
        "Reading ID",
        f"Taken at (clinic time, {zone.key})",
        "Taken at (UTC, ISO 8601)",
        "Phase",
        "Systolic BP (mmHg)",
        "Diastolic BP (mmHg)",
        "Heart rate (bpm)",
        "Respiratory rate (breaths/min)",
        "SpO2 (%)",
        "O2 flow (L/min; blank = room air)",
        "Temperature (°C)",
        "Rhythm",
        "AVPU",
        "MOAA/S (0-5)",
        "Pain (0-10)",
        "NEWS2",
        "Severity",
        "Flags",
        "Note",
        "Recorded by",
        "Entered at (UTC, ISO 8601)",
        f"Status ({VOIDED} or {VALID})",
        "Void reason",
        "Voided by",
        "Voided at (UTC, ISO 8601)",
        "Corrects reading ID",
    ]


def _text(value: str | None) -> str:
    """Free text, defused: a spreadsheet would run a cell starting = + - @ as a formula."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _utc(value: datetime | None) -> str:
    return instant(value) if value is not None else ""


def _rhythm(reading: Reading) -> str:
    if not reading.rhythm:
        return ""
    if reading.rhythm == "other" and reading.rhythm_other:
        return f"Other: {reading.rhythm_other}"
    return RHYTHMS.get(reading.rhythm, reading.rhythm)


def reading_rows(patient: Patient) -> list[sa.Row]:
    """Every reading of the patient's sessions, in series order then time order (voided
    included), as plain rows with the two staff names: one query, without building a Reading
    object for each of thousands of rows (most of the export's time, bench/RESULTS.md)."""
    recorded_by, voided_by = aliased(Staff), aliased(Staff)
    statement = (
        sa.select(
            *Reading.__table__.c,
            InfusionSession.series_number,
            recorded_by.full_name.label("recorded_by_name"),
            recorded_by.credentials.label("recorded_by_credentials"),
            voided_by.full_name.label("voided_by_name"),
            voided_by.credentials.label("voided_by_credentials"),
        )
        .join(InfusionSession, Reading.infusion_id == InfusionSession.id)
        .join(recorded_by, Reading.recorded_by_id == recorded_by.id)
        .outerjoin(voided_by, Reading.voided_by_id == voided_by.id)
        .where(InfusionSession.patient_id == patient.id)
        .order_by(InfusionSession.series_number, Reading.taken_at, Reading.id)
    )
    return list(db.session.execute(statement))


def reading_row(patient: Patient, r: sa.Row, zone: ZoneInfo):
    return [
        _text(patient.mrn),
        r.series_number,
        r.infusion_id,
        r.id,
        r.taken_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        _utc(r.taken_at),
        PHASES.get(r.phase, r.phase),
        _number(r.systolic),
        _number(r.diastolic),
        _number(r.heart_rate),
        _number(r.resp_rate),
        _number(r.spo2),
        _number(r.o2_flow_lpm or None),
        _number(r.temperature_c),
        _text(_rhythm(r)),
        f"{r.avpu} ({AVPU[r.avpu]})" if r.avpu in AVPU else "",
        _number(r.moaas),
        _number(r.pain),
        _number(r.news2),
        r.severity,
        _text("; ".join(f.get("message", "") for f in r.flags or [])),
        _text(r.note),
        _text(staff_name(r.recorded_by_name, r.recorded_by_credentials)),
        _utc(r.created_at),
        VOIDED if r.voided_at is not None else VALID,
        _text(r.void_reason) if r.voided_at is not None else "",
        _text(staff_name(r.voided_by_name, r.voided_by_credentials)),
        _utc(r.voided_at),
        _number(r.corrects_id),
    ]


def readings_csv(patient: Patient, rows: list[sa.Row], zone: ZoneInfo) -> str:
    """The rows of reading_rows() as CSV, under the header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header(zone))
    writer.writerows(reading_row(patient, row, zone) for row in rows)
    return out.getvalue()
