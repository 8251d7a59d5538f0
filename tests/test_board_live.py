"""The live suite board (issue 10): the fingerprint an open board polls (/board/version, 304
while nothing changed, no patient data, not activity), the rooms it fetches again
(/board/rooms, audited like the board), the moment it must look again with no change in the
database (a reading falls due, the planned minutes are reached), the stop prompt, and the
"finished today" index ranges (issue 8). The browser side is in test_browser_board_live.py."""

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.admin import services as admin
from infusion_tracker.extensions import db
from infusion_tracker.infusions import lifecycle
from infusion_tracker.infusions.board import _FINISHED, drawn_board, stop_prompt, suite_board
from infusion_tracker.models import InfusionSession
from infusion_tracker.patients import services as patients
from infusion_tracker.timeutil import clinic_day_bounds, clinic_today, format_time, utcnow
from tests.conftest import add_reading, audit_rows, later_today, run_session
from tests.test_board import ROOMS, cards, queries

VERSION = "/board/version"
ROOMS_URL = "/board/rooms"


@pytest.fixture
def app_config():
    return {"ROOMS": ROOMS}


@pytest.fixture
def protocol(make_protocol):
    return make_protocol()


@pytest.fixture
def infusing_in(make_infusion, protocol):
    def make(room, minutes_ago=15, **fields):
        infusion = make_infusion(protocol=protocol, room=room, **fields)
        return run_session(infusion, "infusing", started_minutes_ago=minutes_ago)

    return make


def version(client, etag=None):
    headers = {"If-None-Match": f'"{etag}"'} if etag else {}
    return client.get(VERSION, headers=headers)


def shown_version(html):
    return re.search(r'id="board-live" data-version="([0-9a-f]+)"', html).group(1)


# --- The fingerprint ---------------------------------------------------------------------------


def test_version_is_the_board_s_and_answers_304_until_a_room_changes(
    client, login_as, infusing_in
):
    nurse = login_as("np")
    infusion = infusing_in("Room A")
    first = version(client)
    assert first.status_code == 200 and first.mimetype == "application/json"
    current = first.get_json()["version"]
    assert first.headers["ETag"] == f'"{current}"'
    assert shown_version(client.get("/").get_data(as_text=True)) == current
    unchanged = version(client, current)
    assert unchanged.status_code == 304 and unchanged.data == b""

    add_reading(infusion, nurse, minutes_ago=0, spo2=89)  # a reading in any room
    changed = version(client, current)
    assert changed.status_code == 200
    after_reading = changed.get_json()["version"]
    assert after_reading != current
    assert shown_version(client.get("/").get_data(as_text=True)) == after_reading


@pytest.mark.parametrize("change", ["plan", "rename", "clinician", "discharge", "pause"])
def test_any_change_the_board_shows_changes_the_version(
    client, login_as, infusing_in, make_infusion, protocol, change
):
    nurse = login_as("np")
    infusion = infusing_in("Room B", minutes_ago=45)
    before = version(client).get_json()["version"]
    if change == "plan":
        make_infusion(protocol=protocol, room="", scheduled_for=later_today())
    elif change == "rename":
        patient = infusion.patient
        data = {name: getattr(patient, name) for name in patients.PATIENT_FIELDS}
        patients.update_patient(patient, {**data, "first_name": "Renamed"}, nurse, patient.version)
    elif change == "clinician":
        admin.update_staff(infusion.clinician, "Renamed Nurse", "RN", nurse)
    elif change == "discharge":
        # Discharged now (40 minutes infused, then the observation): on today's board.
        run = run_session(make_infusion(protocol=protocol, room="Room C"), "discharged",
                          started_minutes_ago=40 + protocol.min_observation_min,
                          infused_minutes=40)
        assert run.status == "discharged"
    else:
        lifecycle.pause_infusion(infusion, nurse, "Patient asked for a break")
    db.session.commit()
    after = version(client).get_json()["version"]
    assert after != before
    html = client.get("/").get_data(as_text=True)
    assert shown_version(html) == after
    if change == "clinician":
        assert "Renamed Nurse, RN" in cards(html)["Room B"]


def test_version_holds_no_patient_data_costs_one_query_and_leaves_no_audit_row(
    client, login_as, infusing_in, count_queries
):
    login_as("np")
    infusion = infusing_in("Room A")
    version(client)
    with count_queries() as few:
        body = version(client).get_data(as_text=True)
    for room in ("Room B", "Room C", "Elsewhere"):
        other = infusing_in(room, minutes_ago=20)
        for minute in range(5):
            add_reading(other, minutes_ago=minute + 1)
    with count_queries() as many:
        version(client)
    # The signed-in user, then the fingerprint's one statement; no audit row (no patient data).
    assert len(queries(few)) == 2, few.statements
    assert many.count == few.count, many.statements
    assert infusion.patient.last_name not in body and infusion.patient.mrn not in body
    assert len(body) < 60, body
    assert audit_rows("board.viewed") == []


def test_polling_is_not_activity_and_an_expired_sign_in_is_sent_to_sign_in(client, login_as):
    login_as("np")
    with client.session_transaction() as session:
        session["seen_at"] = time.time() - 14 * 60
        seen = session["seen_at"]
    assert version(client).status_code == 200
    assert client.get(ROOMS_URL).status_code == 200
    with client.session_transaction() as session:
        assert session["seen_at"] == seen  # the open board keeps nobody signed in
    with client.session_transaction() as session:
        session["seen_at"] = time.time() - 16 * 60
    expired = version(client)
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login")
    # What board.js then sees (a redirect, not followed), and so it stops: the next poll is
    # sent to sign in too.
    assert version(client).status_code == 302


def test_admin_may_not_poll(client, login_as):
    login_as("admin")
    assert version(client).status_code == 403
    assert client.get(ROOMS_URL).status_code == 403


# --- The rooms, fetched again ------------------------------------------------------------------


def test_rooms_fragment_is_the_board_s_own_part_audited_like_the_board(
    client, login_as, infusing_in, count_queries
):
    login_as("np")
    infusion = infusing_in("Room A")
    client.get("/")
    with count_queries() as page:
        client.get("/")
    with count_queries() as fragment:
        html = client.get(ROOMS_URL).get_data(as_text=True)
    assert "<html" not in html and 'id="board-live"' in html
    assert infusion.patient.full_name in cards(html)["Room A"]
    assert fragment.count == page.count  # the same queries as the page
    assert [row.action for row in audit_rows("board.viewed")] == ["board.viewed"] * 3


# --- Time alone changes the board --------------------------------------------------------------


def test_next_change_is_when_a_reading_falls_due(app, client, login_as, infusing_in):
    nurse = login_as("np")
    infusion = infusing_in("Room A", minutes_ago=10)
    reading = add_reading(infusion, nurse, minutes_ago=2)
    now = utcnow()
    board = suite_board(ROOMS, clinic_today(), now)
    due = reading.taken_at + timedelta(minutes=5)
    assert board.next_change_at == due  # before the stop prompt at 39 minutes
    html = client.get("/").get_data(as_text=True)
    stamp = int(due.timestamp() * 1000)
    assert f'data-next-change="{stamp}"' in html
    # Past it, the card shows the overdue reading with the key board.js announces it by.
    later = suite_board(ROOMS, clinic_today(), due + timedelta(seconds=1))
    (card,) = [card for card in later.cards if card.infusion]
    assert [alert.kind for alert in card.alerts] == ["overdue"]


def test_the_drawn_board_stands_until_the_clock_turns_something_on_it(
    app, login_as, infusing_in, count_queries
):
    """The board is drawn once for every view until a card's minutes since start or a reading
    falling due turns it; what time it is comes from each view."""
    nurse = login_as("np")
    infusion = infusing_in("Room A", minutes_ago=10)
    reading = add_reading(infusion, nurse, minutes_ago=2)
    db.session.commit()
    started = infusion.started_at
    due = reading.taken_at + timedelta(minutes=5)
    now = started + timedelta(minutes=10, seconds=1)
    assert now < due

    def view(at):
        with app.test_request_context("/"):
            return drawn_board(ROOMS, clinic_today(), at)

    drawn = view(now)
    assert "10 min since start" in cards(drawn)["Room A"]
    later = now + timedelta(seconds=50)  # the same minute since start
    with count_queries() as again:
        kept = view(later)
    assert len(queries(again)) == 1, again.statements  # the fingerprint alone
    assert f'data-now="{int(later.timestamp() * 1000)}"' in kept
    assert f'data-as-of="{format_time(later)}"' in kept
    assert without_the_time(kept) == without_the_time(drawn)
    turned = view(started + timedelta(minutes=11))
    assert "11 min since start" in cards(turned)["Room A"]
    assert "OVERDUE" not in cards(turned)["Room A"]
    overdue = cards(view(due + timedelta(seconds=1)))["Room A"]
    assert "OVERDUE" in overdue and "board-card--overdue" in drawn_card_class(overdue)


def drawn_card_class(card_html):
    return card_html.split(">", 1)[0]


def without_the_time(html):
    return re.sub(r' data-(now|as-of)="[^"]*"', "", html)


def test_stop_prompt_when_the_planned_minutes_are_reached(client, login_as, infusing_in):
    nurse = login_as("np")
    short = infusing_in("Room A", minutes_ago=30)
    reached = infusing_in("Room B", minutes_ago=41)
    for infusion in (short, reached):
        add_reading(infusion, nurse, minutes_ago=1)
    board = suite_board(ROOMS, clinic_today(), utcnow())
    assert board.cards[0].prompt is None and board.cards[1].prompt == "Planned time reached — stop?"
    # 40 planned minutes, less the minute's grace a wall clock needs (clinical.STOP_GRACE);
    # the board looks again then (or sooner, when a reading falls due).
    now = utcnow()
    prompt, prompt_at = stop_prompt(short, now)
    assert prompt is None
    assert abs((prompt_at - (short.started_at + timedelta(minutes=39))).total_seconds()) < 1
    assert stop_prompt(short, prompt_at + timedelta(seconds=1))[0] == "Planned time reached — stop?"
    shown = cards(client.get("/").get_data(as_text=True))
    assert "Planned time reached — stop?" in shown["Room B"]
    assert f'data-alert="prompt-{reached.id}"' in shown["Room B"]
    assert "board-card--prompt" in shown["Room B"]
    assert "Planned time reached" not in shown["Room A"]
    lifecycle.stop_infusion(reached, nurse)
    db.session.commit()
    assert "Planned time reached" not in cards(client.get("/").get_data(as_text=True))["Room B"]


def test_a_reason_to_run_on_takes_the_place_of_the_prompt(client, login_as, infusing_in):
    nurse = login_as("np")
    infusion = infusing_in("Room B", minutes_ago=41)
    add_reading(infusion, nurse, minutes_ago=1)
    lifecycle.record_run_on(infusion, nurse, "Physician ordered 10 more minutes")
    db.session.commit()
    card = cards(client.get("/").get_data(as_text=True))["Room B"]
    assert "Planned time reached" not in card
    assert "Runs on past the planned time: Physician ordered 10 more minutes" in card


def test_a_paused_pump_puts_off_the_prompt(login_as, infusing_in):
    nurse = login_as("np")
    infusion = infusing_in("Room A", minutes_ago=30)
    lifecycle.pause_infusion(infusion, nurse, "Patient asked for a break")
    db.session.commit()
    board = suite_board(ROOMS, clinic_today(), utcnow() + timedelta(minutes=20))
    assert board.cards[0].prompt is None
    assert board.next_change_at is None or board.next_change_at > utcnow() + timedelta(minutes=20)


def test_each_critical_value_has_its_own_alert_key(client, login_as, infusing_in):
    nurse = login_as("np")
    infusion = infusing_in("Room C")
    first = add_reading(infusion, nurse, minutes_ago=2, spo2=89)
    second = add_reading(infusion, nurse, minutes_ago=1, systolic=190)
    card = cards(client.get("/").get_data(as_text=True))["Room C"]
    keys = re.findall(r'data-alert="([^"]+)"', card)
    assert f"critical-{first.id}-0" in keys and f"critical-{second.id}-0" in keys
    assert 'role="alert"' not in card  # announced once by board.js, not on every swap


# --- "Finished today" by index ranges (issue 8) ------------------------------------------------


def test_finished_today_is_two_index_ranges_not_a_scan(app):
    start, end = clinic_day_bounds(clinic_today())
    query = sa.select(InfusionSession.id).where(_FINISHED).params(start=start, end=end)
    compiled = query.compile(db.engine)
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            # (The values do not change the plan; SQLite stores these times as text.)
            values = [compiled.params[name].isoformat(" ") for name in compiled.positiontup]
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(values)).all()
            text = " | ".join(row[-1] for row in plan)
            assert "MULTI-INDEX OR" in text, text
            assert "ix_infusion_session_discharged_at (discharged_at>? AND" in text.replace(
                ">=", ">"
            ), text
            assert "ix_infusion_session_cancelled_at" in text, text
        else:
            # An empty table: the planner would read it whole; ask which plan the indexes give.
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars().all()
            text = " | ".join(plan)
            assert "BitmapOr" in text, text
            assert "ix_infusion_session_discharged_at" in text, text
            assert "ix_infusion_session_cancelled_at" in text, text
