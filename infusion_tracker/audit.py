"""The audit trail: `record(...)` is the one way an audit row is written.

Each row carries the hash of the row before it, so an edited or deleted row breaks the
chain (`flask verify-audit`); the database itself also refuses UPDATE and DELETE.

The hash is an HMAC-SHA256 keyed with AUDIT_KEY, which is not in the database: whoever can
write the table but not read the key cannot recompute the chain after a change. Checkpoints
(`flask audit-checkpoint`: the latest row's id and hash, appended to a file outside the
database) anchor it, so deleting the tail, or rewriting and rehashing with the key, is found
against the last checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_request_context, request
from flask_login import current_user

from . import database, unit_of_work
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
    """HMAC-SHA256 (key: AUDIT_KEY) over the previous hash and every recorded field of the
    row (not its id)."""
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
    key = current_app.config["AUDIT_KEY"].encode()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def lock_chain() -> None:
    """So that two rows never share a parent: PostgreSQL writers take a transaction-scoped
    advisory lock, SQLite writers the database's write lock (if they do not hold it yet). The
    ledger takes it before its entry (ledger.services._add), so its entries' ids follow commit
    order."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_LOCK_LAZILY if unit_of_work.lazy_commit() else _LOCK)
    else:
        database.take_write_lock(db.session)


_LOCK = sa.text("SELECT pg_advisory_xact_lock(7201001)")
# The same, and this transaction commits without waiting for the disk (unit_of_work.lazy_commit):
# one round trip, not two.
_LOCK_LAZILY = sa.text(
    "SELECT pg_advisory_xact_lock(7201001), set_config('synchronous_commit', 'off', true)"
)


# The actions that only say who looked at what: a page or a search, not an export or a print.
LOOKS = ("viewed", ".searched")


@dataclass
class AuditEntry:
    """One audit row's values, as record() hands them to the chain (a plain object: the row is
    inserted, never loaded or changed, and an ORM instance per page view cost more than the
    insert). `id`, the time and the hashes are set when the row is appended."""

    actor_id: int | None
    actor_name: str
    action: str
    entity_type: str
    entity_id: int | None
    patient_id: int | None
    details: dict[str, Any]
    remote_addr: str
    id: int | None = None
    occurred_at: datetime | None = None
    created_at: datetime | None = None
    prev_hash: str = ""
    hash: str = ""


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
) -> AuditEntry:
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
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor_name[:120],
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        patient_id=patient_id,
        details=_jsonable(details or {}),
        remote_addr=(request.remote_addr or "")[:64] if has_request_context() else "",
    )
    unit_of_work.write(lambda: _append(entry), a_look=action.endswith(LOOKS))
    return entry


_TABLE = AuditEvent.__table__
_LAST_HASH = sa.select(_TABLE.c.hash).order_by(_TABLE.c.id.desc()).limit(1)
_INSERT = sa.insert(_TABLE)
_COLUMNS = tuple(column.key for column in _TABLE.columns if column.key != "id")


def _append(entry: AuditEntry) -> None:
    """Chain the row to the last one and insert it, under the chain's lock.

    The lock is taken before this transaction's changes are written, not after: a change to a
    unique column (signing out's session token) locks its row against foreign key checks, and
    the lock's holder may be appending a row that names it (PostgreSQL: a deadlock)."""
    with db.session.no_autoflush:
        lock_chain()
    db.session.flush()  # the change the row records goes first (its new version, its id)
    # Stamped under the lock, so time order and chain order agree.
    entry.occurred_at = entry.created_at = utcnow()
    entry.prev_hash = db.session.execute(_LAST_HASH).scalar() or GENESIS
    entry.hash = row_hash(entry.prev_hash, entry)
    values = {name: getattr(entry, name) for name in _COLUMNS}
    entry.id = db.session.execute(_INSERT, values).inserted_primary_key[0]


@dataclass
class ChainReport:
    rows: int
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(batch: int = 5000, connection=None) -> ChainReport:
    """Walk the chain in id order; report the first row whose hash or link is wrong.

    Reads plain rows, not ORM objects, so it holds nothing in the session however long
    the trail grows. `connection` reads another database (a backup) instead of the app's.
    """
    source = connection if connection is not None else db.session
    table = AuditEvent.__table__
    prev = GENESIS
    rows = 0
    last_id = 0
    while True:
        events = source.execute(
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


# --- Checkpoints: the chain's head written outside the database -------------------------------


@dataclass
class Checkpoint:
    at: str
    row_id: int
    hash: str


def checkpoint_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or current_app.config.get("AUDIT_CHECKPOINT_FILE") or Path(
        current_app.instance_path, "audit_checkpoints"
    ))


def write_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint | None:
    """Append the latest row's id and hash as one line ("time id hash"); None if no rows.
    The file is opened for appending only and created owner-only; a copy kept elsewhere
    (another machine, write-once storage) is what makes it an anchor."""
    database.flush_log(db.session)  # never anchor a row a power cut could still take away
    table = AuditEvent.__table__
    last = db.session.execute(
        sa.select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1)
    ).first()
    if last is None:
        return None
    mark = Checkpoint(utcnow().isoformat(timespec="seconds"), last.id, last.hash)
    target = checkpoint_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(f"{mark.at} {mark.row_id} {mark.hash}\n")
        handle.flush()
        os.fsync(handle.fileno())
    return mark


def last_checkpoint(path: str | os.PathLike | None = None) -> Checkpoint | None:
    target = checkpoint_path(path)
    if not target.exists():
        return None
    lines = [line.split() for line in target.read_text().splitlines() if line.strip()]
    if not lines:
        return None
    at, row_id, digest = lines[-1]
    return Checkpoint(at, int(row_id), digest)


def check_against(mark: Checkpoint) -> str | None:
    """Why the trail does not hold the checkpointed row as it was, or None when it does."""
    stored = db.session.scalar(sa.select(AuditEvent.hash).where(AuditEvent.id == mark.row_id))
    if stored is None:
        return (
            f"row id {mark.row_id}, checkpointed at {mark.at}, is missing "
            "(the trail was cut back)"
        )
    if not hmac.compare_digest(stored, mark.hash):
        return (
            f"row id {mark.row_id} no longer has the hash checkpointed at {mark.at} "
            "(the trail was rewritten)"
        )
    return None
