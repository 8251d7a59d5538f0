"""The physician's review: which sessions await a signature and why, signing (with a recent
login), and addenda — the only way to add to a signed session (SPEC §3, §5)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app, g
from sqlalchemy.orm import aliased

from .. import audit, unit_of_work
from ..auth.services import count_failed_password
from ..errors import RuleError, StaleRecord
from ..extensions import db
from ..infusions.guards import check_version, lock
from ..ledger.services import ledger_problem
from ..models import (
    EVENT_OVERRIDDEN,
    EVENT_REASONED_STOP,
    READING_CRITICAL,
    ROLE_PHYSICIAN,
    SESSION_OVERRIDDEN,
    Addendum,
    AdverseEvent,
    Assessment,
    AuditEvent,
    InfusionEvent,
    InfusionSession,
    Patient,
    Reading,
    Staff,
    display_name,
)
from ..passwords import verify_password
from ..prepared import PreparedRead
from ..quality import figures
from ..timeutil import format_datetime, utcnow

ATTESTATION_MAX = 2000
ADDENDUM_MAX = 5000

# Why a session is reviewed first, in the order the tags are shown.
REASONS = {
    "critical": "Critical reading",
    "adverse_event": "Adverse event",
    "override": "Override",
    "phq9_item9": "PHQ-9 item 9",
    "stopped_early": "Stopped early",
}


class ReauthFailed(RuleError):
    """The password given to confirm a signature was missing or wrong."""


# --- The queue ----------------------------------------------------------------------


def awaiting_signature():
    """The one definition of "awaiting signature", shared by the queue and the nav badge (the
    status a literal, as in models.AWAITING, so that PostgreSQL matches the partial indexes)."""
    return sa.and_(
        InfusionSession.status == sa.literal_column("'discharged'"),
        InfusionSession.signed_at.is_(None),
    )


_AWAITING_COUNT = sa.select(sa.func.count()).where(awaiting_signature())


def awaiting_count() -> int:
    """How many sessions await a signature: the queue's total and the nav badge. A page view
    counts once (both read in its one read transaction, so they agree); a write counts each
    time, since what it writes may change the answer."""
    if not unit_of_work.is_read_request():
        return db.session.scalar(_AWAITING_COUNT) or 0
    if "awaiting_count" not in g:
        g.awaiting_count = db.session.scalar(_AWAITING_COUNT) or 0
    return g.awaiting_count


def _reason_ids(since: sa.ColumnElement[int]) -> dict[str, list[sa.Select]]:
    """Per reason, the ids of the sessions numbered `since` or later that have it, read from
    the rows that make the reason (a few among many, each behind a partial or foreign-key
    index) rather than probed session by session. Used inside statements about sessions: the
    sessions' own select must not be correlated to them."""
    return {
        "critical": [
            sa.select(Reading.infusion_id).where(
                Reading.infusion_id >= since, READING_CRITICAL, Reading.voided_at.is_(None)
            )
        ],
        "adverse_event": [
            sa.select(AdverseEvent.infusion_id).where(
                AdverseEvent.infusion_id >= since, AdverseEvent.voided_at.is_(None)
            )
        ],
        "override": [
            sa.select(InfusionSession.id)
            .where(InfusionSession.id >= since, SESSION_OVERRIDDEN)
            .correlate(None),
            sa.select(InfusionEvent.infusion_id).where(
                InfusionEvent.infusion_id >= since, EVENT_OVERRIDDEN
            ),
        ],
        "phq9_item9": [
            sa.select(Assessment.infusion_id).where(
                Assessment.infusion_id >= since,
                Assessment.flag_physician.is_(True),
                Assessment.voided_at.is_(None),
            )
        ],
        # A stop carries a reason only when it was not routine: the lifecycle requires one when
        # the infusion ended before its planned duration (SPEC §2 "a reason where it is not
        # routine"), including sessions stopped early for an adverse event.
        "stopped_early": [
            sa.select(InfusionEvent.infusion_id).where(
                InfusionEvent.infusion_id >= since, EVENT_REASONED_STOP
            )
        ],
    }


class QueueEntry(NamedTuple):
    """A session as the review queue lists it, in the values it shows."""

    id: int
    reasons: tuple[str, ...]  # keys of REASONS
    last_name: str
    first_name: str
    mrn: str
    series_number: int
    started: datetime  # or, never started, scheduled
    discharged_at: datetime
    clinician: str
    physician: str


@dataclass
class QueuePage:
    rows: list[tuple]  # as read (_page_statement): the key its table is kept under
    total: int
    page: int
    per_page: int

    @property
    def entries(self) -> list[QueueEntry]:
        """The rows as the table shows them (made when it is drawn)."""
        return [_queue_entry(row) for row in _page_statement().typed(self.rows)]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


_CLINICIAN, _PHYSICIAN = aliased(Staff), aliased(Staff)
# What a row of the queue shows (review/_queue_table.html), read as values: no session,
# patient or staff objects to build for a page that shows a few of their columns.
_QUEUE_COLUMNS = (
    InfusionSession.id,
    Patient.last_name,
    Patient.first_name,
    Patient.mrn,
    InfusionSession.series_number,
    InfusionSession.started_at,
    InfusionSession.scheduled_for,
    InfusionSession.discharged_at,
    _CLINICIAN.full_name.label("clinician_name"),
    _CLINICIAN.credentials.label("clinician_credentials"),
    _PHYSICIAN.full_name.label("physician_name"),
    _PHYSICIAN.credentials.label("physician_credentials"),
)


@cache
def _page_statement() -> PreparedRead:
    """Built once, as the session page's statements are (infusions/queries.py): building this
    one and its cache key cost about as much as running it; and sent as compiled, its rows as
    read the key its table is kept under. Parameters: `first` (how many of each part this page
    needs), `per_page`, `offset`.

    The page costs what the page is, not the backlog: the flagged sessions are found from the
    reasons' rows, of sessions no older than the oldest awaiting one (the backlog is recent);
    the others are read in order off ix_infusion_session_awaiting and stop after `first`."""
    since = (
        sa.select(sa.func.min(InfusionSession.id))
        .where(awaiting_signature())
        .correlate(None)
        .scalar_subquery()
    )
    reason_ids = _reason_ids(since)
    flagged = sa.union(*(q for qs in reason_ids.values() for q in qs)).cte("flagged")
    columns = (InfusionSession.discharged_at, InfusionSession.id)
    flagged_all = sa.select(sa.literal_column("0").label("grp"), *columns).where(
        awaiting_signature(), InfusionSession.id.in_(sa.select(flagged.c.infusion_id))
    )
    others_first = (
        sa.select(sa.literal_column("1").label("grp"), *columns)
        .where(awaiting_signature(), InfusionSession.id.not_in(sa.select(flagged.c.infusion_id)))
        .order_by(*columns)
        .limit(sa.bindparam("first", type_=sa.Integer))
        .subquery()
    )
    queue = sa.union_all(flagged_all, sa.select(others_first)).subquery("queue")
    has_reason = (InfusionSession.id.in_(sa.union_all(*reason_ids[key])) for key in REASONS)
    return PreparedRead(
        sa.select(*_QUEUE_COLUMNS, *has_reason)
        .join(queue, queue.c.id == InfusionSession.id)
        .join(Patient, Patient.id == InfusionSession.patient_id)
        .join(_CLINICIAN, _CLINICIAN.id == InfusionSession.clinician_id)
        .join(_PHYSICIAN, _PHYSICIAN.id == InfusionSession.physician_id)
        .order_by(queue.c.grp, queue.c.discharged_at, queue.c.id)
        .limit(sa.bindparam("per_page", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
    )


# PostgreSQL plans the queue's statement (a union of the reasons' index ranges) in about
# three times as long as it runs it, afresh for each page view, since the plan for its
# parameters does not look cheaper than one for any values. This transaction uses the one
# plan it keeps for any values (the statement is prepared after a few runs on a connection).
_GENERIC_PLAN = sa.text("SET LOCAL plan_cache_mode = force_generic_plan")


def review_queue(page: int = 1, per_page: int = 25) -> QueuePage:
    """Discharged, unsigned sessions: those with critical readings, adverse events, overrides,
    a PHQ-9 item 9 flag or an early stop first, then oldest discharge first (SPEC §5).
    Two queries, whatever the number of sessions or rows."""
    total = awaiting_count()
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    offset = (page - 1) * per_page
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_GENERIC_PLAN)
    rows = _page_statement().rows(first=offset + per_page, per_page=per_page, offset=offset)
    return QueuePage(rows, total, page, per_page)


def _queue_entry(row: tuple) -> QueueEntry:
    # _QUEUE_COLUMNS, in order, then whether the session has each of REASONS.
    (
        infusion_id, last_name, first_name, mrn, series_number, started_at, scheduled_for,
        discharged_at, clinician_name, clinician_credentials, physician_name,
        physician_credentials, *has_reason,
    ) = row
    return QueueEntry(
        infusion_id,
        tuple(key for key, has in zip(REASONS, has_reason, strict=True) if has),
        last_name,
        first_name,
        mrn,
        series_number,
        started_at or scheduled_for,
        discharged_at,
        display_name(clinician_name, clinician_credentials),
        display_name(physician_name, physician_credentials),
    )


# --- Signing --------------------------------------------------------------------------


def reauth_needed(auth_at: float | None) -> bool:
    """Signing needs a login (or password entry) within REAUTH_MINUTES of `auth_at` (epoch
    seconds; None — the CLI, a script — always asks)."""
    limit = current_app.config["REAUTH_MINUTES"] * 60
    return auth_at is None or time.time() - auth_at > limit


def _signed_message(infusion: InfusionSession) -> str:
    who = infusion.signed_by.display_name if infusion.signed_by else "a physician"
    return (
        f"This session was already signed by {who} at "
        f"{format_datetime(infusion.signed_at)}. Later facts go in an addendum."
    )


def check_can_sign(infusion: InfusionSession, actor: Staff) -> None:
    """Refuse before any form is read: only a physician signs, only a discharged session,
    only once."""
    if actor.role != ROLE_PHYSICIAN:
        raise RuleError("Only a physician can sign a session.")
    if infusion.is_signed:
        raise RuleError(_signed_message(infusion))
    if infusion.status != "discharged":
        raise RuleError(
            f"Only a discharged session can be signed; this one is {infusion.status_label.lower()}."
        )


def confirm_password(actor: Staff, password: str | None) -> None:
    """Re-authentication: a wrong password counts towards the lockout like a failed login."""
    if not password:
        raise ReauthFailed(
            f"Enter your password: you signed in more than "
            f"{current_app.config['REAUTH_MINUTES']} minutes ago."
        )
    if verify_password(actor.password_hash, password):
        actor.failed_logins = 0
        return
    count_failed_password(actor, signed_in=True, action="auth.reauth_failed")
    raise ReauthFailed("Password: not correct.")


# What a sign form lists as changed since it was opened: every write, not the reads.
# (tests/test_read_audit.py checks every page's read row is listed here.)
READ_ACTIONS = (
    "patient.viewed", "patient.edit_viewed", "patient.searched", "assessment.form_viewed",
    "assessment.viewed", "board.viewed", "session.plan_viewed", "session.viewed",
    "discharge.viewed", "reading.viewed", "adverse_event.viewed", "review_queue.viewed",
    "session.printed", "export.readings_csv", "export.fhir", "proposed_reading.viewed",
    "ledger.session_viewed", "ledger.vial_viewed", "ledger.vial_printed",
    "ledger.vial_exported", "ledger.period_viewed", "quality.viewed", "quality.exported",
)


def changes_since(infusion: InfusionSession, since: datetime | None) -> list[str]:
    """Each change to the session's patient record after `since`, in words, oldest first."""
    if since is None:
        return []
    events = db.session.scalars(
        sa.select(AuditEvent)
        .where(
            AuditEvent.patient_id == infusion.patient_id,
            AuditEvent.occurred_at > since,
            AuditEvent.action.not_in(READ_ACTIONS),
        )
        .order_by(AuditEvent.id)
        .limit(20)
    ).all()
    return [
        f"{format_datetime(event.occurred_at)}: {event.action.replace('.', ' ').replace('_', ' ')}"
        f" by {event.actor_name}"
        for event in events
    ]


def sign_infusion(
    infusion: InfusionSession,
    actor: Staff,
    attestation: str,
    form_version: int | None,
    password: str | None = None,
    *,
    password_required: bool = True,
    opened_at: datetime | None = None,
) -> None:
    """The supervising physician's signature (SPEC §3): locks the session for good, over
    exactly the version the physician saw.

    The session row is locked first, so a reading racing the signature lands before it (and
    the signature is refused as stale) or after it (and is refused as locked). Refused for
    anyone but a physician, before discharge, a second time, from a stale page (with what
    changed since `opened_at`), and without the password when `password_required`."""
    lock(infusion.id)
    check_can_sign(infusion, actor)
    unreconciled = ledger_problem(infusion)
    if unreconciled:
        raise RuleError(
            f"The controlled-substance ledger does not balance: {unreconciled} Record it in "
            "the dose panel, or record why as the physician."
        )
    try:
        check_version(infusion, form_version)
    except StaleRecord as stale:
        stale.changes = changes_since(infusion, opened_at)
        raise
    attestation = (attestation or "").strip()
    if not attestation:
        raise RuleError("Attestation: enter the attestation you sign.")
    if len(attestation) > ATTESTATION_MAX:
        raise RuleError(f"Attestation: at most {ATTESTATION_MAX} characters.")
    if password_required:
        confirm_password(actor, password)
    now = utcnow()
    infusion.signed_by = actor
    infusion.signed_at = now
    infusion.attestation = attestation
    infusion.updated_by = actor
    infusion.updated_at = now
    db.session.flush()
    audit.record(
        "session.signed",
        entity=infusion,
        actor=actor,
        patient_id=infusion.patient_id,
        details={"attestation": attestation, "version": infusion.version},
    )
    # Locked from now on: the quality report's figures of this version will not change.
    figures.refresh([infusion.id])


# --- Addenda ----------------------------------------------------------------------------


def check_can_add_addendum(infusion: InfusionSession, actor: Staff) -> None:
    """Addenda are a physician's, and only on signed sessions (before that, chart directly)."""
    if actor.role != ROLE_PHYSICIAN:
        raise RuleError("Only a physician can add an addendum.")
    if not infusion.is_signed:
        raise RuleError(
            "Addenda are for signed sessions. This session is not signed yet: "
            "record the facts on the session itself."
        )


def add_addendum(infusion: InfusionSession, actor: Staff, text: str) -> Addendum:
    """A later fact on a signed session (SPEC §3): who, when, text; never edited afterwards."""
    lock(infusion.id)
    check_can_add_addendum(infusion, actor)
    text = (text or "").strip()
    if not text:
        raise RuleError("Addendum: enter the text of the addendum.")
    if len(text) > ADDENDUM_MAX:
        raise RuleError(f"Addendum: at most {ADDENDUM_MAX} characters.")
    addendum = Addendum(infusion=infusion, text=text, author=actor, created_at=utcnow())
    db.session.add(addendum)
    db.session.flush()
    audit.record(
        "session.addendum_added",
        entity=addendum,
        actor=actor,
        patient_id=infusion.patient_id,
        details={"infusion_id": infusion.id, "text": text},
    )
    return addendum


@sa.event.listens_for(Addendum, "before_update")
@sa.event.listens_for(Addendum, "before_delete")
def _addendum_is_immutable(mapper, connection, target):
    # No route edits or deletes an addendum; this stops any other code path doing it too.
    raise RuleError("An addendum cannot be changed or deleted once written.")
