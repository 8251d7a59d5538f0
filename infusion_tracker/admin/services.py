"""Staff administration and the audit log query. Every change writes an audit row with
what the account looked like before and after (never a password or a session token)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from wtforms import SelectChoice

from .. import audit, paging
from ..auth.services import STAFF_AUDIT_FIELDS, check_names, create_staff, end_sessions
from ..errors import RuleError
from ..extensions import db
from ..models import ROLES, AuditEvent, Patient, Staff, display_name
from ..passwords import hash_password, temporary_password
from ..patients.services import normalize_mrn
from ..timeutil import clinic_day_bounds, format_datetime, to_clinic, utcnow

# --- Staff accounts ----------------------------------------------------------------------


def get_staff_or_404(staff_id: int) -> Staff:
    return db.get_or_404(Staff, staff_id)


def all_staff() -> list[Staff]:
    """Active accounts first, then by name."""
    return list(
        db.session.scalars(
            sa.select(Staff).order_by(Staff.active.desc(), Staff.full_name, Staff.username)
        )
    )


def _record(action: str, staff: Staff, actor: Staff, before: dict, **extra) -> None:
    after = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    details = {"before": before, "after": after, "changes": audit.changes(before, after), **extra}
    audit.record(action, entity=staff, actor=actor, details=details)


def add_staff(
    username: str,
    full_name: str,
    credentials: str,
    role: str,
    actor: Staff,
    password: str | None = None,
) -> tuple[Staff, str | None]:
    """Create an account whose holder must choose a password at first sign-in.

    Returns the account and the generated temporary password (None when the admin gave one).
    """
    generated = None if password else temporary_password()
    staff = create_staff(
        username,
        full_name,
        role,
        password or generated,
        credentials=credentials,
        must_change_password=True,
        actor=actor,
    )
    return staff, generated


def update_staff(staff: Staff, full_name: str, credentials: str, actor: Staff) -> bool:
    """Change the display name and credentials; False when nothing changed."""
    full_name, credentials = check_names(full_name, credentials)
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    if (full_name, credentials) == (staff.full_name, staff.credentials):
        return False
    staff.full_name, staff.credentials = full_name, credentials
    _record("staff.updated", staff, actor, before)
    return True


def change_role(staff: Staff, role: str, actor: Staff) -> bool:
    """Change the role; an admin cannot demote themselves, so an admin always remains."""
    if role not in ROLES:
        raise RuleError(f"Role must be one of: {', '.join(ROLES.values())}.", field="role")
    if role == staff.role:
        return False
    if staff.id == actor.id:
        raise RuleError(
            "You cannot change your own role: another administrator must do it, so the clinic "
            "always keeps an administrator.",
            field="role",
        )
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    staff.role = role
    _record("staff.role_changed", staff, actor, before)
    return True


def deactivate(staff: Staff, actor: Staff) -> None:
    """Deactivate (accounts are never deleted) and end every session of the account now."""
    if staff.id == actor.id:
        raise RuleError(
            "You cannot deactivate your own account: another administrator must do it, so the "
            "clinic always keeps an administrator."
        )
    if not staff.active:
        raise RuleError(f"{staff.display_name} is already deactivated.")
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    staff.active = False
    end_sessions(staff)
    _record("staff.deactivated", staff, actor, before)


def reactivate(staff: Staff, actor: Staff) -> None:
    """Allow the account to sign in again."""
    if staff.active:
        raise RuleError(f"{staff.display_name} is already active.")
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    staff.active = True
    _record("staff.reactivated", staff, actor, before)


def reset_password(staff: Staff, actor: Staff) -> str:
    """Give the account a temporary password (returned once, never stored in clear), which
    the holder must change at next sign-in; ends the account's sessions and lifts any lock."""
    if staff.id == actor.id:
        raise RuleError("Use “Change password” for your own account; it asks for the current one.")
    password = temporary_password()
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    was_locked = staff.is_locked()
    staff.password_hash = hash_password(password)
    staff.password_changed_at = utcnow()
    staff.must_change_password = True
    staff.failed_logins = 0
    staff.locked_until = None
    end_sessions(staff)
    _record("staff.password_reset", staff, actor, before, unlocked=was_locked)
    return password


def unlock(staff: Staff, actor: Staff) -> None:
    """Lift a lockout before it expires, and forget the failed attempts."""
    if not staff.is_locked() and not staff.failed_logins:
        raise RuleError(f"{staff.display_name} is not locked.")
    before = audit.snapshot(staff, STAFF_AUDIT_FIELDS)
    details = {"locked_until": staff.locked_until, "failed_logins": staff.failed_logins}
    staff.locked_until = None
    staff.failed_logins = 0
    _record("staff.unlocked", staff, actor, before, **details)


# --- The audit log ----------------------------------------------------------------------

ANONYMOUS = "anonymous"
EXPORT_CHUNK = 1000
# Entries the audit page counts for its pager: beyond it "more than" (a day of a chain's log
# is tens of thousands, and counting ten thousand took a millisecond on PostgreSQL).
COUNT_LIMIT = 1_000


@dataclass
class AuditFilters:
    actor: str = ""  # "", "anonymous", or a staff id as text
    action: str = ""
    patient_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "newest"


# Built once, as the log's own statements: the audit log runs both on every view, and building
# a statement (and its cache key) cost more than SQLite's answer.
_ACTORS = sa.select(Staff.id, Staff.full_name, Staff.credentials, Staff.username).order_by(
    Staff.full_name, Staff.username
)
_PATIENT_BY_MRN = sa.select(Patient.id).where(Patient.mrn == sa.bindparam("mrn"))


def actor_choices() -> list[SelectChoice]:
    """Everyone who can appear as an actor, deactivated accounts included."""
    staff = db.session.execute(_ACTORS).all()
    choices = [SelectChoice("", "Anyone"), SelectChoice(ANONYMOUS, "Anonymous (not signed in)")]
    for row in staff:
        name = display_name(row.full_name, row.credentials)
        choices.append(SelectChoice(str(row.id), f"{name} ({row.username})"))
    return choices


def patient_id_for_mrn(mrn: str) -> int:
    """The patient with this MRN (case-insensitive), for the patient filter."""
    mrn = mrn.strip()
    # MRNs are stored normalised (upper case), so the unique index answers, not a scan.
    patient_id = db.session.scalar(_PATIENT_BY_MRN, {"mrn": normalize_mrn(mrn)})
    if patient_id is None:
        raise RuleError(f"No patient has the MRN “{mrn}”.", field="patient")
    return patient_id


@dataclass(frozen=True)
class LogShape:
    """Which filters are set, not their values: the log's statements are built once per shape
    (building them and their cache keys cost as much as running them), the values passed as
    parameters."""

    actor: str  # "", ANONYMOUS, or "staff"
    action: str  # "", "prefix" (staff. or staff*), "family" (staff), or "exact"
    patient: bool
    date_from: bool
    date_to: bool
    oldest_first: bool

    @property
    def by_time(self) -> bool:
        return (self.date_from or self.date_to) and not self.patient


def log_filter(filters: AuditFilters) -> tuple[LogShape, dict]:
    """The filters' shape (log_statement) and the values it takes as parameters."""
    params: dict = {}
    actor = action_kind = ""
    if filters.actor == ANONYMOUS:
        actor = ANONYMOUS
    elif filters.actor:
        actor, params["actor_id"] = "staff", int(filters.actor)
    action = filters.action.strip()
    if action.endswith(".") or action.endswith("*"):
        action_kind, params["action_prefix"] = "prefix", _like_prefix(action.rstrip("*"))
    elif action and "." not in action:
        # "staff" is the start of staff.created, staff.unlocked… (and an action itself, if any)
        action_kind = "family"
        params["action"], params["action_prefix"] = action, _like_prefix(action + ".")
    elif action:
        action_kind, params["action"] = "exact", action
    if filters.patient_id is not None:
        params["patient_id"] = filters.patient_id
    if filters.date_from:
        params["from_at"] = clinic_day_bounds(filters.date_from)[0]
    if filters.date_to:
        params["to_at"] = clinic_day_bounds(filters.date_to)[1]
    shape = LogShape(
        actor,
        action_kind,
        filters.patient_id is not None,
        bool(filters.date_from),
        bool(filters.date_to),
        filters.sort == "oldest",
    )
    return shape, params


@lru_cache(maxsize=64)
def log_statement(shape: LogShape) -> sa.Select:
    """The filtered audit rows, in chain order (ids follow time: rows are stamped under a
    lock); log_filter gives the parameters."""
    query = sa.select(AuditEvent)
    if shape.actor == ANONYMOUS:
        query = query.where(AuditEvent.actor_id.is_(None))
    elif shape.actor:
        query = query.where(AuditEvent.actor_id == sa.bindparam("actor_id"))
    starts = AuditEvent.action.like(sa.bindparam("action_prefix"), escape="\\")
    if shape.action == "prefix":
        query = query.where(starts)
    elif shape.action == "family":
        query = query.where(sa.or_(AuditEvent.action == sa.bindparam("action"), starts))
    elif shape.action == "exact":
        query = query.where(AuditEvent.action == sa.bindparam("action"))
    if shape.patient:
        query = query.where(AuditEvent.patient_id == sa.bindparam("patient_id"))
    if shape.date_from:
        query = query.where(AuditEvent.occurred_at >= sa.bindparam("from_at"))
    if shape.date_to:
        query = query.where(AuditEvent.occurred_at < sa.bindparam("to_at"))
    keys = order_keys(shape)
    return query.order_by(*(key.asc() if shape.oldest_first else key.desc() for key in keys))


def order_keys(shape: LogShape) -> tuple:
    """What the log is ordered by. Ids follow time, so both orders are the chain's; a date
    range without a patient is read in order from the (occurred_at, id) index instead of
    having the whole range sorted by id."""
    if shape.by_time:
        return (AuditEvent.occurred_at, AuditEvent.id)
    return (AuditEvent.id,)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape character \\) for what starts with `prefix`, taken literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


class ShownEntry(NamedTuple):
    """What a page of the log shows of an entry that can change after it was written (its
    actor's name, the name of the account it is about, its patient's MRN: as they are now),
    with its id. The page's table is kept under these (admin/routes.audit_table)."""

    id: int
    actor: str | None  # the actor's name and credentials; None for anonymous
    staff_name: str | None  # an entry about a staff account: that account's name
    mrn: str | None


_ACTOR = aliased(Staff, name="actor")
_SUBJECT = aliased(Staff, name="subject")
_SHOWN_COLUMNS = (
    AuditEvent.id,
    _ACTOR.full_name.label("actor_name"),
    _ACTOR.credentials.label("actor_credentials"),
    _SUBJECT.full_name.label("subject_name"),
    _SUBJECT.credentials.label("subject_credentials"),
    Patient.mrn,
)
_SHOWN_FROM = (
    sa.outerjoin(AuditEvent, _ACTOR, _ACTOR.id == AuditEvent.actor_id)
    .outerjoin(
        _SUBJECT,
        sa.and_(AuditEvent.entity_type == "staff", _SUBJECT.id == AuditEvent.entity_id),
    )
    .outerjoin(Patient, Patient.id == AuditEvent.patient_id)
)


@lru_cache(maxsize=64)
def _page_statements(shape: LogShape) -> tuple[sa.Select, sa.Select]:
    """A page of the log as the values it shows that may change (ShownEntry's), joined in
    one statement; the count from the log's own statement, without the joins."""
    query = log_statement(shape)
    shown = query.with_only_columns(*_SHOWN_COLUMNS).select_from(_SHOWN_FROM)
    counted = paging.prepared(query, capped=True)[1]
    return shown.limit(paging.LIMIT).offset(paging.OFFSET), counted


def page_of_events(filters: AuditFilters, page: int, per_page: int):
    """One page of the log as ShownEntry rows (entries_by_id reads what is drawn of them).
    The pager counts at most COUNT_LIMIT entries (counting ten million takes seconds):
    beyond it `more` is true and `total` is COUNT_LIMIT + 1."""
    shape, params = log_filter(filters)
    result = paging.paginate(
        *_page_statements(shape), params, page, per_page, as_rows=True, count_limit=COUNT_LIMIT
    )
    result.items = [
        ShownEntry(
            row.id,
            display_name(row.actor_name, row.actor_credentials) if row.actor_name else None,
            display_name(row.subject_name, row.subject_credentials) if row.subject_name else None,
            row.mrn,
        )
        for row in result.items
    ]
    return result


# What a page of the log draws of its entries: their columns as rows, not ORM objects (a
# page's first view built 50 entries for about 0.4 ms; nothing here is changed or followed).
_DRAWN_ENTRIES = sa.select(
    AuditEvent.id,
    AuditEvent.occurred_at,
    AuditEvent.actor_name,
    AuditEvent.action,
    AuditEvent.entity_type,
    AuditEvent.entity_id,
    AuditEvent.patient_id,
    AuditEvent.details,
    AuditEvent.remote_addr,
).where(AuditEvent.id.in_(sa.bindparam("ids", expanding=True)))


def entries_by_id(ids: list[int]) -> list[sa.Row]:
    """The entries of these ids, in this order (each never changes once written)."""
    rows = db.session.execute(_DRAWN_ENTRIES, {"ids": ids})
    entries = {row.id: row for row in rows}
    return [entries[entry_id] for entry_id in ids]


def patient_mrns(events) -> dict[int, str]:
    """MRNs of the patients named on these rows, in one query."""
    ids = {event.patient_id for event in events if event.patient_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(sa.select(Patient.id, Patient.mrn).where(Patient.id.in_(ids)))
    return {row.id: row.mrn for row in rows}


def _clinic_time_or_text(text: str) -> str:
    """A stored UTC time stamp ("2026-03-01T14:05:00+00:00") in clinic time; else the text."""
    if len(text) >= 19 and text[10:11] == "T":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is not None:
            return format_datetime(moment)
    return text


def _short(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _clinic_time_or_text(str(value))


def field_label(key: str) -> str:
    """An internal key as words: "weight_kg" → "Weight kg"."""
    return str(key).replace("_", " ").strip().capitalize()


def action_label(action: str) -> str:
    """"patient.updated" → "Patient updated", "auth.login_failed" → "Auth login failed"."""
    return field_label(action.replace(".", " "))


def is_clinical(event) -> bool:
    """A row about a patient: the admin sees who touched which record and when, not what."""
    return event.patient_id is not None


def _field_names(details: dict) -> list[str]:
    names: list[str] = []
    for key in ("changes", "after", "before"):
        if isinstance(details.get(key), dict):
            names.extend(details[key])
    names.extend(key for key in details if key not in ("changes", "after", "before"))
    return [field_label(name) for name in dict.fromkeys(names)]


def withheld_lines(details: dict | None) -> list[str]:
    """Minimum necessary (issue 9): for a patient's row, the names of the fields only."""
    names = _field_names(dict(details or {}))
    return [f"Fields: {', '.join(names)} (clinical contents not shown)"] if names else []


def detail_lines(details: dict | None, clinical: bool = False) -> list[str]:
    """A readable summary of an audit row's details: what changed (before → after), then
    anything else; for a patient's row (clinical) only the names of the fields."""
    if clinical:
        return withheld_lines(details)
    details = dict(details or {})
    lines = []
    before, after = details.pop("before", None), details.pop("after", None)
    changes = details.pop("changes", None)
    if changes is None and isinstance(before, dict) and isinstance(after, dict):
        changes = audit.changes(before, after)
    if changes:
        for field, pair in changes.items():
            old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
            lines.append(f"{field_label(field)}: {_short(old)} → {_short(new)}")
    elif isinstance(after, dict) and before is None:
        lines.extend(f"{field_label(field)}: {_short(value)}" for field, value in after.items())
    lines.extend(f"{field_label(key)}: {_short(value)}" for key, value in details.items())
    return lines


def record_export(filters: AuditFilters, actor: Staff) -> None:
    """Exporting the log is itself audited (who took a copy, of what)."""
    audit.record(
        "audit.exported",
        actor=actor,
        details={
            "actor": filters.actor,
            "action": filters.action,
            "patient_id": filters.patient_id,
            "date_from": filters.date_from,
            "date_to": filters.date_to,
            "sort": filters.sort,
        },
    )


CSV_COLUMNS = [
    "id",
    "occurred_at_clinic",
    "occurred_at_utc",
    "actor_id",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "patient_id",
    "patient_mrn",
    "details",
    "remote_addr",
    "prev_hash",
    "hash",
]


def _cell(value) -> str:
    """Text for a spreadsheet cell; a leading = + - @ would run as a formula, so quote it."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def csv_lines(filters: AuditFilters) -> Iterator[str]:
    """The filtered log as CSV, fetched in short transactions of EXPORT_CHUNK rows so a large
    export never holds the database (SQLite's write lock included) while it downloads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    shape, params = log_filter(filters)
    base = log_statement(shape)
    keys = sa.tuple_(*order_keys(shape))
    last = None
    while True:
        query = base
        if last is not None:
            query = query.where(keys > last if shape.oldest_first else keys < last)
        events = list(db.session.scalars(query.limit(EXPORT_CHUNK), params))
        if not events:
            db.session.commit()
            return
        mrns = patient_mrns(events)
        for event in events:
            writer.writerow(
                [
                    _cell(event.id),
                    _cell(to_clinic(event.occurred_at).isoformat()),
                    _cell(event.occurred_at.isoformat()),
                    _cell(event.actor_id),
                    _cell(event.actor_name),
                    _cell(event.action),
                    _cell(event.entity_type),
                    _cell(event.entity_id),
                    _cell(event.patient_id),
                    _cell(mrns.get(event.patient_id)),
                    _cell(
                        "; ".join(withheld_lines(event.details))
                        if is_clinical(event)
                        else json.dumps(event.details, ensure_ascii=False, sort_keys=True)
                    ),
                    _cell(event.remote_addr),
                    _cell(event.prev_hash),
                    _cell(event.hash),
                ]
            )
        last = tuple(getattr(events[-1], key.key) for key in order_keys(shape))
        db.session.commit()  # end the read transaction between chunks
        yield flush()
