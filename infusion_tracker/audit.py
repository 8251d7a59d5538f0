"""The audit trail: `record(...)` is the one way an audit row is written.

Each row carries the hash of the row before it, so an edited or deleted row breaks the
chain (`flask verify-audit`); the database itself also refuses UPDATE and DELETE.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user

from . import unit_of_work
from .extensions import db
from .models import AuditEvent, Staff
from .timeutil import utcnow

GENESIS = "0" * 64

# Refuse UPDATE and DELETE on the audit table in the database itself (run by the
# migration and, for tests built with create_all, by the after_create hook below).
SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END""",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END""",
]
POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE OR TRUNCATE
       ON audit_event FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()""",
]


def append_only_ddl(dialect_name: str) -> list[str]:
    """The statements that make audit_event append-only on this backend (for migrations too)."""
    return {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(dialect_name, [])


@sa.event.listens_for(AuditEvent.__table__, "after_create")
def _install_triggers(target, connection, **kw):
    for statement in append_only_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


def _jsonable(value: Any) -> Any:
    """Plain JSON values, so the hash computed now matches the row read back later."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    return str(value)


def snapshot(obj: Any, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The named attributes of a row, JSON-ready, for before/after values."""
    return {name: _jsonable(getattr(obj, name)) for name in fields}


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Only what changed: {field: [old, new]}."""
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}


def row_hash(prev_hash: str, event: Any) -> str:
    """SHA-256 over the previous hash and every recorded field of the row (not its id)."""
    payload = json.dumps(
        {
            "prev": prev_hash,
            "at": event.occurred_at.isoformat(),
            "actor_id": event.actor_id,
            "actor": event.actor_name,
            "action": event.action,
            "entity": [event.entity_type, event.entity_id],
            "patient_id": event.patient_id,
            "details": event.details,
            "remote": event.remote_addr,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _lock_chain() -> None:
    # SQLite writers already hold the database lock (BEGIN IMMEDIATE); PostgreSQL
    # writers take a transaction-scoped advisory lock so two rows never share a parent.
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(7201001)"))


def record(
    action: str,
    *,
    entity: Any = None,
    entity_type: str = "",
    entity_id: int | None = None,
    patient_id: int | None = None,
    details: dict[str, Any] | None = None,
    actor: Staff | None = None,
    attempted_username: str | None = None,
) -> AuditEvent:
    """Append one audit row in the caller's transaction (the request's unit of work commits).

    `entity` fills entity_type/entity_id from a model row; `actor` defaults to the
    signed-in user, else "anonymous" with the attempted username. In a page view (a read
    transaction) the row is appended just after the page is built (unit_of_work.defer).
    """
    if entity is not None:
        if entity.id is None:
            db.session.flush()
        entity_type = entity_type or entity.__tablename__
        entity_id = entity.id
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()
    if actor is not None:
        actor_name = actor.username
    else:
        actor_name = "anonymous" + (f" ({attempted_username})" if attempted_username else "")
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor_name[:120],
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        patient_id=patient_id,
        details=_jsonable(details or {}),
        remote_addr=(request.remote_addr or "")[:64] if has_request_context() else "",
    )
    if unit_of_work.is_read_request():
        unit_of_work.defer(lambda: _append(event))
    else:
        _append(event)
    return event


def _append(event: AuditEvent) -> None:
    """Chain the row to the last one and add it, under the chain's lock."""
    _lock_chain()
    # Stamped under the lock, so time order and chain order agree.
    event.occurred_at = utcnow()
    last = db.session.scalar(sa.select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    event.prev_hash = last or GENESIS
    event.hash = row_hash(event.prev_hash, event)
    db.session.add(event)
    db.session.flush()


@dataclass
class ChainReport:
    rows: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(batch: int = 5000) -> ChainReport:
    """Walk the chain in id order; report the first row whose hash or link is wrong.

    Reads plain rows, not ORM objects, so it holds nothing in the session however long
    the trail grows.
    """
    table = AuditEvent.__table__
    prev = GENESIS
    rows = 0
    last_id = 0
    while True:
        events = db.session.execute(
            sa.select(table).where(table.c.id > last_id).order_by(table.c.id).limit(batch)
        ).all()
        if not events:
            return ChainReport(rows)
        for event in events:
            rows += 1
            if event.prev_hash != prev:
                return ChainReport(rows, event.id, "does not link to the row before it")
            if row_hash(prev, event) != event.hash:
                return ChainReport(rows, event.id, "its contents do not match its hash")
            prev = event.hash
            last_id = event.id
