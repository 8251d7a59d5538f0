"""Idle sign-out in real Chromium (SPEC §8), with the idle limit at one minute: the warning
comes before it, at the limit the session page gives way to the sign-in page, and a reading
typed before it is back in the form after signing in and can be recorded.

Screenshots (idle-*.png) go under tmp_path, and to SHOTS_DIR when it is set."""

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from infusion_tracker.extensions import db
from infusion_tracker.models import Reading
from infusion_tracker.timeutil import utcnow
from tests.browser_support import shoot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

PATIENT = "Rosa Delgado"
TYPED = {"Systolic": "132", "Diastolic": "84", "Heart rate": "76", "SpO2": "97"}


@pytest.fixture
def app_config():
    # One minute: the warning comes at half of it (30 s), so the test waits about a minute once.
    return {"IDLE_TIMEOUT_MINUTES": 1}


def box(page, label):
    return page.locator("#chart-reading").get_by_label(label, exact=True)


def test_a_reading_typed_before_the_idle_sign_out_is_restored_and_recorded(
    app, live_server, browser_page, csp_errors, script_errors, make_staff, make_patient,
    make_infusion, tmp_path,
):
    page, base = browser_page, live_server
    nurse = make_staff("np", username="nina", full_name="Nina Park")
    patient = make_patient(first_name="Rosa", last_name="Delgado")
    now = utcnow()
    infusion = make_infusion(
        patient=patient,
        clinician=nurse,
        status="infusing",
        checked_in_at=now - timedelta(minutes=30),
        started_at=now - timedelta(minutes=10),
    )
    infusion_id, nurse_id = infusion.id, nurse.id
    session_url = f"{base}/infusions/{infusion_id}"
    # SQLite: leave the writing to the server's requests (no ORM object is touched below).
    db.session.commit()

    sign_in(page, base, "nina")
    page.goto(session_url)
    opened = time.monotonic()
    expect(page.get_by_text(PATIENT).first).to_be_visible()
    for label, value in TYPED.items():
        box(page, label).fill(value)

    # The warning comes before the minute, with a way to stay.
    stay = page.get_by_role("button", name="Stay signed in")
    expect(stay).to_be_visible(timeout=60_000)
    assert time.monotonic() - opened < 60
    expect(page.locator(".idle-warning")).to_contain_text(
        re.compile(r"You will be signed out in \d+ s for inactivity")
    )
    expect(page.get_by_role("alert").filter(has_text="You will be signed out in")).to_have_count(1)
    shoot(page, tmp_path, "idle-1-warning")

    # Left alone, the page gives way to the sign-in page: nothing of the patient on screen.
    expect(page).to_have_url(
        f"{base}/login?next=%2Finfusions%2F{infusion_id}", timeout=45_000
    )
    expect(page.locator(".flashes")).to_contain_text(
        "You were signed out after 1 minute without activity"
    )
    expect(page.get_by_role("status").filter(has_text="sign in again to record it")).to_be_visible()
    assert PATIENT not in page.content()
    shoot(page, tmp_path, "idle-2-signed-out")

    # Signing in lands back on the session page with what was typed.
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(session_url)
    expect(page.get_by_role("status").filter(has_text="Restored what you typed")).to_have_text(
        "Restored what you typed before you were signed out — check and record."
    )
    for label, value in TYPED.items():
        expect(box(page, label)).to_have_value(value)
    shoot(page, tmp_path, "idle-3-restored")

    with page.expect_navigation():
        page.get_by_role("button", name="Record reading").click()
    expect(page.locator(".flashes")).to_contain_text("recorded")
    db.session.commit()  # end the test's read so the server's write is seen
    reading = db.session.scalars(sa.select(Reading).where(Reading.infusion_id == infusion_id)).one()
    assert (reading.systolic, reading.diastolic, reading.heart_rate, reading.spo2) == (
        132, 84, 76, 97
    )
    assert reading.recorded_by_id == nurse_id
    db.session.commit()

    # Saved, so the draft is gone: the next fresh form is empty and says nothing.
    page.goto(session_url)
    expect(box(page, "Systolic")).to_have_value("")
    expect(page.get_by_text("Restored what you typed")).to_have_count(0)
    assert csp_errors == [] and script_errors == []
