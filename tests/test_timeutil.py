"""Clinic wall time across daylight-saving changes (America/New_York), and the one decimal
number box every form uses."""

from datetime import UTC, date, datetime, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from infusion_tracker import timeutil
from infusion_tracker.infusions.forms import PlanForm
from infusion_tracker.infusions.reading_forms import AdverseEventForm, ReadingForm

GAP_MESSAGE = (
    "02:30 on 8 Mar 2026 does not exist: clocks went forward from 02:00 to 03:00 on 8 Mar 2026."
)


def test_a_time_skipped_by_spring_forward_is_refused_naming_the_gap(app):
    with pytest.raises(timeutil.NonexistentTimeError) as refused:
        timeutil.from_clinic(datetime(2026, 3, 8, 2, 30))
    assert str(refused.value) == GAP_MESSAGE
    # Either side of the gap is an ordinary time.
    before, after = datetime(2026, 3, 8, 1, 59), datetime(2026, 3, 8, 3, 0)
    assert timeutil.from_clinic(before) == datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    assert timeutil.from_clinic(after) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_the_repeated_hour_means_its_first_occurrence_and_shows_its_zone(app):
    first = timeutil.from_clinic(datetime(2026, 11, 1, 1, 30))
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # EDT, UTC-4
    assert timeutil.format_datetime(first) == "01 Nov 2026 01:30 EDT"
    assert timeutil.format_time(first + timedelta(hours=1)) == "01:30 EST"
    # Outside the repeated hour the zone is left off, as before.
    assert timeutil.format_time(first + timedelta(hours=2)) == "02:30"
    assert timeutil.format_datetime(first - timedelta(hours=2)) == "31 Oct 2026 23:30"
    assert timeutil.format_datetime(first, "%d %b %Y") == "01 Nov 2026"


def test_a_stored_time_past_the_calendar_shows_in_utc(app):
    assert timeutil.format_datetime(datetime(1, 1, 1, tzinfo=UTC)) == "01 Jan 1 00:00 UTC"


def test_the_field_refuses_the_gap_and_states_the_rule_on_a_fall_back_day(app):
    with app.test_request_context(method="POST"):
        form = ReadingForm(MultiDict({"taken_at": "2026-03-08T02:30", "phase": "infusion"}))
        form.validate()
        assert form.taken_at.errors == [
            "Time taken, 02:30 on 8 Mar 2026, does not exist: clocks went forward from 02:00 "
            "to 03:00 on 8 Mar 2026."
        ]
        assert form.taken_at.data is None
        event = AdverseEventForm(MultiDict({"onset_at": "2026-11-01T01:30"}))
        event.validate()
        assert event.onset_at.errors == []
        assert event.onset_at.data == datetime(2026, 11, 1, 1, 30)
        assert timeutil.AMBIGUOUS_RULE in event.onset_at.description
        ordinary = AdverseEventForm(MultiDict({"onset_at": "2026-11-02T01:30"}))
        assert timeutil.AMBIGUOUS_RULE not in ordinary.onset_at.description


def test_has_repeated_hour(app):
    assert timeutil.has_repeated_hour(date(2026, 11, 1))
    assert not timeutil.has_repeated_hour(date(2026, 3, 8))
    assert not timeutil.has_repeated_hour(date(2026, 11, 2))


# --- one decimal number box -----------------------------------------------------------------


def number_boxes(app, typed: str):
    """The weight box of the plan form and the temperature box of the reading form."""
    with app.test_request_context(method="POST"):
        plan = PlanForm(MultiDict({"weight": typed}))
        plan.validate()
        reading = ReadingForm(MultiDict({"temperature": typed}))
        reading.validate()
        return plan.weight, reading.temperature


@pytest.mark.parametrize(
    ("typed", "value"),
    [("36.5", 36.5), ("36,5", 36.5), ("  36.5 ", 36.5), ("37.", 37.0), (".5", 0.5), ("37", 37)],
)
def test_weight_and_temperature_read_the_same_decimals(app, typed, value):
    weight, temperature = number_boxes(app, typed)
    assert weight.data == value == temperature.data
    assert not any("number" in message for message in weight.errors + temperature.errors)


@pytest.mark.parametrize("typed", ["1e2", "nan", "inf", "72.5 kg", "7 2", "--3", "72..5", ","])
def test_weight_and_temperature_refuse_the_same_non_numbers(app, typed):
    weight, temperature = number_boxes(app, typed)
    assert weight.data is None and temperature.data is None
    assert "Weight must be a number, e.g. 72.5." in weight.errors
    assert "Temperature must be a number, e.g. 36.8." in temperature.errors


def test_a_comma_that_could_be_a_thousands_separator_is_refused(app):
    weight, temperature = number_boxes(app, "1,000")
    assert weight.errors[0] == (
        "Weight: 1,000 could mean 1000 or 1.000; type it with a decimal point, e.g. 72.5."
    )
    assert weight.data is None and temperature.data is None
