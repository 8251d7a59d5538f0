"""A session's page is drawn once for each state of what it shows (issue 8, infusions/drawn.py):
shown again it is the same page for one small query, every change the page shows, made the way
the app makes it, draws it again, and every view has its own CSRF token, submission keys and
opening time. A running session's page moves with the clock: each view fills in what the clock
moves (infusions/live.py), and the clock's turns (a reading due, the planned minutes reached,
the observation done, a baseline too old to start on) draw it again."""

import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker import timeutil
from infusion_tracker.admin import services as admin
from infusion_tracker.devices import services as devices
from infusion_tracker.errors import RuleError
from infusion_tracker.extensions import db
from infusion_tracker.infusions import adverse_events, lifecycle
from infusion_tracker.infusions import readings as reading_services
from infusion_tracker.ledger.services import explain_session
from infusion_tracker.models import AdverseEvent
from infusion_tracker.patients import assessments
from infusion_tracker.patients import services as patients
from infusion_tracker.review import services as review
from infusion_tracker.vocab import AVPU
from tests.conftest import (
    ALDRETE,
    PASSWORD,
    add_reading,
    audit_rows,
    csrf_token_from,
    login,
    run_session,
)
from tests.test_devices import oru

# What each view draws afresh: the CSRF token, the forms' submission keys, the time the sign
# form was opened, and the time the blank reading and adverse-event forms offer.
PER_VIEW = re.compile(
    r'(csrf_token" type="hidden" value="|csrf_token" value="|data-csrf-token="'
    r'|submission_key" type="hidden" value="|opened_at" type="hidden" value=")[^"]*"'
)
FORM_TIMES = re.compile(r'((?:taken_at(?:_default)?|onset_at)"[^>]*? value=)"[^"]*"')


def without_per_view(html: str) -> str:
    masked = FORM_TIMES.sub(r"\1", PER_VIEW.sub(r"\1", html))
    # A token left unmasked differs between two views a second apart (its time is signed in).
    assert csrf_token_from(html) not in masked, "a CSRF token the mask missed"
    return masked


def page_at(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def values(html: str, name: str) -> list[str]:
    return re.findall(rf'name="[^"]*{name}" type="hidden" value="([^"]*)"', html) + re.findall(
        rf'type="hidden" name="[^"]*{name}" value="([^"]*)"', html
    )


@pytest.fixture
def finished(make_patient, make_infusion, make_protocol, make_staff):
    """A discharged session awaiting its signature, with a reading in recovery charted by
    Nia Nurse (`infusion.recovery_reading`)."""
    patient = make_patient(first_name="Dana", last_name="Drawn")
    infusion = run_session(make_infusion(patient=patient, protocol=make_protocol()),
                           "recovery", started_minutes_ago=120, infused_minutes=40)
    nurse = make_staff("np", full_name="Nia Nurse", credentials="APRN")
    reading = add_reading(infusion, nurse, phase="recovery", minutes_ago=30)
    at = infusion.ended_at + timedelta(minutes=infusion.protocol.min_observation_min)
    lifecycle.discharge(infusion, {**ALDRETE, "escort": "Sam Escort", "at": at}, nurse)
    db.session.commit()
    infusion.recovery_reading = reading
    return infusion


def two_browsers(app, staff) -> list:
    """Two browsers signed in as `staff` through the login form (CSRF checked)."""
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        token = csrf_token_from(browser.get("/login").get_data(as_text=True))
        data = {"username": staff.username, "password": PASSWORD, "csrf_token": token}
        assert browser.post("/login", data=data).status_code == 302
    return browsers


def url(infusion) -> str:
    return f"/infusions/{infusion.id}"


def test_shown_again_it_is_the_same_page_for_one_small_query(
    client, login_as, finished, count_queries
):
    login_as("np")
    address = url(finished)
    first = page_at(client, address)
    with count_queries() as again:
        second = page_at(client, address)
    assert without_per_view(second) == without_per_view(first)
    # The signed-in user, the fingerprint (which also finds the session), the audit row (last
    # hash, insert).
    assert again.count == 4, "\n".join(s[:300] for s in again.statements)
    assert len(audit_rows("session.viewed")) == 2


def test_a_first_view_asks_for_adverse_events_and_addenda_only_when_there_are_some(
    client, login_as, finished, count_queries
):
    """The fingerprint lists the session's adverse events, addenda and monitor values waiting,
    so a first view of a session with none (most) does not ask for them (bench/RESULTS.md,
    Stops 32 and 33; the monitor values: the test of values waiting at discharge, below)."""
    login_as("np")

    def first_view() -> tuple[str, list[str]]:
        with count_queries() as counter:
            html = page_at(client, url(finished))
        return html, counter.statements

    def loads(statements: list[str]) -> set[str]:
        return {table for table in ("adverse_event", "addendum", "proposed_reading")
                for statement in statements if statement.startswith(f"SELECT {table}.id")}

    _, statements = first_view()
    assert loads(statements) == set()
    assert len(statements) == 11, "\n".join(s[:200] for s in statements)

    physician = finished.physician
    adverse_events.record_adverse_event(
        finished,
        {"event_type": "nausea", "severity": "mild", "infusion_action": "none",
         "onset_at": timeutil.utcnow() - timedelta(minutes=2), "intervention": "Ginger ale"},
        finished.recovery_reading.recorded_by,
    )
    explain_session(finished, physician, "Test session without a drawn vial.")
    review.sign_infusion(finished, physician, "Reviewed.", finished.version,
                         password_required=False)
    review.add_addendum(finished, physician, "Called the next day: well.")
    db.session.commit()
    html, statements = first_view()
    assert "Ginger ale" in html and "Called the next day: well." in html
    assert loads(statements) == {"adverse_event", "addendum"}
    assert len(statements) == 13


@pytest.mark.parametrize(
    "change, shown",
    [
        ("void", "Entered on the wrong patient"),
        ("adverse event", "Nausea after discharge"),
        ("score", "GAD-7"),
        ("signature", "Signed — locked."),
        ("addendum", "Called the next day: well."),
        ("ledger reason", "Does not balance"),  # gone: the physician said why
        ("clinician", "Renamed Clinician, RN"),
        ("recorder", "Renamed Recorder, APRN"),
        ("patient", "Allergies:</strong> Latex"),
    ],
)
def test_every_change_the_page_shows_draws_it_again(
    client, login_as, finished, make_staff, change, shown
):
    physician = finished.physician
    assert login(client, physician.username).status_code == 302
    reading = finished.recovery_reading
    nurse = reading.recorded_by
    if change == "addendum":
        explain_session(finished, physician, "Test session without a drawn vial.")
        review.sign_infusion(finished, physician, "Reviewed.", finished.version,
                             password_required=False)
    db.session.commit()
    before = page_at(client, url(finished))
    assert change == "ledger reason" or shown not in before
    if change == "void":
        reading_services.void_reading(reading, nurse, "Entered on the wrong patient")
    elif change == "adverse event":
        adverse_events.record_adverse_event(
            finished,
            {"event_type": "nausea", "severity": "mild", "infusion_action": "none",
             "onset_at": timeutil.utcnow() - timedelta(minutes=2),
             "intervention": "Nausea after discharge"},
            nurse,
        )
    elif change == "score":
        assessments.record_assessment(
            finished.patient, instrument="gad7", score=9, actor=nurse, infusion=finished
        )
    elif change == "signature":
        explain_session(finished, physician, "Test session without a drawn vial.")
        review.sign_infusion(finished, physician, "Reviewed.", finished.version,
                             password_required=False)
    elif change == "addendum":
        review.add_addendum(finished, physician, "Called the next day: well.")
    elif change == "ledger reason":
        explain_session(finished, physician, "Vial broken in the safe.")
    elif change == "clinician":
        admin.update_staff(finished.clinician, "Renamed Clinician", "RN", make_staff("admin"))
    elif change == "recorder":
        admin.update_staff(nurse, "Renamed Recorder", "APRN", make_staff("admin"))
    else:
        patient = finished.patient
        data = {name: getattr(patient, name) for name in patients.PATIENT_FIELDS}
        patients.update_patient(patient, {**data, "allergies": "Latex"}, nurse, patient.version)
    db.session.commit()
    if change == "ledger reason":
        assert shown in before and shown not in page_at(client, url(finished))
    else:
        assert shown in page_at(client, url(finished))


def test_monitor_values_waiting_at_discharge_stay_as_they_are(
    client, login_as, make_infusion, count_queries
):
    """Values the monitor sent in recovery still wait on the page after discharge, and no one
    can accept or dismiss them any more. The fingerprint lists them, so the first view asks for
    them (and a view of a session with none does not: the test above)."""
    nurse = login_as("np")
    device, _token = devices.register_device("Room 4 monitor", "Room 4", None, "00A0370000000001")
    infusion = run_session(make_infusion(room="Room 4"), "recovery", started_minutes_ago=120,
                           infused_minutes=40)
    devices.receive(device, oru(), via="test")
    at = infusion.ended_at + timedelta(minutes=infusion.protocol.min_observation_min)
    lifecycle.discharge(infusion, {**ALDRETE, "escort": "Sam Escort", "at": at}, nurse)
    db.session.commit()
    with count_queries() as first_view:
        assert "From the monitor" in page_at(client, url(infusion))
    assert any(statement.startswith("SELECT proposed_reading.id")
               for statement in first_view.statements)
    (proposed,) = devices.pending_for(infusion)
    for decide in (lambda: devices.dismiss(proposed, nurse, "Artefact"),
                   lambda: devices.accept(proposed, nurse)):
        with pytest.raises(RuleError, match="discharged session"):
            decide()
        db.session.rollback()
    assert "From the monitor" in page_at(client, url(infusion))


def test_a_running_session_s_kept_page_shows_monitor_values_as_they_come_and_go(
    client, login_as, make_infusion
):
    """Values arriving change no session version: the fingerprint lists those waiting, so the
    kept page is drawn again when one arrives, and when it is accepted or dismissed."""
    nurse = login_as("np")
    device, _token = devices.register_device("Room 4 monitor", "Room 4", None, "00A0370000000001")
    infusion = run_session(make_infusion(room="Room 4"), "infusing", started_minutes_ago=10)
    db.session.commit()
    address = url(infusion)
    assert "From the monitor" not in page_at(client, address)
    for message, decide in (
        ("MSG-1", lambda proposed: devices.dismiss(proposed, nurse, "Artefact")),
        ("MSG-2", lambda proposed: devices.accept(proposed, nurse)),
    ):
        devices.receive(device, oru(control_id=message), via="test")
        db.session.commit()
        assert "From the monitor" in page_at(client, address)
        (proposed,) = devices.pending_for(infusion)
        decide(proposed)
        db.session.commit()
        assert "From the monitor" not in page_at(client, address)


def test_each_view_has_its_own_keys_and_opening_time(client, login_as, finished):
    login_as("physician")
    first = page_at(client, url(finished))
    second = page_at(client, url(finished))
    for name in ("submission_key", "opened_at"):
        assert values(first, name) and values(second, name)
        assert not set(values(first, name)) & set(values(second, name)), name
    keys = values(second, "submission_key")
    assert len(keys) == 1  # the adverse event form's (no reading is charted after discharge)
    assert datetime.fromisoformat(values(second, "opened_at")[0]) > datetime.fromisoformat(
        values(first, "opened_at")[0]
    )


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_two_tabs_of_a_kept_page_each_record_their_adverse_event(app, finished):
    """Two browsers of one nurse, the second shown the page drawn for the first: each posts an
    adverse event with its own token and key, and both are recorded (one key shared by both
    would take the second for a retry of the first and drop it)."""
    tabs = two_browsers(app, finished.clinician)
    shown = [page_at(tab, url(finished)) for tab in tabs]
    action = f'action="/infusions/{finished.id}/adverse-events"'
    for tab, html in zip(tabs, shown, strict=True):
        form = html[html.index(action) :]
        form = form[: form.index("</form>")]
        data = {
            "ae-csrf_token": values(form, "csrf_token")[0],
            "ae-submission_key": values(form, "submission_key")[0],
            "ae-onset_at": re.search(r'onset_at"[^>]*? value="([^"]*)"', form).group(1),
            "ae-event_type": "nausea",
            "ae-severity": "mild",
            "ae-infusion_action": "none",
        }
        response = tab.post(f"/infusions/{finished.id}/adverse-events", data=data)
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert db.session.scalar(sa.select(sa.func.count(AdverseEvent.id))) == 2


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_the_readings_table_in_a_kept_page_carries_each_browser_s_token(app, finished):
    """The readings table is kept on its own and drawn into the kept page: the second browser
    of the physician voids a reading with the token the page gave it."""
    tabs = two_browsers(app, finished.physician)
    page_at(tabs[0], url(finished))
    html = page_at(tabs[1], url(finished))
    reading = finished.recovery_reading
    prefix = f"void-reading-{reading.id}"
    token = re.search(rf'name="{prefix}-csrf_token" type="hidden" value="([^"]*)"', html).group(1)
    data = {f"{prefix}-csrf_token": token, f"{prefix}-reason": "Charted on the wrong patient"}
    response = tabs[1].post(f"/readings/{reading.id}/void", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.refresh(reading)
    assert reading.voided_at is not None


def clock_at(monkeypatch, instant: datetime) -> None:
    """Hold the app's clock (timeutil.utcnow, which every page asks) at `instant`."""

    class Held(datetime):
        @classmethod
        def now(cls, tz=None):
            return instant.astimezone(tz)

    monkeypatch.setattr(timeutil, "datetime", Held)


def offered_onset(html: str) -> datetime:
    """The time the page's adverse event form offers."""
    return datetime.fromisoformat(
        re.search(r'name="ae-onset_at"[^>]*? value="([^"]*)"', html).group(1)
    )


def ten_minutes_before_the_day_ends_at_latest() -> datetime:
    """Now, or ten minutes before the clinic's day ends: views moved 7 minutes on stay in
    the day (the kept page's key holds it)."""
    end_of_day = timeutil.clinic_day_bounds(timeutil.clinic_today())[1]
    return min(timeutil.utcnow(), end_of_day - timedelta(minutes=10))


@pytest.mark.parametrize("status", ["discharged", "cancelled"])
def test_no_clock_changes_a_kept_page_but_its_forms_time(
    app, client, login_as, make_infusion, monkeypatch, status
):
    """What makes a page safe to keep: drawn hours later it is the same page, but the time
    its blank forms offer (each view's own)."""
    login_as("physician")
    infusion = make_infusion()
    if status == "cancelled":
        lifecycle.cancel_infusion(infusion, infusion.clinician, "Patient unwell")
    else:
        run_session(infusion, "discharged", started_minutes_ago=120, infused_minutes=40)
    db.session.commit()
    now = page_at(client, url(infusion))
    clock_at(monkeypatch, timeutil.utcnow() + timedelta(hours=3, minutes=7))
    then = page_at(client, url(infusion))
    assert without_per_view(then) == without_per_view(now)
    if status == "discharged":  # a cancelled session takes no adverse event
        # The later view's adverse event form offers the later time.
        assert offered_onset(then) > offered_onset(now)


def test_a_later_minute_of_the_day_finds_the_kept_page_with_its_own_time(
    client, login_as, finished, monkeypatch, count_queries
):
    """The blank adverse-event form's time is each view's own, so the page is kept all day,
    not for the minute (a busy morning would draw every finished session again each minute)."""
    login_as("np")
    first_at = ten_minutes_before_the_day_ends_at_latest()
    address = url(finished)
    clock_at(monkeypatch, first_at)
    first = page_at(client, address)
    clock_at(monkeypatch, first_at + timedelta(minutes=7))
    with count_queries() as later:
        second = page_at(client, address)
    assert later.count == 4, "\n".join(s[:300] for s in later.statements)  # as shown again
    assert offered_onset(second) - offered_onset(first) == timedelta(minutes=7)
    assert without_per_view(second) == without_per_view(first)


def test_a_running_session_s_kept_page_moves_with_the_clock(
    client, login_as, make_infusion, monkeypatch, count_queries
):
    """Within one minute, what the pump has given so far grows: each view of the kept page
    fills it in for its own time, for a few small statements."""
    login_as("np")
    infusion = run_session(make_infusion(), "infusing", started_minutes_ago=10)
    db.session.commit()
    minute = timeutil.utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1)
    given = re.compile(r"Given so far</dt><dd><strong>([^<]*)</strong>")
    address = url(infusion)
    clock_at(monkeypatch, minute)
    first = page_at(client, address)
    shown = []
    for seconds in (2, 50):
        clock_at(monkeypatch, minute + timedelta(seconds=seconds))
        with count_queries() as again:
            page = page_at(client, address)
        shown.append(given.search(page).group(1))
        # As a finished session's (the signed-in user, the fingerprint, the audit row's last
        # hash and insert), and the ledger's newest entry, for the draw form's vials.
        assert again.count == 5, "\n".join(s[:300] for s in again.statements)
    assert shown[0] != shown[1], shown
    assert without_per_view(page) != without_per_view(first)


def drawn_afresh(app, client, address: str) -> str:
    """The page as a view draws it with nothing kept."""
    app.extensions["drawn_sessions"].clear()
    return page_at(client, address)


def pause_now(infusion, minutes_ago: int):
    lifecycle.pause_infusion(infusion, infusion.clinician, "Patient asked",
                             at=timeutil.utcnow() - timedelta(minutes=minutes_ago))
    return infusion


def state(name: str, infusion):
    """A session in `name`, as the bedside finds it."""
    if name == "planned":
        return infusion
    if name == "checked_in":  # its baseline 25 minutes old: too old to start on in 5
        run_session(infusion, "checked_in", checked_in_minutes_ago=26)
        add_reading(infusion, infusion.clinician, minutes_ago=25, phase="baseline")
        return infusion
    if name == "infusing":  # the next reading due in 4 minutes
        run_session(infusion, "infusing", started_minutes_ago=10)
        add_reading(infusion, infusion.clinician, minutes_ago=1)
        return infusion
    if name == "paused":
        return pause_now(run_session(infusion, "infusing", started_minutes_ago=20), 3)
    if name == "running_on":  # past its planned 40 minutes, with a reason recorded
        run_session(infusion, "infusing", started_minutes_ago=45)
        lifecycle.record_run_on(infusion, infusion.clinician, "Patient comfortable")
        return infusion
    if name == "recovery":
        return run_session(infusion, "recovery", started_minutes_ago=45, infused_minutes=40)
    run_session(infusion, "infusing", started_minutes_ago=15)
    lifecycle.stop_infusion(infusion, infusion.clinician, "Vomiting", early=True)
    assert infusion.status == "stopped_early"
    return infusion


# From a few seconds into a minute: the pump's amount moves within the minute (20, 50 s), the
# minutes with it (3 min), a reading falls due (at 4 min exactly, overdue a second later: every
# 5 minutes while infusing), a baseline grows too old to start on (6 min, then each minute
# older), the planned 40 minutes are reached (31 min, for a pump 10 minutes in), the 30 minutes'
# observation ends (31 and 45 min, for a stop 5 minutes ago), a recovery reading falls due.
LATER = (timedelta(seconds=20), timedelta(seconds=50), timedelta(minutes=3),
         timedelta(minutes=4), timedelta(minutes=4, seconds=1),
         timedelta(minutes=6), timedelta(minutes=31), timedelta(minutes=32),
         timedelta(minutes=45))


@pytest.mark.parametrize(
    "name",
    ["planned", "checked_in", "infusing", "paused", "running_on", "recovery", "stopped_early"],
)
def test_a_kept_page_is_at_any_time_the_page_drawn_afresh_then(
    app, client, login_as, make_infusion, monkeypatch, name
):
    """What makes a running session's page safe to keep: at each later time, the page a view
    is given (kept, its clock's words filled in, or drawn again where the clock changed its
    shape) is the page drawn afresh at that time."""
    login_as("np")
    # The session is made at this time, and every view is within its day (a new day is a new
    # page: infusions/drawn.py keys it by the day).
    end_of_day = timeutil.clinic_day_bounds(timeutil.clinic_today())[1]
    start = min(timeutil.utcnow(), end_of_day - max(LATER) - timedelta(minutes=2))
    start = start.replace(second=5, microsecond=0)
    clock_at(monkeypatch, start)
    infusion = state(name, make_infusion())
    db.session.commit()
    address = url(infusion)
    pages = [page_at(client, address)]
    for later in LATER:
        clock_at(monkeypatch, start + later)
        given = page_at(client, address)
        assert without_per_view(given) == without_per_view(drawn_afresh(app, client, address)), (
            f"{name} at +{later}"
        )
        pages.append(given)
    # The clock moved what the page says, but for a planned session.
    assert (name == "planned") == (len({without_per_view(page) for page in pages}) == 1)


def test_the_minutes_since_the_start_are_shown_beside_the_pump_s_once_it_was_paused(
    client, login_as, make_infusion, make_protocol, monkeypatch
):
    """Unpaused, the two counts are the same minutes (rounded apart, they read 11 of 40 min
    infused and 10 since the start, a second count that says nothing)."""
    login_as("np")
    start = timeutil.utcnow().replace(second=0, microsecond=0)
    clock_at(monkeypatch, start)
    protocol = make_protocol()
    running = state("infusing", make_infusion(room="Room 2", protocol=protocol))
    paused = state("paused", make_infusion(room="Room 3", protocol=protocol))
    db.session.commit()
    clock_at(monkeypatch, start + timedelta(seconds=40))
    infused = re.compile(r"<dt>Infused</dt><dd>(.*?)</dd>")
    assert infused.findall(page_at(client, url(running))) == ["<strong>11 of 40 min</strong>"]
    assert infused.findall(page_at(client, url(paused))) == [
        '<strong>17 of 40 min</strong> <span class="muted">(20 min since start)</span>'
    ]


def test_a_running_session_s_kept_page_offers_the_vials_in_the_safe_now(
    client, login_as, make_infusion, make_staff
):
    """The draw form lists the safe's vials, which another session's draw or a delivery changes
    without changing this session: a new ledger entry draws the page again."""
    from infusion_tracker.ledger import services as ledger

    nurse = make_staff("np")
    login(client, nurse.username)
    infusion = run_session(make_infusion(clinician=nurse), "infusing", started_minutes_ago=10)
    db.session.commit()
    assert "No vial in the safe has anything left" in page_at(client, url(infusion))
    ledger.receive_vials(actor=nurse, quantity=1, drug="ketamine", strength_mg_per_ml=50,
                         volume_ml=10, lot="LOT-NEW", expiry=timeutil.clinic_today()
                         + timedelta(days=90), supplier="S", invoice_number="I-1")
    db.session.commit()
    assert "lot LOT-NEW · 500.0 mg left" in page_at(client, url(infusion))


def test_every_page_s_blank_adverse_event_form_offers_its_own_view_s_time(
    client, login_as, make_infusion, make_protocol, make_staff, monkeypatch
):
    """The blank form's fields are drawn once and shown on every session's page (running ones,
    drawn on each view, and finished ones): the time they offer is still each view's own."""
    login_as("np")
    shared = {"protocol": make_protocol(), "clinician": make_staff("np")}
    running = run_session(make_infusion(room="Room 2", **shared), "infusing",
                          started_minutes_ago=10)
    done = run_session(make_infusion(room="Room 3", **shared),
                       "discharged", started_minutes_ago=120, infused_minutes=40)
    db.session.commit()
    first_at = ten_minutes_before_the_day_ends_at_latest()
    offered = []
    for minutes in (0, 7):
        clock_at(monkeypatch, first_at + timedelta(minutes=minutes))
        offered += [offered_onset(page_at(client, url(i))) for i in (running, done)]
    first_minute = offered[0]
    assert offered == [first_minute] * 2 + [first_minute + timedelta(minutes=7)] * 2


def offered_reading_time(html: str) -> tuple[str, str]:
    """The time the page's reading form offers, and the one it was drawn with (a form left as
    it is records the time it is saved)."""
    return tuple(
        re.search(rf'name="reading-{name}"[^>]*? value="([^"]*)"', html).group(1)
        for name in ("taken_at", "taken_at_default")
    )


def test_a_running_session_s_reading_form_offers_each_view_s_minute(
    client, login_as, make_infusion, monkeypatch
):
    """The blank reading form's boxes are kept (page.blank_reading_fields): the time they offer
    and the time a form left as it is is compared with are still each view's own."""
    login_as("np")
    infusion = run_session(make_infusion(), "infusing", started_minutes_ago=10)
    db.session.commit()
    first_at = ten_minutes_before_the_day_ends_at_latest()
    offered = []
    for minutes in (0, 7):
        clock_at(monkeypatch, first_at + timedelta(minutes=minutes))
        box, drawn_with = offered_reading_time(page_at(client, url(infusion)))
        assert box == drawn_with
        offered.append(datetime.fromisoformat(box))
    assert offered[1] - offered[0] == timedelta(minutes=7)


def test_the_reading_form_offers_what_the_last_reading_was(
    client, login_as, make_infusion, make_staff
):
    """Each box's "last …" hint and the "unchanged since" box follow the last reading: a new
    reading, or the last one voided, draws them again."""
    login_as("np")
    infusion = run_session(make_infusion(), "infusing", started_minutes_ago=10)
    nurse = make_staff("np")
    first = add_reading(infusion, nurse, minutes_ago=4, systolic=151, spo2=97, avpu="A")
    before = page_at(client, url(infusion))
    second = add_reading(infusion, nurse, minutes_ago=1, systolic=139, spo2=95, avpu="V")
    after = page_at(client, url(infusion))
    reading_services.void_reading(second, nurse, "Charted on the wrong patient")
    db.session.commit()
    voided = page_at(client, url(infusion))
    for html, reading, systolic, avpu in (
        (before, first, 151, "A"), (after, second, 139, "V"), (voided, first, 151, "A")
    ):
        assert re.search(rf'id="reading-systolic-hint">last {systolic}<', html)
        assert f'AVPU <strong>{AVPU[avpu]}</strong>' in html  # "unchanged" would chart it
        assert values(html, "carry_from") == [str(reading.id)]
        assert f"Unchanged since {timeutil.format_time(reading.taken_at)}" in html


def test_each_viewer_sees_what_they_may_do(app, finished, make_staff):
    """The recorder may void her reading until the signature, another nurse may not; the
    supervising physician is offered the signature."""
    void_url = f"/readings/{finished.recovery_reading.id}/void"
    viewers = {
        "recorder": finished.recovery_reading.recorded_by,
        "another nurse": make_staff("np"),
        "physician": finished.physician,
    }
    shown = {}
    for name, viewer in viewers.items():
        browser = app.test_client()
        assert login(browser, viewer.username).status_code == 302
        shown[name] = page_at(browser, url(finished))
    assert void_url in shown["recorder"]
    assert void_url not in shown["another nurse"]
    assert "Awaiting your signature" in shown["physician"]
    assert "Awaiting your signature" not in shown["another nurse"]


def test_signing_asks_for_the_password_again_once_the_window_has_passed(
    app, client, finished
):
    assert login(client, finished.physician.username).status_code == 302
    assert 'name="password"' not in page_at(client, url(finished))
    with client.session_transaction() as browser_session:
        minutes = app.config["REAUTH_MINUTES"]
        browser_session["auth_at"] = browser_session["auth_at"] - minutes * 60 - 1
    assert 'name="password"' in page_at(client, url(finished))


def test_the_address_s_reading_is_its_own_page(client, login_as, finished):
    """?saved= highlights the reading just charted; ?ae_reading= opens the adverse event form
    on a critical reading: each is drawn for what it names."""
    login_as("np")
    reading = finished.recovery_reading
    plain = page_at(client, url(finished))
    answering = page_at(client, f"{url(finished)}?ae_reading={reading.id}")
    assert f'name="ae-reading_id" type="hidden" value="{reading.id}"' in answering
    assert f'name="ae-reading_id" type="hidden" value="{reading.id}"' not in plain


def test_no_such_session_is_404_and_leaves_no_audit_row(client, login_as):
    login_as("np")
    assert client.get("/infusions/99999").status_code == 404
    assert audit_rows("session.viewed") == []


def test_a_refused_form_is_shown_as_typed_and_never_kept(client, login_as, finished):
    login_as("np")
    page_at(client, url(finished))
    form = {"ae-event_type": "nausea", "ae-severity": "mild", "ae-infusion_action": "none",
            "ae-onset_at": "not a time", "ae-intervention": "Ginger ale"}
    refused = client.post(f"/infusions/{finished.id}/adverse-events", data=form)
    assert refused.status_code == 422
    assert "Ginger ale" in refused.get_data(as_text=True)
    assert "Ginger ale" not in page_at(client, url(finished))
