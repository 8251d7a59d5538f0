"""Form fields shared by every form: a clinic date-time box and a decimal number box.

ClinicTimeField reads clinic wall time and refuses what cannot be right: a time skipped when
the clocks went forward (named with the gap), a clinical time before 2000 or in the future,
a planned session years away. A time in the hour repeated when clocks go back means its first
occurrence (timeutil.AMBIGUOUS_RULE; the hint says so on such days).

NumberField takes one decimal form everywhere (weight, temperature, doses): digits with a
point or a comma as the decimal mark, spaces around ignored; never an exponent, NaN or
infinity, and never a comma that could be a thousands separator.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from wtforms import DateTimeLocalField, FloatField
from wtforms.widgets import TextInput

from . import timeutil

# datetime-local submits "YYYY-MM-DDTHH:MM"; the first format is also how the value is drawn.
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
# SPEC §4: a clinical time may run ahead of the server's clock by this much (device clocks).
FUTURE_SKEW = timedelta(minutes=5)
# How far from today a session may be planned, either way.
PLANNING_YEARS = 5


def _day(value: datetime) -> str:
    return f"{value.day} {value:%b %Y}"


def clinical_window(field: ClinicTimeField, utc: datetime) -> str | None:
    """A charted time (reading, adverse event, score): from 2000 up to now (the services'
    own future check words it the same way)."""
    if utc < timeutil.EARLIEST_CLINICAL:
        return f"The {field.noun} cannot be before {_day(timeutil.EARLIEST_CLINICAL)}."
    if utc > timeutil.utcnow() + FUTURE_SKEW:
        return f"The {field.noun} cannot be in the future."
    return None


def planning_window(field: ClinicTimeField, utc: datetime) -> str | None:
    """A planned session: within PLANNING_YEARS of today."""
    today = timeutil.clinic_today()
    first, last = _years_from(today, -PLANNING_YEARS), _years_from(today, PLANNING_YEARS)
    if not timeutil.clinic_day_bounds(first)[0] <= utc < timeutil.clinic_day_bounds(last)[1]:
        return f"{field.label.text} must be between {_day(first)} and {_day(last)}."
    return None


def _years_from(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class ClinicTimeField(DateTimeLocalField):
    """A time typed as clinic wall time. `data` is naive wall time (convert with
    timeutil.from_clinic), or aware UTC with as_utc=True; aware values are drawn in clinic
    time. `window` refuses times outside its bounds with a message naming the field."""

    def __init__(
        self, label, name_in_message=None, *, window=clinical_window, as_utc=False, **kwargs
    ):
        kwargs.setdefault("format", DATETIME_FORMATS)
        self.noun = name_in_message or label.lower()
        super().__init__(
            label,
            invalid_value_message=f"Enter the {self.noun} as a date and time, "
            "e.g. 2025-03-01 14:05.",
            **kwargs,
        )
        self.window = window
        self.as_utc = as_utc

    # The rule for the repeated hour joins the hint on a day that has one.
    @property
    def description(self) -> str:
        value = self.data
        if isinstance(value, datetime) and value.tzinfo is not None:
            day = timeutil.to_clinic(value).date()
        else:
            day = value.date() if isinstance(value, datetime) else timeutil.clinic_today()
        if timeutil.has_repeated_hour(day):
            return f"{self._hint} {timeutil.AMBIGUOUS_RULE}".strip()
        return self._hint

    @description.setter
    def description(self, value: str) -> None:
        self._hint = value

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        value = self.data
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = timeutil.to_clinic(value).replace(tzinfo=None)
        return value.strftime(self.format[0]) if value else ""

    def process_formdata(self, valuelist):
        if not valuelist or not " ".join(valuelist).strip():
            self.data = None
            return
        super().process_formdata(valuelist)
        problem = timeutil.gap_problem(self.data, self.label.text)
        utc = None if problem else _as_utc(self.data)
        problem = problem or self.window(self, utc)
        if problem:
            self.data = None
            raise ValueError(problem)
        if self.as_utc:
            self.data = utc


def _as_utc(local: datetime) -> datetime:
    """timeutil.from_clinic that stays inside the calendar: at year 1 or 9999 the zone's
    offset could carry the time out of it, and hours do not matter to the bounds check."""
    try:
        return timeutil.from_clinic(local)
    except OverflowError:
        return local.replace(tzinfo=UTC)


NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)")
THOUSANDS = re.compile(r"[+-]?\d{1,3},\d{3}")


class NumberField(FloatField):
    """A text box for a decimal number; blank is None. Point or comma as the decimal mark."""

    widget = TextInput()

    def __init__(self, label, name_in_message=None, *, example="1.5", **kwargs):
        self.name_in_message = name_in_message or label
        self.example = example
        super().__init__(label, **kwargs)

    def process_formdata(self, valuelist):
        text = valuelist[0].strip() if valuelist else ""
        self.data = None
        if not text:
            return
        if THOUSANDS.fullmatch(text):
            whole, point = text.replace(",", ""), text.replace(",", ".")
            raise ValueError(
                f"{self.name_in_message}: {text} could mean {whole} or {point}; "
                f"type it with a decimal point, e.g. {self.example}."
            )
        if not NUMBER.fullmatch(text):
            raise ValueError(f"{self.name_in_message} must be a number, e.g. {self.example}.")
        self.data = float(text.replace(",", "."))
