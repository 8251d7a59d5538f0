"""The session page drawn once for each state of what it shows (issue 8), as the patient page
is: a view finds it by one small query over the session and the rows it shows (which also says
whether the session exists), and only a change to one of them, or to a name the page shows,
draws it again: the session and its rows are loaded only then.

A running session's page is kept too: what the clock moves in it (the pump's minutes and what it
gave so far, the observation left) is filled in by each view (live.py), and the page is drawn
again when the clock alone changes its shape (a reading turns overdue, the planned minutes are
reached, the observation is done, the baseline grows too old to start on: SessionBody.turns_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import abort, current_app
from flask_login import current_user

from ..extensions import db
from ..inputs import arg_id
from ..ledger import services as ledger
from ..memo import Kept, Memo, app_kept, digest, keep, shown
from ..models import (
    Addendum,
    AdverseEvent,
    Assessment,
    InfusionEvent,
    InfusionSession,
    LedgerEntry,
    Patient,
    ProposedReading,
    Reading,
    Staff,
)
from ..review.routes import reauth_needed_now
from ..timeutil import clinic_today, utcnow
from . import page, queries

# Sessions each worker keeps drawn: as many as it keeps readings tables.
DRAWN_SESSIONS = page.MEMO_SESSIONS

SESSION = sa.bindparam("infusion_id")
# The rows of a session the page shows. A new or changed one makes a new session version in
# the same transaction (guards.begin_row_change; tests/conftest.py checks it at every commit
# the suite makes), but for an addendum.
SHOWN_ROWS = (Reading, InfusionEvent, AdverseEvent, Assessment, Addendum, LedgerEntry)


def _staff_columns(model) -> list[sa.Column]:
    return [
        column
        for column in model.__table__.columns
        if any(key.column.table.name == "staff" for key in column.foreign_keys)
    ]


# Everyone the page can name: each staff column of the session and of every row it shows.
_NAMED = sa.union(
    *(
        sa.select(column).where(InfusionSession.id == SESSION)
        for column in _staff_columns(InfusionSession)
    ),
    *(
        sa.select(column).where(model.__table__.c.infusion_id == SESSION)
        for model in SHOWN_ROWS
        for column in _staff_columns(model)
    ),
)


def _row(kind: str, row_id, number=None, first=None, second=None) -> tuple:
    """One row of the fingerprint: (kind, id, a number, two texts)."""
    return (
        sa.literal(kind),
        row_id,
        sa.cast(sa.null() if number is None else number, sa.Integer),
        sa.cast(sa.null() if first is None else first, sa.String),
        sa.cast(sa.null() if second is None else second, sa.String),
    )


# Collections most sessions have none of, each listed in the fingerprint by its rows (of the
# kind named after its table): a first view asks for one only when the fingerprint lists a row.
_LISTED = {"addenda": Addendum, "adverse_events": AdverseEvent}

# Everything the page shows, by what changes it: the session's version, its patient's version,
# its addenda (written after the signature, they leave the version as signed), and the name
# of everyone the page names; and its adverse events, whose changes make a new version, so that
# a first view knows whether there are any (_LISTED); and the monitor values still waiting, so
# that one arriving, accepted or dismissed changes it, and a first view knows whether there are
# any (most sessions have none).
_FINGERPRINT = sa.union_all(
    sa.select(
        *_row("session", InfusionSession.id, InfusionSession.version, InfusionSession.status)
    ).where(InfusionSession.id == SESSION),
    sa.select(*_row("patient", Patient.id, Patient.version))
    .join(InfusionSession, InfusionSession.patient_id == Patient.id)
    .where(InfusionSession.id == SESSION),
    *(
        sa.select(*_row(model.__tablename__, model.id)).where(model.infusion_id == SESSION)
        for model in _LISTED.values()
    ),
    sa.select(*_row(ProposedReading.__tablename__, ProposedReading.id)).where(
        ProposedReading.infusion_id == SESSION, ProposedReading.status == "proposed"
    ),
    sa.select(*_row("staff", Staff.id, None, Staff.full_name, Staff.credentials)).where(
        Staff.id.in_(_NAMED)
    ),
)


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    status: str
    patient_id: int
    empty: tuple[str, ...]  # of _LISTED's collections, those the session has no row in
    proposed: bool  # monitor values waiting


def fingerprint(infusion_id: int) -> Fingerprint | None:
    """None: no such session."""
    rows = db.session.execute(_FINGERPRINT, {"infusion_id": infusion_id}).all()
    session = next((row for row in rows if row[0] == "session"), None)
    if session is None:
        return None
    patient_id = next(row[1] for row in rows if row[0] == "patient")
    kinds = {row[0] for row in rows}
    empty = tuple(key for key, model in _LISTED.items() if model.__tablename__ not in kinds)
    waiting = ProposedReading.__tablename__ in kinds
    return Fingerprint(digest(rows), session[3], patient_id, empty, waiting)


def shown_session_page(infusion_id: int) -> tuple[str, int]:
    """The session page and its patient's id; 404 when there is no such session. The session's
    body is kept under its fingerprint and what else the page reads: who views
    (role and own rows decide Void, Correct, signing and the ledger's forms), the clinic's day
    (a time box's hint on a day with a repeated hour; the time the blank adverse-event form
    offers is each view's own, reading_forms.offer_now), the row named in the address (the
    reading just saved, the critical reading an adverse event answers), whether signing asks
    for the password again, the clinic's zone and units, and the safe's vials the draw form
    offers; until the clock turns it (page.SessionBody.turns_at)."""
    found = fingerprint(infusion_id)
    if found is None:
        abort(404)
    key = (
        infusion_id,
        found.digest,
        current_user.id,
        current_user.role,
        clinic_today(),
        arg_id("saved"),
        arg_id("ae_reading"),
        current_user.is_physician and reauth_needed_now(),
        current_app.config["CLINIC_TIMEZONE"],
        current_app.config["UNITS"],
        # The draw form offers the safe's vials: any entry of the ledger changes them.
        ledger.newest_entry() if found.status in ledger.DRAW_STATUSES else None,
    )

    def draw() -> DrawnSession:
        infusion = queries.get_infusion_or_404(infusion_id, full=True, empty=found.empty)
        turns_at = None

        def body() -> tuple[str, str]:
            nonlocal turns_at
            title, html, turns_at = page.session_body(
                infusion, proposed=None if found.proposed else []
            )
            return title, html

        return DrawnSession(keep(body), turns_at)

    now = utcnow()
    drawn = app_kept("drawn_sessions", lambda: Memo[DrawnSession](DRAWN_SESSIONS)).get(
        key, draw, fresh=lambda kept: kept.turns_at is None or now < kept.turns_at
    )
    return page.page_around(drawn.body.title, shown(drawn.body)), found.patient_id


@dataclass(frozen=True)
class DrawnSession:
    body: Kept
    turns_at: datetime | None  # when the clock alone changes it (page.SessionBody)

