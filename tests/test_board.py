"""The infusion suite board (/): every room with its session, the last reading and when the
next is due, open critical flags, today's planned and finished sessions — in clinic time and
in a fixed number of queries."""

import re
from datetime import timedelta

import pytest

from infusion_tracker.extensions import db
from infusion_tracker.infusions import readings
from infusion_tracker.timeutil import clinic_day_bounds, clinic_today, format_time, utcnow
from tests.conftest import add_reading, later_today, run_session

ROOMS = ["Room A", "Room B", "Room C"]


@pytest.fixture
def app_config():
    return {"ROOMS": ROOMS}


@pytest.fixture
def protocol(make_protocol):
    return make_protocol()


@pytest.fixture
def session_in(make_infusion, protocol):
    """A session in `room` taken through the lifecycle to `status`, started `minutes_ago`;
    a recovery session stopped at `ended_at` (default 2 minutes ago)."""

    def make(room, status="infusing", minutes_ago=15, ended_at=None):
        infusion = make_infusion(protocol=protocol, room=room)
        ended_at = ended_at or utcnow() - timedelta(minutes=2)
        ran = (ended_at - (utcnow() - timedelta(minutes=minutes_ago))).total_seconds() / 60
        return run_session(
            infusion, status, started_minutes_ago=minutes_ago, infused_minutes=round(ran)
        )

    return make


# The board's usual reading (no respiratory rate).
BOARD_VITALS = {"systolic": 132, "diastolic": 84, "heart_rate": 77, "spo2": 97, "resp_rate": None}


def cards(html):
    """{room: card html} for each room card on the board."""
    found = {}
    for block in html.split('<li class="board-card')[1:]:
        block = block.split("</li>")[0]
        room = re.search(r'<h3 class="board-card__room">([^<]+)</h3>', block).group(1)
        found[room] = block
    return found


def queries(counter):
    return [s for s in counter.statements if not s.startswith("BEGIN")]


def board(client):
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_every_room_is_shown_and_empty_rooms_say_so(client, login_as, session_in):
    login_as("np")
    infusion = session_in("Room B", minutes_ago=15)
    reading = add_reading(infusion, minutes_ago=2, **BOARD_VITALS)
    shown = cards(board(client))
    assert list(shown) == ROOMS
    assert "Empty" in shown["Room A"] and "Empty" in shown["Room C"]
    card = shown["Room B"]
    assert infusion.patient.full_name in card
    assert 'tag--ok">Infusing' in card
    assert "15 min since start" in card
    assert f"{format_time(reading.taken_at)} ·" in card
    assert "BP 132/84" in card and "HR 77" in card and "SpO2 97%" in card
    due = format_time(reading.taken_at + timedelta(minutes=5))
    assert due in card
    assert "OVERDUE" not in card


def test_overdue_reading_stands_out(client, login_as, session_in):
    login_as("np")
    infusion = session_in("Room A", minutes_ago=30)
    add_reading(infusion, minutes_ago=12)
    card = cards(board(client))["Room A"]
    assert 'tag--critical">OVERDUE' in card
    assert "board-card--overdue" in card


def test_recovery_uses_the_recovery_interval(client, login_as, session_in):
    login_as("np")
    infusion = session_in(
        "Room A", status="recovery", minutes_ago=80, ended_at=utcnow() - timedelta(minutes=40)
    )
    reading = add_reading(infusion, minutes_ago=10)
    card = cards(board(client))["Room A"]
    assert format_time(reading.taken_at + timedelta(minutes=15)) in card
    assert "OVERDUE" not in card


def test_first_recovery_reading_is_due_an_interval_after_the_stop(client, login_as, session_in):
    login_as("np")
    ended = utcnow() - timedelta(minutes=3)
    infusion = session_in("Room A", status="recovery", minutes_ago=45, ended_at=ended)
    add_reading(infusion, minutes_ago=5)  # the last infusion-phase reading, before the stop
    assert format_time(ended + timedelta(minutes=15)) in cards(board(client))["Room A"]


def test_open_critical_flags_show_until_answered_or_voided(client, login_as, session_in):
    staff = login_as("np")
    infusion = session_in("Room C")
    open_one = add_reading(infusion, staff, minutes_ago=3, spo2=89)
    answered = add_reading(infusion, staff, minutes_ago=6, spo2=88)
    readings.review_critical(answered, staff, "Probe repositioned, repeat SpO2 95%.")
    db.session.commit()
    assert answered.critical_action
    card = cards(board(client))["Room C"]
    assert "SpO2 89 &lt; 92" in card
    assert "SpO2 88" not in card
    assert "board-card--critical" in card
    readings.void_reading(open_one, staff, "probe off")
    db.session.commit()
    card = cards(board(client))["Room C"]
    assert "CRITICAL" not in card
    # The last reading shown is the last one not voided.
    assert "SpO2 88%" in card


def test_each_room_shows_its_own_latest_reading_by_time_taken(client, login_as, session_in):
    """Charted late (a higher id) but taken earlier is not the latest; at the same minute the
    one recorded last is; each session's latest is its own."""
    login_as("np")
    in_a, in_b = session_in("Room A", minutes_ago=30), session_in("Room B", minutes_ago=30)
    at = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=4)
    add_reading(in_a, at=at, heart_rate=81)
    add_reading(in_a, at=at - timedelta(minutes=10), heart_rate=99)  # charted late
    add_reading(in_b, at=at - timedelta(minutes=5), heart_rate=64)
    add_reading(in_b, at=at - timedelta(minutes=5), heart_rate=66)  # same minute, recorded last
    add_reading(in_b, at=at - timedelta(minutes=20), heart_rate=70)
    shown = cards(board(client))
    assert "HR 81" in shown["Room A"] and "HR 99" not in shown["Room A"]
    assert "HR 66" in shown["Room B"] and "HR 64" not in shown["Room B"]


def test_checked_in_patient_waits_for_a_baseline(client, login_as, session_in):
    login_as("pa")
    session_in("Room A", status="checked_in")
    card = cards(board(client))["Room A"]
    assert 'tag--info">Checked in' in card
    assert "Baseline before the start" in card
    assert "since start" not in card


def test_session_in_an_unconfigured_room_is_not_lost(client, login_as, session_in):
    login_as("np")
    infusion = session_in("Old annex")
    shown = cards(board(client))
    assert list(shown) == [*ROOMS, "Old annex"]
    assert infusion.patient.full_name in shown["Old annex"]


def test_today_planned_and_finished_in_clinic_time(client, login_as, make_infusion, protocol):
    login_as("np")
    start, end = clinic_day_bounds(clinic_today())
    late_today = make_infusion(
        protocol=protocol, room="", scheduled_for=end - timedelta(minutes=30)
    )
    make_infusion(protocol=protocol, room="", scheduled_for=end + timedelta(minutes=30))
    yesterday = make_infusion(
        protocol=protocol, room="", scheduled_for=start - timedelta(minutes=30)
    )
    # Written directly: what is tested is the day's edge, so the finished times are pinned to
    # the clinic day's first minutes, where a lifecycle run (check-in, baseline, 40 minutes
    # infused, observation) has no room.
    discharged = make_infusion(
        protocol=protocol,
        status="discharged",
        started_at=start + timedelta(minutes=1),
        ended_at=start + timedelta(minutes=2),
        discharged_at=start + timedelta(minutes=3),
    )
    cancelled = make_infusion(
        protocol=protocol,
        status="cancelled",
        cancelled_at=start + timedelta(minutes=4),
        cancel_reason="flu",
    )
    make_infusion(
        protocol=protocol, status="discharged", discharged_at=start - timedelta(minutes=5)
    )
    html = board(client)
    planned = html[html.index('id="planned-heading"') : html.index('id="finished-heading"')]
    finished = html[html.index('id="finished-heading"') :]
    assert late_today.patient.full_name in planned
    assert "23:30" in planned  # shown in clinic time
    assert planned.count("<tr>") == 2  # header + the one session planned today
    assert yesterday.patient.full_name not in planned
    assert discharged.patient.full_name in finished and "Discharged" in finished
    assert cancelled.patient.full_name in finished and "Cancelled" in finished
    assert finished.count("<tr>") == 3


def test_board_query_count_is_fixed(
    client, login_as, session_in, make_infusion, protocol, count_queries
):
    nurse = login_as("np")
    first = session_in("Room A")
    add_reading(first, minutes_ago=1)
    make_infusion(protocol=protocol, room="", scheduled_for=later_today())
    client.get("/")
    with count_queries() as shown_again:
        board(client)
    add_reading(first, nurse, minutes_ago=0)  # a change: the board is drawn again
    with count_queries() as few:
        board(client)
    for room in ("Room B", "Room C", "Elsewhere"):
        infusion = session_in(room, status="recovery")
        for minute in range(10):
            add_reading(infusion, minutes_ago=minute + 1, systolic=185)
    for _ in range(3):
        make_infusion(protocol=protocol, room="", scheduled_for=later_today())
    db.session.commit()
    with count_queries() as many:
        html = board(client)
    assert html.count("SBP 185") == 30
    assert many.count == few.count, (few.statements, many.statements)
    # The signed-in user, the board's fingerprint, active sessions, their pump events (the
    # stop prompt), last readings, open criticals, planned, finished (SQLite adds its BEGIN
    # IMMEDIATE), then the read audit row after the page (the chain's last hash and the
    # insert; issue 9).
    assert len(queries(few)) == 10, few.statements
    # Nothing changed: the board drawn before, found by its fingerprint (board.drawn_board).
    assert len(queries(shown_again)) == 4, shown_again.statements


def test_admin_is_sent_to_the_staff_list(client, login_as):
    login_as("admin")
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/staff/"
