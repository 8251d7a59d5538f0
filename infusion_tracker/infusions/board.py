"""The suite board and the status line it shares with the session page: who is in each room,
minutes since start, the last reading, when the next is due, and open critical values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from .. import clinical
from ..extensions import db
from ..models import InfusionSession, Reading
from ..timeutil import clinic_day_bounds
from .queries import ACTIVE_STATUSES, reading_interval


def whole_minutes(since: datetime | None, now: datetime) -> int | None:
    if since is None:
        return None
    return max(0, int((now - since).total_seconds() // 60))



@dataclass
class StatusLine:
    """What the top of the session page and a board card say about a session right now."""

    minutes_since_start: int | None
    minutes_since_stop: int | None
    last_reading: Reading | None
    due_at: datetime | None
    overdue: bool
    open_criticals: list[Reading] = field(default_factory=list)

    @property
    def critical_messages(self) -> list[str]:
        return [
            flag.get("message", "")
            for reading in self.open_criticals
            for flag in (reading.flags or [])
            if flag.get("level") == "critical"
        ]


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
            if infusion.status in ("infusing", "paused")
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


@dataclass
class BoardCard:
    room: str
    infusion: InfusionSession | None = None
    status: StatusLine | None = None


@dataclass
class Board:
    cards: list[BoardCard]
    planned: list[InfusionSession]
    finished: list[InfusionSession]


def suite_board(rooms: list[str], day: date, now: datetime) -> Board:
    """Every room with the session in it, today's planned and finished sessions — in a fixed
    number of queries however many rooms, sessions and readings there are."""
    with_people = (
        joinedload(InfusionSession.patient),
        joinedload(InfusionSession.clinician),
    )
    active = db.session.scalars(
        sa.select(InfusionSession)
        .options(*with_people, joinedload(InfusionSession.protocol))
        .where(InfusionSession.status.in_(ACTIVE_STATUSES))
        .order_by(InfusionSession.checked_in_at, InfusionSession.id)
    ).all()
    ids = [infusion.id for infusion in active]
    last_by_session: dict[int, Reading] = {}
    criticals: dict[int, list[Reading]] = {}
    if ids:
        rank = (
            sa.func.row_number()
            .over(
                partition_by=Reading.infusion_id,
                order_by=(Reading.taken_at.desc(), Reading.id.desc()),
            )
            .label("rank")
        )
        ranked = (
            sa.select(Reading.id, rank)
            .where(Reading.infusion_id.in_(ids), Reading.voided_at.is_(None))
            .subquery()
        )
        for reading in db.session.scalars(
            sa.select(Reading).join(ranked, Reading.id == ranked.c.id).where(ranked.c.rank == 1)
        ):
            last_by_session[reading.infusion_id] = reading
        for reading in db.session.scalars(
            sa.select(Reading)
            .where(
                Reading.infusion_id.in_(ids),
                Reading.severity == "critical",
                Reading.voided_at.is_(None),
                Reading.critical_action == "",
            )
            .order_by(Reading.taken_at)
        ):
            criticals.setdefault(reading.infusion_id, []).append(reading)

    by_room: dict[str, InfusionSession] = {}
    elsewhere = []
    for infusion in active:
        if infusion.room in rooms and infusion.room not in by_room:
            by_room[infusion.room] = infusion
        else:
            elsewhere.append(infusion)

    def card(room: str, infusion: InfusionSession | None) -> BoardCard:
        if infusion is None:
            return BoardCard(room)
        line = status_line(
            infusion, last_by_session.get(infusion.id), criticals.get(infusion.id, []), now
        )
        return BoardCard(room, infusion, line)

    cards = [card(room, by_room.get(room)) for room in rooms]
    # A session in a room no longer configured still shows, so nobody drops off the board.
    cards += [card(infusion.room or "No room", infusion) for infusion in elsewhere]

    start, end = clinic_day_bounds(day)
    planned = db.session.scalars(
        sa.select(InfusionSession)
        .options(*with_people)
        .where(
            InfusionSession.status == "planned",
            InfusionSession.scheduled_for >= start,
            InfusionSession.scheduled_for < end,
        )
        .order_by(InfusionSession.scheduled_for, InfusionSession.id)
    ).all()
    finished_at = sa.func.coalesce(InfusionSession.discharged_at, InfusionSession.cancelled_at)
    finished = db.session.scalars(
        sa.select(InfusionSession)
        .options(*with_people)
        .where(
            InfusionSession.status.in_(("discharged", "cancelled")),
            finished_at >= start,
            finished_at < end,
        )
        .order_by(finished_at, InfusionSession.id)
    ).all()
    return Board(cards, planned, finished)
