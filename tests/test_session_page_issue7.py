"""Issue 7, what the user sees: the dose actually given (session page, print, FHIR, one number),
a finished session's header, the rate limit and its physician override, the baseline
confirmation, and the reading form's time and room-air defaults. Sessions are built through
the services, so every event and flag is a real one."""

import re
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from infusion_tracker import timeutil
from infusion_tracker.extensions import db
from infusion_tracker.infusions import lifecycle
from infusion_tracker.infusions import readings as reading_services
from infusion_tracker.models import InfusionEvent, Reading
from infusion_tracker.timeutil import utcnow
from tests.conftest import audit_rows, section

CHECKLIST = {
    "consent_on_file": True,
    "npo_confirmed": True,
    "escort_name": "Sam Escort",
    "pregnancy_status": "not_applicable",
    "med_allergy_review_done": True,
}
VITALS = {"systolic": 124, "diastolic": 76, "heart_rate": 70, "resp_rate": 14, "spo2": 98}
ALDRETE = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}


def run_session(make_infusion, nurse, started_ago, stop_after=None, discharge_ago=None):
    """Checked in, a baseline, started `started_ago` minutes ago (70 kg × 0.5 mg/kg = 35 mg
    over 40 min, 52.5 mg/h); stopped `stop_after` minutes into it; discharged if asked."""
    now = utcnow()
    start = now - timedelta(minutes=started_ago)
    infusion = make_infusion(
        clinician=nurse,
        status="checked_in",
        checked_in_at=start - timedelta(minutes=20),
        scheduled_for=start - timedelta(minutes=25),
        **CHECKLIST,
    )
    reading_services.record_reading(
        infusion,
        {"taken_at": start - timedelta(minutes=5), "phase": "baseline", **VITALS},
        nurse,
    )
    lifecycle.start_infusion(infusion, nurse, at=start)
    if stop_after is not None:
        lifecycle.stop_infusion(
            infusion, nurse, reason="Emergence reaction", at=start + timedelta(minutes=stop_after)
        )
    if discharge_ago is not None:
        lifecycle.discharge(
            infusion,
            {**ALDRETE, "escort": "Sam Escort", "at": now - timedelta(minutes=discharge_ago)},
            nurse,
        )
    db.session.commit()
    return infusion


@pytest.fixture
def nurse(login_as):
    return login_as("np")


def get(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def text(html: str) -> str:
    """The words of some HTML, one space between them."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- 1. The dose actually given -------------------------------------------------------------


def test_stopped_at_3_of_40_minutes_gives_the_same_3_40_on_page_print_and_fhir(
    client, make_infusion, nurse
):
    infusion = run_session(make_infusion, nurse, started_ago=120, stop_after=3, discharge_ago=5)
    given = 2.6  # 52.5 mg/h × 3 min = 2.625 mg, rounded by clinical.round_mg
    assert given == pytest.approx(35.0 * 3 / 40, abs=0.05)

    status = text(section(get(client, f"/infusions/{infusion.id}"), "status"))
    assert "Given 2.6 mg of 35.0 mg (stopped at 3 of 40 min)" in status

    record = text(get(client, f"/infusions/{infusion.id}/print"))
    assert "Given 2.6 mg of 35.0 mg (stopped at 3 of 40 min)" in record

    bundle = client.get(f"/patients/{infusion.patient_id}/fhir").json
    [administration] = [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "MedicationAdministration"
    ]
    assert administration["status"] == "stopped"
    assert administration["dosage"]["dose"]["value"] == given


def test_while_infusing_the_page_says_what_was_given_so_far(client, make_infusion, nurse):
    infusion = run_session(make_infusion, nurse, started_ago=14)
    html = get(client, f"/infusions/{infusion.id}")
    # 52.5 mg/h for 14 minutes (a few seconds more by the time the page is drawn).
    assert re.search(r"Given so far 12\.[23] mg of 35\.0 mg ordered", text(section(html, "status")))
    assert "Given so far" in text(section(html, "details"))


def test_fhir_gives_the_pump_amount_for_a_paused_session(make_infusion, nurse):
    from infusion_tracker.exports import fhir

    infusion = run_session(make_infusion, nurse, started_ago=30)
    lifecycle.pause_infusion(
        infusion, nurse, "Nausea", at=infusion.started_at + timedelta(minutes=8)
    )
    db.session.commit()
    resource = fhir.medication_administration(infusion, utcnow())
    assert resource["status"] == "on-hold"
    assert resource["dosage"]["dose"]["value"] == 7.0  # 8 min at 52.5 mg/h


# --- 2. A finished session's header ----------------------------------------------------------


def test_a_discharged_session_shows_its_duration_and_discharge_not_minutes_since_start(
    client, make_infusion, nurse
):
    infusion = run_session(make_infusion, nurse, started_ago=300, stop_after=40, discharge_ago=180)
    status = text(section(get(client, f"/infusions/{infusion.id}"), "status"))
    assert "Since start" not in status
    start, stop = (timeutil.format_time(t) for t in (infusion.started_at, infusion.ended_at))
    assert f"40 of 40 min infused ({start}–{stop})" in status
    assert f"Discharged {timeutil.format_time(infusion.discharged_at)}" in status
    assert "Given 35.0 mg of 35.0 mg" in status


def test_a_stopped_session_in_recovery_shows_the_infusion_stretch(client, make_infusion, nurse):
    infusion = run_session(make_infusion, nurse, started_ago=30, stop_after=10)
    status = text(section(get(client, f"/infusions/{infusion.id}"), "status"))
    assert "Since start" not in status
    assert "10 of 40 min infused" in status


# --- 3. The rate limit and its physician override --------------------------------------------


def rate_post(client, infusion, mg_per_h, override=""):
    return client.post(
        f"/infusions/{infusion.id}/rate",
        data={
            "rate-version": infusion.version,
            "rate-mg_per_h": mg_per_h,
            "rate-reason": "Poor response",
            "rate-override_reason": override,
        },
    )


def test_the_rate_form_shows_the_limit_and_refuses_an_np_above_it(client, make_infusion, nurse):
    infusion = run_session(make_infusion, nurse, started_ago=10)
    events = section(get(client, f"/infusions/{infusion.id}"), "events")
    assert "limit 52.5 mg/h for this patient" in text(events)
    assert "rate-override_reason" not in events  # the box is for physicians

    response = rate_post(client, infusion, 2000)
    assert response.status_code == 422
    events = text(section(response.get_data(as_text=True), "events"))
    assert "above the protocol's limit of 52.5 mg/h" in events
    assert "A physician may override" in events
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(InfusionEvent)
            .where(InfusionEvent.kind == "rate_change")
        )
        == 0
    )


def test_a_physician_override_is_listed_on_the_events_and_in_the_review_queue(
    client, make_infusion, make_protocol, make_staff, login_as
):
    nurse = make_staff("np")
    # No minimum observation, so that the session can be discharged right after the override.
    protocol = make_protocol(min_observation_min=0)
    infusion = run_session(
        lambda **fields: make_infusion(protocol=protocol, **fields), nurse, started_ago=20
    )
    doctor = login_as("physician", full_name="Dr Grey")
    html = get(client, f"/infusions/{infusion.id}")
    assert "rate-override_reason" in section(html, "events")

    response = rate_post(client, infusion, 60, override="Tolerating well, weight-based ceiling")
    assert response.status_code == 302
    [row] = audit_rows("session.rate_override")
    assert row.actor_id == doctor.id
    events = text(section(get(client, f"/infusions/{infusion.id}"), "events"))
    assert "above limit, allowed by Dr Grey, MD: Tolerating well, weight-based ceiling" in events

    infusion = db.session.get(type(infusion), infusion.id)
    lifecycle.stop_infusion(infusion, doctor, "Done")
    lifecycle.discharge(infusion, {**ALDRETE, "escort": "Sam Escort"}, doctor)
    queue = get(client, "/review/")
    row = next(r for r in queue.split("<tr") if infusion.patient.last_name in r)
    assert "Override" in text(row)


# --- 4. A baseline after the start must be confirmed -----------------------------------------


def reading_form_data(html: str, **changes) -> dict:
    """The reading form as drawn (its time and hidden default), filled with normal vitals."""
    form = section(html, "chart-reading")
    default = re.search(r'name="reading-taken_at_default"[^>]*value="([^"]*)"', form)
    assert default, "the form carries the time it was drawn with"
    taken = re.search(r'name="reading-taken_at"[^>]*value="([^"]*)"', form) or re.search(
        r'value="([^"]*)"[^>]*name="reading-taken_at"', form
    )
    data = {
        "reading-taken_at": taken.group(1),
        "reading-taken_at_default": default.group(1),
        "reading-phase": "infusion",
        **{f"reading-{name}": value for name, value in VITALS.items()},
        "reading-o2_room_air": "y",
    }
    data.update(changes)
    return data


def test_a_baseline_after_the_start_needs_the_confirm_box(client, make_infusion, nurse):
    infusion = run_session(make_infusion, nurse, started_ago=10)
    html = get(client, f"/infusions/{infusion.id}")
    form = section(html, "chart-reading")
    assert 'name="reading-confirm_baseline"' in form
    assert "A baseline after the start moves every change-from-baseline." in text(form)

    data = reading_form_data(html, **{"reading-phase": "baseline"})
    response = client.post(f"/infusions/{infusion.id}/readings", data=data)
    assert response.status_code == 422
    form = section(response.get_data(as_text=True), "chart-reading")
    assert "confirm that this is a new baseline" in text(form)
    # The refusal sits beside the box that answers it.
    box = form[form.index('name="reading-confirm_baseline"') :]
    assert "confirm that this is a new baseline" in text(box[: box.index("</div>", 0) + 400])

    data["reading-confirm_baseline"] = "y"
    assert client.post(f"/infusions/{infusion.id}/readings", data=data).status_code == 302
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Reading).where(Reading.phase == "baseline")
        )
        == 2
    )


def test_before_the_start_no_confirm_box(client, make_infusion, nurse):
    infusion = make_infusion(clinician=nurse, status="checked_in", checked_in_at=utcnow())
    form = section(get(client, f"/infusions/{infusion.id}"), "chart-reading")
    assert "confirm_baseline" not in form


# --- 5. Room air and the time taken ----------------------------------------------------------


def test_the_blank_form_does_not_tick_room_air(client, make_infusion, nurse):
    infusion = run_session(make_infusion, nurse, started_ago=10)
    form = section(get(client, f"/infusions/{infusion.id}"), "chart-reading")
    box = re.search(r'<input[^>]*name="reading-o2_room_air"[^>]*>', form).group(0)
    assert "checked" not in box


def wall(at) -> str:
    return timeutil.to_clinic(at).strftime("%Y-%m-%d %H:%M")


def test_a_time_left_as_drawn_records_the_save_time_and_a_typed_time_is_kept(
    client, make_infusion, nurse
):
    infusion = run_session(make_infusion, nurse, started_ago=30)
    html = get(client, f"/infusions/{infusion.id}")
    # The page was drawn 10 minutes ago: its time and its default are both 10 minutes old.
    stale = wall(utcnow() - timedelta(minutes=10))
    data = reading_form_data(html, **{"reading-taken_at": stale, "reading-taken_at_default": stale})
    assert client.post(f"/infusions/{infusion.id}/readings", data=data).status_code == 302
    stored = db.session.scalar(sa.select(Reading).order_by(Reading.id.desc()).limit(1))
    assert abs(stored.taken_at - utcnow()) < timedelta(minutes=1)

    typed = wall(utcnow() - timedelta(minutes=10))
    data = reading_form_data(
        get(client, f"/infusions/{infusion.id}"), **{"reading-taken_at": typed}
    )
    assert client.post(f"/infusions/{infusion.id}/readings", data=data).status_code == 302
    stored = db.session.scalar(sa.select(Reading).order_by(Reading.id.desc()).limit(1))
    assert wall(stored.taken_at) == typed


# --- 7. In Chromium at the bedside tablet's size ---------------------------------------------


@pytest.mark.browser
def test_the_session_header_and_the_print_in_chromium(
    make_infusion, make_protocol, make_staff, live_server, browser_page, tmp_path
):
    from tests.browser_support import shoot, sign_in

    nurse = make_staff("np")
    protocol = make_protocol()
    running = run_session(
        lambda **fields: make_infusion(protocol=protocol, **fields), nurse, started_ago=14
    )
    finished = run_session(
        lambda **fields: make_infusion(protocol=protocol, room="Room 2", **fields),
        nurse,
        started_ago=300,
        stop_after=3,
        discharge_ago=180,
    )
    username, running, finished = nurse.username, running.id, finished.id
    db.session.commit()  # SQLite: leave the writing to the server's requests
    page, base = browser_page, live_server
    sign_in(page, base, username)
    for name, infusion_id in (("infusing", running), ("discharged", finished)):
        page.goto(f"{base}/infusions/{infusion_id}")
        strip = page.locator("#status .session-facts")
        assert "Given" in strip.inner_text()
        box = strip.bounding_box()
        assert box["x"] + box["width"] <= 1024  # the strip fits the tablet's width
        shoot(page, tmp_path, f"issue7-session-{name}")
    page.goto(f"{base}/infusions/{running}")
    confirm = page.locator(".charting__confirm-baseline")
    assert not confirm.is_visible()  # only a baseline asks for it
    page.get_by_label("Baseline", exact=True).check()
    assert confirm.is_visible()
    page.goto(f"{base}/infusions/{running}#events")
    shoot(page, tmp_path, "issue7-session-events")
    page.goto(f"{base}/infusions/{finished}/print")
    assert "stopped at 3 of 40 min" in page.locator("#h-dose + dl").inner_text()
    shoot(page, tmp_path, "issue7-print", full_page=True)
