"""The one door to a write on a session: lock its row, then check the signature lock and the
form's version (SPEC §3: signing locks, no lost updates). A reading from the session page
goes through it only when the session changed after it was checked (new_version)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import RuleError, StaleRecord
from ..extensions import db
from ..models import InfusionSession
from ..timeutil import utcnow


def ensure_editable(infusion: InfusionSession) -> None:
    """A signed session is locked (SPEC §3); later facts go in an addendum."""
    if infusion.is_signed:
        raise RuleError(
            "This session was signed and is locked. Add an addendum to record later facts."
        )


def check_version(infusion: InfusionSession, form_version: int | None) -> None:
    """Refuse a save drawn from an older version of the session (no lost updates)."""
    if form_version is not None and int(form_version) != infusion.version:
        who = infusion.updated_by.display_name if infusion.updated_by else "another user"
        raise StaleRecord(who, infusion.updated_at, what="This session")


CHILD_ROWS = ("readings", "events", "adverse_events", "assessments", "addenda")


# In the session's info: (the transaction, the ids of the sessions it has locked).
_LOCKED = "locked_infusions"


# The session with its protocol, locked and read afresh. Built once: building the statement
# and its options on each call cost as much as the read itself.
_LOCK = (
    sa.select(InfusionSession)
    .where(InfusionSession.id == sa.bindparam("infusion_id"))
    .options(joinedload(InfusionSession.protocol, innerjoin=True))
    .with_for_update(key_share=True, of=InfusionSession)
    .execution_options(populate_existing=True)
)


def lock(infusion_id: int) -> InfusionSession | None:
    """The session row, locked for this transaction and read afresh (once: a route and the
    service it calls both lock).

    PostgreSQL: SELECT … FOR NO KEY UPDATE OF the session alone, so a reading and a signature
    on the same session take turns, while a row that only refers to the session (its foreign
    key's KEY SHARE) does not wait, nor does a session on the same protocol. SQLite: the same
    statement takes the database's write lock (database.py), so the row cannot change under us
    either. With its protocol, whose limits every reading is checked against (a statement
    fewer)."""
    transaction = db.session().get_transaction()
    held = db.session.info.get(_LOCKED)
    if held and held[0] is transaction and infusion_id in held[1]:
        return db.session.get(InfusionSession, infusion_id)
    infusion = db.session.scalar(_LOCK, {"infusion_id": infusion_id})
    if infusion is not None:
        # Rows another writer added before we held the lock load afresh when next read.
        db.session.expire(infusion, [*CHILD_ROWS, "updated_by"])
        if not held or held[0] is not transaction:
            held = db.session.info[_LOCKED] = (transaction, set())
        held[1].add(infusion_id)
    return infusion


def infusion_for_write(infusion_id: int, version: int | None = None) -> InfusionSession:
    """Lock, then refuse a signed session or a form drawn from an older version."""
    infusion = lock(infusion_id)
    if infusion is None:
        abort(404)
    ensure_editable(infusion)
    check_version(infusion, version)
    return infusion


def touch(infusion: InfusionSession, actor_id: int) -> None:
    """Any change to a session or its rows makes a new version, stamped with who and when, so
    an open form (the physician's sign form above all) drawn before it is refused."""
    infusion.updated_at = utcnow()
    infusion.updated_by_id = actor_id


# touch() as one statement: the new version lands only on the version read.
_NEW_VERSION = (
    sa.update(InfusionSession.__table__)
    .where(
        InfusionSession.id == sa.bindparam("infusion_id"),
        InfusionSession.version == sa.bindparam("version_read"),
    )
    .values(version=InfusionSession.version + 1)
)


def new_version(infusion: InfusionSession, actor_id: int) -> bool:
    """touch() written at once, as one UPDATE that names the version `infusion` was read at:
    whether it landed (False: another write made a newer version first, and nothing is
    written). As any write, it takes SQLite's write lock, or the session's row on PostgreSQL.
    Cheaper than the ORM's unit of work, and so shorter under the lock
    (readings.chart_reading)."""
    now = utcnow()
    landed = db.session.execute(
        _NEW_VERSION,
        {
            "infusion_id": infusion.id,
            "version_read": infusion.version,
            "updated_at": now,
            "updated_by_id": actor_id,
        },
    ).rowcount
    if landed:
        # The session as loaded agrees with its row (a later change flushes on this version).
        for name, value in (
            ("version", infusion.version + 1),
            ("updated_at", now),
            ("updated_by_id", actor_id),
        ):
            set_committed_value(infusion, name, value)
    return bool(landed)


def begin_row_change(infusion: InfusionSession, actor_id: int) -> None:
    """Before a reading, event or score is added to a session or voided in it: lock the
    session, refuse a signed one, and make a new version. No form version is checked (rows are
    appends, so two clinicians charting at once both land), but an open sign form is now stale."""
    lock(infusion.id)
    ensure_editable(infusion)
    touch(infusion, actor_id)
