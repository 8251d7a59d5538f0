"""Clock and time-zone helpers: UTC in the database, clinic time on the screen."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow() -> datetime:
    return datetime.now(UTC)


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def to_clinic(value: datetime | None) -> datetime | None:
    """An aware UTC datetime shown in the clinic's zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(clinic_zone())


def from_clinic(local: datetime) -> datetime:
    """A naive wall-clock time typed at the clinic, as aware UTC."""
    return local.replace(tzinfo=clinic_zone()).astimezone(UTC)


def clinic_today() -> date:
    return utcnow().astimezone(clinic_zone()).date()


def clinic_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC start and end of one clinic calendar day."""
    zone = clinic_zone()
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.fromordinal(day.toordinal() + 1).replace(tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def format_datetime(value: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    local = to_clinic(value)
    return local.strftime(fmt) if local else ""


def format_time(value: datetime | None) -> str:
    return format_datetime(value, "%H:%M")
