"""The suite board and the status line it shares with the session page: who is in each room,
minutes since start, the last reading, when the next is due, and open critical values."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, render_template
from markupsafe import Markup
from sqlalchemy.orm import aliased, joinedload, load_only, selectinload

from .. import clinical
from ..extensions import db
from ..memo import Memo, app_kept
from ..models import InfusionSession, Patient, Reading, Staff, with_staff
from ..timeutil import clinic_day_bounds, format_time
from ..vocab import STATUS_KINDS
from . import queries
from .live import SessionClock, whole_minutes
from .queries import ACTIVE_STATUSES, RUNNING_STATUSES, reading_interval


@dataclass
class StatusLine:
    """What the top of the session page and a board card say about a session right now."""

    minutes_since_start: int | None
    minutes_since_stop: int | None
    last_reading: Reading | None
    due_at: datetime | None
    overdue: bool
    open_criticals: list[Reading] = field(default_factory=list)


def status_line(
    infusion: InfusionSession,
    last_reading: Reading | None,
    open_criticals: list[Reading],
    now: datetime,
) -> StatusLine:
    """Minutes since start, next reading due (counted from the later of the last reading and
    the start of the phase), and the critical readings still waiting for an answer."""
    due_at, overdue = None, False
    interval = reading_interval(infusion)
    if interval:
        phase_start = (
            infusion.started_at
            if infusion.status in RUNNING_STATUSES
            else infusion.ended_at or infusion.started_at
        )
        times = [t for t in (phase_start, last_reading and last_reading.taken_at) if t]
        due_at, overdue = clinical.reading_due(max(times) if times else None, interval, now)
    return StatusLine(
        minutes_since_start=whole_minutes(infusion.started_at, now),
        minutes_since_stop=whole_minutes(infusion.ended_at, now),
        last_reading=last_reading,
        due_at=due_at,
        overdue=overdue,
        open_criticals=open_criticals,
    )


# --- The suite board --------------------------------------------------------------------------


def stop_prompt(infusion: InfusionSession, now: datetime) -> tuple[str | None, datetime | None]:
    """The one place the board decides to ask "planned time reached — stop?" (issue 10): the
    pump has run the planned minutes (clinical.planned_reached) and the infusion has not
    stopped. Returns (prompt, when it will be due if not yet) — the second so an open board
    knows when to look again although nothing in the database changes. Once the bedside has
    recorded why the infusion runs on, the board shows that reason instead of asking."""
    if infusion.status not in RUNNING_STATUSES or infusion.started_at is None:
        return None, None
    clock = SessionClock.of(infusion)
    if clock.planned_reached(clock.pump(now)):
        run_on = queries.run_on_events(infusion)
        if run_on:
            return f"Runs on past the planned time: {run_on[-1].reason}", None
        return "Planned time reached — stop?", None
    return None, clock.planned_reached_at(now)  # None when paused: it comes no closer


@dataclass(frozen=True)
class BoardAlert:
    """Something an open board announces when it first appears: `key` names it (a critical
    flag of one reading, an overdue reading by when it was due, the stop prompt)."""

    key: str
    kind: str  # "critical", "overdue" or "prompt"
    text: str


@dataclass
class BoardCard:
    room: str
    infusion: InfusionSession | None = None
    status: StatusLine | None = None
    prompt: str | None = None

    @property
    def alerts(self) -> list[BoardAlert]:
        if self.infusion is None or self.status is None:
            return []
        found = [
            BoardAlert(f"critical-{reading.id}-{number}", "critical", flag.get("message", ""))
            for reading in self.status.open_criticals
            for number, flag in enumerate(reading.flags or [])
            if flag.get("level") == "critical"
        ]
        if self.status.overdue:
            due = self.status.due_at.strftime("%Y%m%d%H%M%S")
            found.append(BoardAlert(f"overdue-{self.infusion.id}-{due}", "overdue", "OVERDUE"))
        if self.prompt:
            found.append(BoardAlert(f"prompt-{self.infusion.id}", "prompt", self.prompt))
        return found

    def alerts_of(self, kind: str) -> list[BoardAlert]:
        return [alert for alert in self.alerts if alert.kind == kind]


@dataclass
class Board:
    cards: list[BoardCard]
    planned: list[InfusionSession]
    finished: list[InfusionSession]
    day: date
    # The earliest moment the board changes with no change in the database (a reading falls
    # due, the planned minutes are reached): an open board fetches itself again then.
    next_change_at: datetime | None = None
    # That, or sooner a card's "minutes since start" (which the open board counts on by
    # itself): until then the drawn board is the board (drawn_board).
    redraw_at: datetime | None = None

    @property
    def version(self) -> str:
        """The same fingerprint board_version() computes without loading the board."""
        shown = [card.infusion for card in self.cards if card.infusion is not None]
        rows = [
            (
                infusion.id,
                infusion.version,
                infusion.patient.version,
                infusion.clinician.full_name,
                infusion.clinician.credentials,
            )
            for infusion in [*shown, *self.planned, *self.finished]
        ]
        return fingerprint(self.day, rows)


def fingerprint(day: date, rows: list[tuple]) -> str:
    """Every session on the board by (id, version, its patient's version, its clinician's name):
    any change to a session or to a row in it makes a new session version (guards.touch), so
    any change in any room changes this."""
    text = f"{day.isoformat()}|" + json.dumps(sorted(rows), separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


# The board's statements are built once, the day's bounds and the sessions' ids parameters:
# building them (and the cache keys SQLAlchemy derives from them) on every view cost about as
# much as running them (bench/RESULTS.md, Stop 17). The board polls board_version.
START, END = sa.bindparam("start"), sa.bindparam("end")
_ACTIVE = InfusionSession.status.in_(ACTIVE_STATUSES)
_PLANNED = sa.and_(
    InfusionSession.status == "planned",
    InfusionSession.scheduled_for >= START,
    InfusionSession.scheduled_for < END,
)
# Discharged or cancelled within the day. Only a discharge sets discharged_at and only a
# cancellation cancelled_at, so two range predicates on their own indexes, OR-ed, find the
# day's few rows without visiting every finished session (issue 8).
_FINISHED = sa.or_(
    sa.and_(InfusionSession.discharged_at >= START, InfusionSession.discharged_at < END),
    sa.and_(InfusionSession.cancelled_at >= START, InfusionSession.cancelled_at < END),
)


def _board_part(condition):
    return sa.select(
        InfusionSession.id,
        InfusionSession.version,
        InfusionSession.patient_id,
        InfusionSession.clinician_id,
    ).where(condition)


# The sessions first, then their patients and clinicians joined once: PostgreSQL plans it in
# half the time of a union of three joins (0.26–0.32 ms against 0.56–0.69, warm), on every view
# and every poll of the board (bench/RESULTS.md, Stop 34).
_ON_BOARD = sa.union_all(*map(_board_part, (_ACTIVE, _PLANNED, _FINISHED))).subquery()
_VERSIONS = (
    sa.select(_ON_BOARD.c.id, _ON_BOARD.c.version, Patient.version, Staff.full_name,
              Staff.credentials)
    .join(Patient, Patient.id == _ON_BOARD.c.patient_id)
    .join(Staff, Staff.id == _ON_BOARD.c.clinician_id)
)
# The patient as a card or a row names them (and the version the fingerprint takes), not
# their history, allergies or notes.
_PATIENT_SHOWN = (Patient.id, Patient.first_name, Patient.last_name, Patient.mrn, Patient.version)
_WITH_PEOPLE = (
    joinedload(InfusionSession.patient).load_only(*_PATIENT_SHOWN),
    with_staff(InfusionSession.clinician),
)
# What the planned and finished tables show of a session.
_LISTED = load_only(
    InfusionSession.id,
    InfusionSession.version,
    InfusionSession.patient_id,
    InfusionSession.clinician_id,
    InfusionSession.series_number,
    InfusionSession.status,
    InfusionSession.room,
    InfusionSession.scheduled_for,
    InfusionSession.discharged_at,
    InfusionSession.cancelled_at,
    InfusionSession.signed_at,
)
_ACTIVE_SESSIONS = (
    sa.select(InfusionSession)
    .options(
        *_WITH_PEOPLE,
        joinedload(InfusionSession.protocol),
        selectinload(InfusionSession.events),  # the pump's minutes, for the stop prompt
    )
    .where(_ACTIVE)
    .order_by(InfusionSession.checked_in_at, InfusionSession.id)
)
IDS = sa.bindparam("ids", expanding=True)
# Per session, its newest reading not voided: one probe of the (infusion, time, id) index each,
# however many readings the session holds (a window over all of them grew with the session).
_NEWER = aliased(Reading)
_LAST_READING_ID = (
    sa.select(_NEWER.id)
    .where(_NEWER.infusion_id == InfusionSession.id, _NEWER.voided_at.is_(None))
    .order_by(*queries.newest_first(_NEWER))
    .limit(1)
    .scalar_subquery()
)
_LAST_READINGS = sa.select(Reading).where(
    Reading.id.in_(sa.select(_LAST_READING_ID).where(InfusionSession.id.in_(IDS)))
)
_OPEN_CRITICALS = (
    sa.select(Reading)
    .where(
        Reading.infusion_id.in_(IDS),
        Reading.severity == "critical",
        Reading.voided_at.is_(None),
        Reading.critical_action == "",
    )
    .order_by(Reading.taken_at)
)
_PLANNED_SESSIONS = (
    sa.select(InfusionSession)
    .options(_LISTED, *_WITH_PEOPLE)
    .where(_PLANNED)
    .order_by(InfusionSession.scheduled_for, InfusionSession.id)
)
_FINISHED_SESSIONS = (
    sa.select(InfusionSession)
    .options(_LISTED, *_WITH_PEOPLE)
    .where(_FINISHED)
    .order_by(
        sa.func.coalesce(InfusionSession.discharged_at, InfusionSession.cancelled_at),
        InfusionSession.id,
    )
)


def _day(day: date) -> dict[str, datetime]:
    start, end = clinic_day_bounds(day)
    return {"start": start, "end": end}


def board_version(day: date) -> str:
    """The board's fingerprint in one small query (the live board polls it): the sessions the
    board would show, with their versions, and nothing else."""
    rows = db.session.execute(_VERSIONS, _day(day)).all()
    return fingerprint(day, [tuple(row) for row in rows])


def suite_board(rooms: list[str], day: date, now: datetime) -> Board:
    """Every room with the session in it, today's planned and finished sessions — in a fixed
    number of queries however many rooms, sessions and readings there are."""
    active = db.session.scalars(_ACTIVE_SESSIONS).all()
    ids = {"ids": [infusion.id for infusion in active]}
    last_by_session: dict[int, Reading] = {}
    criticals: dict[int, list[Reading]] = {}
    if ids["ids"]:
        for reading in db.session.scalars(_LAST_READINGS, ids):
            last_by_session[reading.infusion_id] = reading
        for reading in db.session.scalars(_OPEN_CRITICALS, ids):
            criticals.setdefault(reading.infusion_id, []).append(reading)

    by_room: dict[str, InfusionSession] = {}
    elsewhere = []
    for infusion in active:
        if infusion.room in rooms and infusion.room not in by_room:
            by_room[infusion.room] = infusion
        else:
            elsewhere.append(infusion)

    changes: list[datetime] = []
    minute_ticks: list[datetime] = []

    def card(room: str, infusion: InfusionSession | None) -> BoardCard:
        if infusion is None:
            return BoardCard(room)
        line = status_line(
            infusion, last_by_session.get(infusion.id), criticals.get(infusion.id, []), now
        )
        if line.due_at is not None and line.due_at > now:
            changes.append(line.due_at)  # it turns overdue then
        if line.minutes_since_start is not None:
            minute_ticks.append(
                infusion.started_at + timedelta(minutes=line.minutes_since_start + 1)
            )
        prompt, prompt_at = stop_prompt(infusion, now)
        if prompt_at is not None:
            changes.append(prompt_at)
        return BoardCard(room, infusion, line, prompt)

    cards = [card(room, by_room.get(room)) for room in rooms]
    # A session in a room no longer configured still shows, so nobody drops off the board.
    cards += [card(infusion.room or "No room", infusion) for infusion in elsewhere]

    bounds = _day(day)
    planned = db.session.scalars(_PLANNED_SESSIONS, bounds).all()
    finished = db.session.scalars(_FINISHED_SESSIONS, bounds).all()
    next_change = min(changes, default=None)
    redraw = min([*changes, *minute_ticks], default=None)
    return Board(cards, planned, finished, day, next_change, redraw)


# --- The board drawn once for everyone -----------------------------------------------------


# Where the drawn board says what time it is: filled in on each view (the rest stands until
# Board.redraw_at). Markup, so no name on the board can spell them.
NOW_MS_SLOT = Markup("<now-ms>")
AS_OF_SLOT = Markup("<as-of>")
# Boards each worker keeps: a day's board as its sessions change (a fingerprint each).
DRAWN_BOARDS = 16


@dataclass(frozen=True)
class DrawnBoard:
    html: Markup
    drawn_at: datetime
    redraw_at: datetime | None

    def stands_at(self, now: datetime) -> bool:
        return self.drawn_at <= now and (self.redraw_at is None or now < self.redraw_at)


def drawn_board(rooms: list[str], day: date, now: datetime) -> Markup:
    """The board's rooms and lists (main/_board_live.html), drawn again only when its
    fingerprint changes (any session on it, its patient or clinician) or the clock turns
    something on it (Board.redraw_at): every nurse's board, and every poll that finds a
    change, read one small query instead of loading the board (issue 8)."""
    zone = current_app.config["CLINIC_TIMEZONE"]
    key = (board_version(day), tuple(rooms), day, zone)

    def draw() -> DrawnBoard:
        board = suite_board(rooms, day, now)
        html = render_template(
            "main/_board_live.html",
            board=board,
            now_ms=NOW_MS_SLOT,
            as_of=AS_OF_SLOT,
            status_kinds=STATUS_KINDS,
        )
        # Jinja escaped every value it wrote (autoescape).
        return DrawnBoard(Markup(html), now, board.redraw_at)  # noqa: S704

    drawn = drawn_boards().get(key, draw, fresh=lambda kept: kept.stands_at(now))
    # Markup.replace escapes what it puts in.
    return drawn.html.replace(NOW_MS_SLOT, str(int(now.timestamp() * 1000))).replace(
        AS_OF_SLOT, format_time(now)
    )


def drawn_boards() -> Memo[DrawnBoard]:
    return app_kept("drawn_boards", lambda: Memo(DRAWN_BOARDS))
