"""The patient page drawn once for each state of what it shows (issue 8): a view finds it by
one small query over the patient, their sessions and scores (which also says whether the
patient exists), and only a change to one of them, or to a name the page shows, draws it
again: the patient and their history are loaded only then. And a page of search results,
kept drawn under the rows it shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from flask import abort, current_app, render_template
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import aliased

from ..extensions import db
from ..memo import digest, drawn, kept, shown
from ..models import SEXES, Assessment, InfusionSession, Patient, Staff, indication_label
from ..timeutil import clinic_today

# Patients each worker keeps drawn: more than a clinic's day of charts looked at, and more
# than a round of the benchmark's 100 patients.
DRAWN_PATIENTS = 128

PATIENT = sa.bindparam("patient_id")
_FIRST, _SECOND = aliased(Staff), aliased(Staff)
_NAMES = (_FIRST.full_name, _FIRST.credentials, _SECOND.full_name, _SECOND.credentials)


def _part(kind: str, entity, row_id, marker, first_id, second_id=None) -> sa.Select:
    """(kind, id, marker, the names of the one or two people it shows) of one kind of row."""
    return (
        sa.select(sa.literal(kind), row_id, marker, *_NAMES)
        .select_from(entity)
        .outerjoin(_FIRST, _FIRST.id == first_id)
        .outerjoin(_SECOND, sa.false() if second_id is None else _SECOND.id == second_id)
    )


# Everything the body shows, by what changes it: each session's version (any reading, event
# or adverse event in it makes a new one: guards.touch), each score's void (scores are never
# edited), the patient's version, and the name of everyone the page names.
_FINGERPRINT = sa.union_all(
    _part(
        "session",
        InfusionSession,
        InfusionSession.id,
        InfusionSession.version,
        InfusionSession.clinician_id,
        InfusionSession.signed_by_id,
    ).where(InfusionSession.patient_id == PATIENT),
    _part(
        "score",
        Assessment,
        Assessment.id,
        sa.case((Assessment.voided_at.is_(None), 0), else_=1),
        Assessment.recorded_by_id,
        Assessment.voided_by_id,
    ).where(Assessment.patient_id == PATIENT),
    _part("patient", Patient, Patient.id, Patient.version, Patient.updated_by_id).where(
        Patient.id == PATIENT
    ),
)


def fingerprint(patient_id: int) -> str | None:
    """None: no such patient."""
    rows = db.session.execute(_FINGERPRINT, {"patient_id": patient_id}).all()
    if not any(row[0] == "patient" for row in rows):
        return None
    return digest(rows)


@dataclass(frozen=True)
class DrawnPage:
    title: str
    body: Markup


def drawn_page(patient_id: int, draw: Callable[[], tuple[str, str]]) -> DrawnPage:
    """The page's title and body `draw()` makes, kept under the patient's fingerprint and
    what else it reads: who views (Correct and Void are offered by role and by who recorded
    the score), today (the age), and the clinic's zone (every time on it). 404 when there is
    no such patient."""
    version = fingerprint(patient_id)
    if version is None:
        abort(404)
    key = (
        patient_id,
        version,
        current_user.id,
        current_user.is_physician,
        clinic_today(),
        current_app.config["CLINIC_TIMEZONE"],
    )

    page = kept("drawn_patients", key, draw, DRAWN_PATIENTS)
    return DrawnPage(page.title, shown(page))


class ResultRow(NamedTuple):
    """A patient as a page of search results shows them, in words."""

    id: int
    last_name: str
    first_name: str
    mrn: str
    born: str
    sex: str
    indication: str
    active: bool


def results_table(found: list[tuple]) -> Markup:
    """A page of search results (rows of services.RESULT_COLUMNS), kept drawn under the rows
    as read: the same patients found again, unchanged, are not drawn again."""
    rows = tuple(tuple(row) for row in found)

    def draw() -> str:
        shown_rows = [
            ResultRow(
                patient_id,
                last_name,
                first_name,
                mrn,
                born.isoformat(),
                SEXES.get(sex, sex),
                indication_label(indication, other),
                active,
            )
            for patient_id, last_name, first_name, mrn, born, sex, indication, other, active
            in rows
        ]
        return render_template("patients/_results.html", rows=shown_rows)

    return drawn("search_results", rows, draw)
