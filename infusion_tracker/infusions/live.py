"""What a session page shows that the clock moves (issue 8): the minutes the pump has run,
what it has given so far, the minutes since the start and the observation left. Each is worked
out from values only a new version of the session changes (SessionClock), so a running
session's page can be kept like a finished one (infusions/drawn.py): each view fills them in
for its own time (memo.per_view). What the clock changes the shape of (a reading turning
overdue, the planned minutes reached, the observation done, a baseline too old to start on)
happens at a time known when the page is drawn: SessionClock.turns_at, after which the page is
drawn again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from .. import clinical
from ..memo import per_view
from ..models import InfusionSession
from ..templating import format_mg
from ..timeutil import utcnow
from .queries import OBSERVED_STATUSES, RUNNING_STATUSES, pump_events


@dataclass(frozen=True)
class DoseGiven:
    """What the pump gave (clinical.pump_run) against the order, in the one wording the session
    page, the print and the review share."""

    given_mg: float  # rounded by clinical.round_mg
    ordered_mg: float | None
    minutes: int  # minutes the pump ran, pauses excluded
    planned_min: int
    running: bool  # infusing or paused: the amount still grows
    short: bool  # ended before the planned minutes

    @property
    def label(self) -> str:
        return "Given so far" if self.running else "Given"

    @property
    def amount(self) -> str:
        given = f"{format_mg(self.given_mg)} mg"
        if self.ordered_mg is not None:
            given += f" of {format_mg(self.ordered_mg)} mg"
        if self.running:
            return given + (" ordered" if self.ordered_mg is not None else "")
        stopped = "stopped at " if self.short else ""
        return f"{given} ({stopped}{self.minutes} of {self.planned_min} min)"

    @property
    def text(self) -> str:
        return f"{self.label} {self.amount}"


@dataclass(frozen=True)
class SessionClock:
    """A session's times and pump events as plain values (a kept page holds no database row)."""

    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_min: int
    total_mg: float | None
    pump_events: tuple[clinical.PumpEvent, ...]
    observed_until: datetime | None  # the end of the minimum observation, once ended

    @classmethod
    def of(cls, infusion: InfusionSession) -> SessionClock:
        """From a session whose events are loaded."""
        ended = infusion.ended_at
        return cls(
            status=infusion.status,
            started_at=infusion.started_at,
            ended_at=ended,
            duration_min=infusion.duration_min,
            total_mg=infusion.total_mg,
            pump_events=tuple(pump_events(infusion)),
            observed_until=ended + timedelta(minutes=infusion.protocol.min_observation_min)
            if ended and infusion.status in OBSERVED_STATUSES
            else None,
        )

    @property
    def moves(self) -> bool:
        """Whether anything this clock says changes with the time."""
        return self.status in (*RUNNING_STATUSES, *OBSERVED_STATUSES)

    def pump(self, now: datetime) -> clinical.PumpRun:
        return clinical.pump_run(list(self.pump_events), self.ended_at or now, self.total_mg)

    def given(self, now: datetime) -> DoseGiven | None:
        """None until the infusion has started."""
        if self.started_at is None:
            return None
        run = self.pump(now)
        running = self.ended_at is None
        return DoseGiven(
            given_mg=run.given_mg,
            ordered_mg=self.total_mg,
            minutes=round(run.minutes),
            planned_min=self.duration_min,
            running=running,
            short=not running and clinical.ended_short(run.minutes, self.duration_min),
        )

    def planned_reached(self, run: clinical.PumpRun) -> bool:
        """A running (or paused) infusion whose pump has run its planned minutes: the bedside
        asks to stop or to record why it runs on, and the board shows it."""
        return self.status in RUNNING_STATUSES and clinical.planned_reached(
            run.minutes, self.duration_min
        )

    def planned_reached_at(self, now: datetime) -> datetime | None:
        """When a pump running now reaches its planned minutes (None: reached already, or
        paused, when they come no closer)."""
        run = self.pump(now)
        if self.status not in RUNNING_STATUSES or not run.running or self.planned_reached(run):
            return None
        return now + timedelta(minutes=self.duration_min - run.minutes) - clinical.STOP_GRACE

    def observation_left_min(self, now: datetime) -> int | None:
        """Whole minutes of the minimum observation left (rounded up), while in recovery."""
        if self.observed_until is None:
            return None
        return math.ceil(max(0.0, (self.observed_until - now).total_seconds()) / 60)

    def turns_at(self, now: datetime, *also: datetime | None) -> datetime | None:
        """The next time the clock alone changes the page's shape: the planned minutes are
        reached, the observation is done, or one of `also` (a reading turns overdue, the start
        gate's words change). A time now counts: overdue is after the due time, and a page drawn
        at that very time must be drawn again after it."""
        times = [self.planned_reached_at(now), self.observed_until, *also]
        return min((at for at in times if at is not None and at >= now), default=None)


def whole_minutes(since: datetime | None, now: datetime) -> int | None:
    if since is None:
        return None
    return max(0, int((now - since).total_seconds() // 60))


class LiveParts:
    """The clock's words on a session page, as text: each view's own (memo.per_view) when the
    clock moves them, drawn once when it does not."""

    def __init__(self, clock: SessionClock):
        self.clock = clock

    def _text(self, make) -> Markup:
        clock = self.clock
        if not clock.moves:
            return escape(make(clock, utcnow()))
        # A marker (hex) while a kept page is drawn, else this view's text: escaped either way.
        return Markup(per_view(lambda: str(escape(make(clock, utcnow())))))  # noqa: S704

    @property
    def infused_minutes(self) -> Markup:
        return self._text(lambda clock, now: round(clock.pump(now).minutes))

    @property
    def minutes_since_start(self) -> Markup:
        return self._text(lambda clock, now: whole_minutes(clock.started_at, now))

    @property
    def given_amount(self) -> Markup:
        return self._text(lambda clock, now: clock.given(now).amount)

    @property
    def pump_given_mg(self) -> Markup:
        return self._text(lambda clock, now: f"{clock.pump(now).given_mg:.1f} mg")

    @property
    def observation_left_min(self) -> Markup:
        return self._text(lambda clock, now: clock.observation_left_min(now))
