"""Clock and time-zone helpers: UTC in the database, clinic time on the screen.

Daylight saving: a wall time in the spring-forward gap does not exist and is refused
(NonexistentTimeError, whose message names the gap); a wall time in the fall-back hour happens
twice and means the FIRST occurrence (daylight time), and wherever such a time is shown it
carries its zone abbreviation (01:30 EDT / 01:30 EST) so the two stay apart.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app

# Clinical times before this are typos (year 1, 1900…): the forms refuse them, and pages that
# place times on an axis leave out any that reached the database another way.
EARLIEST_CLINICAL = datetime(2000, 1, 1, tzinfo=UTC)
# Nothing is planned further ahead (the plan form allows five years).
LATEST_AHEAD = timedelta(days=6 * 366)
AMBIGUOUS_RULE = (
    "In the hour repeated when clocks go back, a time means its first occurrence (daylight time)."
)


class NonexistentTimeError(ValueError):
    """A clinic wall time skipped when the clocks went forward."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def to_clinic(value: datetime | None) -> datetime | None:
    """An aware UTC datetime shown in the clinic's zone (in UTC when the zone's offset would
    carry it past year 1 or 9999: a stored typo must still show, not break the page)."""
    if value is None:
        return None
    return _in_zone(value, clinic_zone())


def _in_zone(value: datetime, zone: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(zone)
    except OverflowError:
        return value.astimezone(UTC)


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    aware = local.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local.replace(fold=0)


def gap_problem(local: datetime, what: str = "") -> str | None:
    """Why a naive clinic wall time does not exist (spring forward), or None if it does;
    `what` names the field at the head of the message."""
    zone = clinic_zone()
    try:
        if _exists(local, zone):
            return None
    except OverflowError:
        return None  # beyond the calendar: the bounds checks say so
    # In the gap fold=0 reads the time with the offset from before the change, fold=1 after.
    jump = local.replace(tzinfo=zone, fold=1).utcoffset() - local.replace(tzinfo=zone).utcoffset()
    start = local.replace(second=0, microsecond=0)
    while not _exists(start - timedelta(minutes=1), zone):
        start -= timedelta(minutes=1)
    end = start + abs(jump)
    when = f"{local:%H:%M} on {local.day} {local:%b %Y}"
    return (
        f"{f'{what}, {when},' if what else when} does not exist: clocks went forward "
        f"from {start:%H:%M} to {end:%H:%M} on {start.day} {start:%b %Y}."
    )


def is_ambiguous(value: datetime) -> bool:
    """Whether an aware time's clinic wall time happened twice (the fall-back hour)."""
    return _repeated(to_clinic(value))


def _repeated(local: datetime) -> bool:
    other = local.replace(fold=1 - local.fold)
    return other.utcoffset() != local.utcoffset()


def from_clinic(local: datetime) -> datetime:
    """A naive wall-clock time typed at the clinic, as aware UTC. The repeated hour's first
    occurrence unless the value says otherwise (fold=1); a skipped time raises."""
    problem = gap_problem(local)
    if problem:
        raise NonexistentTimeError(problem)
    return local.replace(tzinfo=clinic_zone()).astimezone(UTC)


def clinic_today() -> date:
    return utcnow().astimezone(clinic_zone()).date()


def clinic_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC start and end of one clinic calendar day."""
    zone = clinic_zone()
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def has_repeated_hour(day: date) -> bool:
    """Whether the clinic's clocks go back on this day (an hour of wall time happens twice)."""
    start, end = clinic_day_bounds(day)
    return to_clinic(end - timedelta(microseconds=1)).utcoffset() < to_clinic(start).utcoffset()


def plausible(value: datetime) -> bool:
    """Whether a stored time lies where a clinic's records can (not a year-1 or 9999 typo)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return EARLIEST_CLINICAL <= value <= utcnow() + LATEST_AHEAD


def format_datetime(value: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    """Clinic time; with the zone when the wall time alone is ambiguous (the repeated hour)
    or when it could only be shown in UTC."""
    if value is None:
        return ""
    return _formatted(value, fmt, current_app.config["CLINIC_TIMEZONE"])


# A page writes the same few times over and over (a reading's time in its row, on the chart's
# axis and by its value labels): each is worked out once per zone and format.
@lru_cache(maxsize=4096)
def _formatted(value: datetime, fmt: str, zone: str) -> str:
    local = _in_zone(value, ZoneInfo(zone))
    text = local.strftime(fmt)
    if "%H" in fmt and (local.tzinfo is UTC or _repeated(local)):
        text += local.strftime(" %Z")
    return text


def format_time(value: datetime | None) -> str:
    return format_datetime(value, "%H:%M")


def formatter(zone: str, fmt: str = "%H:%M") -> Callable[[datetime | None], str]:
    """format_datetime(value, fmt) in `zone` (the clinic's, read once by the caller), for a
    table's or chart's many times: each format_datetime reads the zone through Flask's
    current_app, several Python calls a time (bench/RESULTS.md, Stop 35)."""

    def formatted(value: datetime | None) -> str:
        return "" if value is None else _formatted(value, fmt, zone)

    return formatted
