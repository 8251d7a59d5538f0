"""Patient records: register, edit (optimistic locking), archive/reactivate, search.

Patients are never deleted (SPEC §2): an archived patient drops out of the default search
but keeps every session, reading and score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .. import audit, paging
from ..errors import RuleError, StaleRecord
from ..extensions import db
from ..memo import Memo, app_kept
from ..models import Patient, PatientListVersion, Staff, name_key
from ..timeutil import utcnow

# Generated MRNs look like "IT-000123"; a typed MRN may be anything unique.
MRN_PREFIX = "IT-"
MRN_DIGITS = 6
MRN_ATTEMPTS = 5

PATIENT_FIELDS = (
    "mrn",
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "indication",
    "indication_other",
    "allergies",
    "medications",
    "emergency_contact",
    "notes",
)

# Search accepts dates the way US staff and the date input write them.
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
DATE_LIKE = re.compile(r"^\d{1,4}[-/]\d{1,2}[-/]\d{1,4}$")


def get_patient_or_404(patient_id: int) -> Patient:
    return db.get_or_404(Patient, patient_id)


def normalize_mrn(value: str | None) -> str:
    return (value or "").strip().upper()


def mrn_taken(mrn: str, exclude_id: int | None = None) -> bool:
    query = sa.select(Patient.id).where(Patient.mrn == normalize_mrn(mrn))
    if exclude_id is not None:
        query = query.where(Patient.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def next_mrn() -> str:
    """One past the highest generated MRN; typed MRNs in the same pattern count too."""
    candidates = db.session.scalars(
        sa.select(Patient.mrn)
        .where(Patient.mrn.like(f"{MRN_PREFIX}%"))
        .order_by(sa.func.length(Patient.mrn).desc(), Patient.mrn.desc())
        .limit(50)
    )
    for mrn in candidates:
        suffix = mrn[len(MRN_PREFIX) :]
        if suffix.isdigit():
            return f"{MRN_PREFIX}{int(suffix) + 1:0{MRN_DIGITS}d}"
    return f"{MRN_PREFIX}{1:0{MRN_DIGITS}d}"


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    values = {name: data.get(name) for name in PATIENT_FIELDS}
    for name, value in values.items():
        if isinstance(value, str):
            values[name] = value.strip()
    values["mrn"] = normalize_mrn(values["mrn"])
    if values["indication"] != "other":
        values["indication_other"] = ""
    for name in ("indication_other", "allergies", "medications", "emergency_contact", "notes"):
        values[name] = values[name] or ""
    return values


def _insert(patient: Patient) -> bool:
    """Insert in a savepoint; False when the MRN was taken meanwhile (unique constraint)."""
    try:
        with db.session.begin_nested():
            db.session.add(patient)
    except IntegrityError:
        return False
    return True


def create_patient(data: dict[str, Any], actor: Staff) -> Patient:
    """Register a patient; a blank MRN gets the next generated one, never a colliding one."""
    values = _clean(data)
    typed_mrn = values.pop("mrn")
    if typed_mrn and mrn_taken(typed_mrn):
        raise RuleError(f"MRN {typed_mrn} already belongs to another patient.")
    for _ in range(MRN_ATTEMPTS):
        patient = Patient(
            mrn=typed_mrn or next_mrn(), created_by_id=actor.id, created_at=utcnow(), **values
        )
        if _insert(patient):
            break
        if typed_mrn:
            raise RuleError(f"MRN {typed_mrn} already belongs to another patient.")
    else:
        raise RuleError("Could not generate a free MRN; try again.")
    audit.record(
        "patient.created",
        entity=patient,
        patient_id=patient.id,
        actor=actor,
        details={"after": audit.snapshot(patient, PATIENT_FIELDS)},
    )
    return patient


def check_version(patient: Patient, form_version: int) -> None:
    """Refuse a save drawn from an older version of the record (no lost updates, SPEC §3)."""
    if int(form_version) != patient.version:
        who = patient.updated_by.display_name if patient.updated_by else "another user"
        raise StaleRecord(who, patient.updated_at, what="This patient's record")


def update_patient(patient: Patient, data: dict[str, Any], actor: Staff, form_version: int) -> bool:
    """Save an edit drawn from `form_version`; audited with what changed. False if nothing did."""
    check_version(patient, form_version)
    values = _clean(data)
    if not values["mrn"]:
        raise RuleError("An MRN is required.")
    if values["mrn"] != patient.mrn and mrn_taken(values["mrn"], exclude_id=patient.id):
        raise RuleError(f"MRN {values['mrn']} already belongs to another patient.")
    before = audit.snapshot(patient, PATIENT_FIELDS)
    # One UPDATE (one version step): nothing below may autoflush half of the change.
    with db.session.no_autoflush:
        for name, value in values.items():
            setattr(patient, name, value)
        after = audit.snapshot(patient, PATIENT_FIELDS)
        changed = audit.changes(before, after)
        if not changed:
            # Equal values make no UPDATE, so the version (and others' open forms) stay valid.
            return False
        patient.updated_at = utcnow()
        patient.updated_by_id = actor.id
    try:
        db.session.flush()
    except IntegrityError as error:
        raise RuleError(f"MRN {values['mrn']} already belongs to another patient.") from error
    audit.record(
        "patient.updated",
        entity=patient,
        patient_id=patient.id,
        actor=actor,
        details={"changes": changed},
    )
    return True


def _set_active(patient: Patient, active: bool, actor: Staff) -> None:
    if patient.active == active:
        state = "active" if active else "archived"
        raise RuleError(f"This patient is already {state}.")
    with db.session.no_autoflush:
        patient.active = active
        patient.updated_at = utcnow()
        patient.updated_by_id = actor.id
    audit.record(
        "patient.reactivated" if active else "patient.archived",
        entity=patient,
        patient_id=patient.id,
        actor=actor,
        details={"changes": {"active": [not active, active]}},
    )


def archive_patient(patient: Patient, actor: Staff) -> None:
    """Archive instead of delete: the record and its history stay (SPEC §2)."""
    _set_active(patient, False, actor)


def reactivate_patient(patient: Patient, actor: Staff) -> None:
    """Bring an archived patient back into the default search."""
    _set_active(patient, True, actor)


def record_view(patient_id: int, actor: Staff) -> None:
    """Viewing a patient's record is itself audited (who looked at whose chart)."""
    audit.record(
        "patient.viewed",
        entity_type=Patient.__tablename__,
        entity_id=patient_id,
        patient_id=patient_id,
        actor=actor,
    )


def age_on(born: date, day: date) -> int:
    """Age in whole years on `day`."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def parse_date(text: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _starts_with(column, name: str):
    """`column` starts with the parameter `name`, as the range [name_from, name_to) that a
    B-tree index serves (values from prefix_range). Code-point order: SQLite's, and
    PostgreSQL's under the C collation (in a database made with a linguistic collation, an
    MRN's punctuation may sort apart)."""
    return sa.and_(
        column >= sa.bindparam(f"{name}_from"), column < sa.bindparam(f"{name}_to")
    )


def prefix_range(name: str, prefix: str) -> dict[str, str]:
    """The parameters of _starts_with(column, name) for `prefix`."""
    return {f"{name}_from": prefix, f"{name}_to": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


# Matches a search counts before it says "more than": a chain's three letters of a name
# match hundreds, which nobody pages through, and counting them cost a tenth of the page.
COUNT_LIMIT = 100


class SearchProblem(ValueError):
    """The search text looks like a date but is not one."""


@dataclass(frozen=True)
class Search:
    """A patient search: its statements (a page of it, and its count, as paging.prepared
    makes them), the same for every search of its shape and so built once, and the values
    typed."""

    rows: sa.Select
    counted: sa.Select
    params: dict[str, Any]
    shape: tuple  # what built the statements: (kind, words, include_archived)


def search_statement(text: str, include_archived: bool = False) -> Search:
    """Patients matching a name, an MRN (or its start) or a date of birth, by name.

    Each word typed must start the first or the last name, compared as name_key does (no
    accents, case or punctuation: "lopez-g" finds López-Grant); an MRN matches from its
    start. Both are ranges on an index, so search does not grow with the number of patients."""
    text = (text or "").strip()
    if not text:
        return _search("all", 0, include_archived, {})
    if DATE_LIKE.match(text):
        day = parse_date(text)
        if day is None:
            raise SearchProblem(
                f"“{text}” is not a valid date; write it as YYYY-MM-DD or MM/DD/YYYY."
            )
        return _search("born", 0, include_archived, {"born": day})
    params = prefix_range("mrn", normalize_mrn(text))
    keys = [key for key in map(name_key, re.split(r"[\s,]+", text)) if key]
    if not keys:
        return _search("mrn", 0, include_archived, params)
    params.update(prefix_range("longest", max(keys, key=len)))
    for number, key in enumerate(keys):
        params.update(prefix_range(f"word{number}", key))
    return _search("words", len(keys), include_archived, params)


def _search(kind: str, words: int, include_archived: bool, params: dict) -> Search:
    shape = (kind, words, include_archived)
    return Search(*_search_shape(*shape), params, shape)


# Pages of results each worker keeps (their rows and count), by the patient list's version.
SEARCH_PAGES = 256
_LIST_VERSION = sa.select(PatientListVersion.version).where(PatientListVersion.id == 1)


def search_page(found: Search, page: int, per_page: int) -> paging.PreparedPagination:
    """A page of a search's results and their count, kept under the patient list's version.
    The database moves it on any write to a patient, in the transaction that writes
    (models.PatientListVersion), so a page kept under the version this view reads is the page
    this view would read: the same search again reads one number, not its hundreds of
    matches."""
    key = (
        db.session.scalar(_LIST_VERSION),
        found.shape,
        tuple(sorted(found.params.items())),
        page,
        per_page,
    )
    pages = app_kept("search_pages", lambda: Memo[paging.PreparedPagination](SEARCH_PAGES))
    return pages.get(key, lambda: paging.paginate(
        found.rows,
        found.counted,
        found.params,
        page,
        per_page,
        as_rows=True,
        count_limit=COUNT_LIMIT,
    ))


# What a page of results shows of each patient (patients/page.results_table), read as values.
RESULT_COLUMNS = (
    Patient.id,
    Patient.last_name,
    Patient.first_name,
    Patient.mrn,
    Patient.date_of_birth,
    Patient.sex,
    Patient.indication,
    Patient.indication_other,
    Patient.active,
)


@lru_cache(maxsize=64)
def _search_shape(kind: str, words: int, include_archived: bool) -> tuple[sa.Select, sa.Select]:
    """A page of this shape of search (rows of RESULT_COLUMNS) and its count, which stops
    at paginate's `count_limit` (paging.prepared; a name's, _name_search)."""
    shown = [] if include_archived else [Patient.active.is_(True)]
    if kind == "words":
        return _name_search(words, shown)
    query = sa.select(*RESULT_COLUMNS).where(*shown)
    if kind == "born":
        query = query.where(Patient.date_of_birth == sa.bindparam("born"))
    elif kind == "mrn":
        query = query.where(_starts_with(Patient.mrn, "mrn"))
    return paging.prepared(
        query.order_by(Patient.last_name, Patient.first_name, Patient.id), capped=True
    )


def _name_search(words: int, shown: list) -> tuple[sa.Select, sa.Select]:
    """_search_shape of words typed: the matches come from three index ranges (the MRN, and
    the longest word as a first or a last name), every word checked on them; a page of them
    is chosen by name, and only its rows are read.

    The name ranges are read from indexes that also hold the names the page is sorted by
    (ix_patient_first_name_search, ix_patient_last_name_search): three letters of a name match
    ten times the patients at `chain` (525), whose rows, read to sort them, had been most of
    the statement on SQLite (bench/RESULTS.md, Stop 37)."""
    names = [
        sa.or_(
            _starts_with(Patient.first_name_key, f"word{number}"),
            _starts_with(Patient.last_name_key, f"word{number}"),
        )
        for number in range(words)
    ]

    def matching(*where) -> sa.Select:
        return sa.select(Patient.id, Patient.last_name, Patient.first_name).where(*where, *shown)

    matches = sa.union(
        matching(_starts_with(Patient.mrn, "mrn")),
        matching(_starts_with(Patient.first_name_key, "longest"), *names),
        matching(_starts_with(Patient.last_name_key, "longest"), *names),
    )
    # Paged here, not by paging.prepared: that takes a SELECT, and the union wrapped in one is
    # a subquery SQLite reads apart before sorting (a page at `chain` 0.50 -> 0.87 ms).
    found = matches.selected_columns
    page = (
        matches.order_by(found.last_name, found.first_name, found.id)
        .limit(paging.LIMIT)
        .offset(paging.OFFSET)
        .subquery("page")
    )
    rows = (
        sa.select(*RESULT_COLUMNS)
        .join(page, page.c.id == Patient.id)
        .order_by(page.c.last_name, page.c.first_name, page.c.id)
    )
    counted = sa.select(sa.func.count()).select_from(matches.limit(paging.CAP).subquery())
    return rows, counted
