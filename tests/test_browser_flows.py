"""End-to-end flows in real Chromium against the app on a real HTTP server: what a new clinic
does on day one (setup, staff, roles), a nurse practitioner charting a whole session at the
bedside tablet, and the physician's review, signature, addendum and printed record.

Each flow keeps its screenshots (flow-*.png) under tmp_path, and copies them to SHOTS_DIR when
it is set, for the team to look at."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from infusion_tracker import clinical
from infusion_tracker.extensions import db
from infusion_tracker.infusions import adverse_events, lifecycle, readings
from infusion_tracker.ledger import services as ledger
from infusion_tracker.models import (
    AdverseEvent,
    InfusionEvent,
    InfusionSession,
    Patient,
    Reading,
    Staff,
)
from infusion_tracker.patients import assessments
from infusion_tracker.timeutil import utcnow
from tests.browser_support import shoot, sign_in, sign_out
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "harbour violet seventeen"
NP_PASSWORD = "copper meadow lantern 9"


def flash(page):
    return page.locator(".flashes")


# --- 1. Foundation: first run, staff, roles, sign out -------------------------------------------


def test_first_run_admin_creates_a_nurse_practitioner_who_cannot_manage_staff(
    app, live_server, browser_page, csp_errors, script_errors, tmp_path
):
    page, base = browser_page, live_server

    # A brand-new clinic: any address leads to the one-time setup page.
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/setup")
    expect(page.get_by_role("heading", name="Create the first administrator")).to_be_visible()
    shoot(page, tmp_path, "flow-foundation-1-setup")
    page.get_by_label("Username").fill("office")
    page.get_by_label("Full name").fill("Olive Office")
    page.get_by_label("Credentials").fill("MBA")
    page.get_by_label("New password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the new password").fill(ADMIN_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Create administrator").click()
    expect(page).to_have_url(f"{base}/login")
    expect(flash(page)).to_contain_text("Administrator account created")
    assert page.goto(f"{base}/setup").status == 404  # gone once an account exists

    # The administrator's home is the staff list.
    sign_in(page, base, "office", ADMIN_PASSWORD)
    expect(page).to_have_url(f"{base}/admin/staff/")
    expect(page.get_by_role("heading", name="Staff", exact=True)).to_be_visible()
    page.get_by_role("link", name="Add a staff member").click()
    expect(page.get_by_role("heading", name="Add a staff member")).to_be_visible()
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Full name").fill("Nina Park")
    page.get_by_label("Credentials").fill("APRN")
    page.get_by_label("Nurse practitioner").check()
    shoot(page, tmp_path, "flow-foundation-2-add-staff", full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    # Left blank, the temporary password is generated and shown this once.
    expect(page.get_by_role("heading", name="Account created")).to_be_visible()
    temporary = page.locator(".temporary-password code").inner_text().strip()
    assert len(temporary) >= 12
    shoot(page, tmp_path, "flow-foundation-3-temporary-password")
    page.get_by_role("link", name="Back to staff").click()
    row = page.get_by_role("row").filter(has_text="Nina Park")
    expect(row).to_contain_text("Nurse practitioner")
    expect(row).to_contain_text("Must choose a new password")
    shoot(page, tmp_path, "flow-foundation-4-staff-list")
    sign_out(page)
    expect(flash(page)).to_contain_text("You are signed out.")

    # The NP's first sign-in asks for a password of their own.
    sign_in(page, base, "nina", temporary)
    expect(page).to_have_url(f"{base}/account/password")
    expect(page.locator(".banner--info")).to_contain_text("Your password was reset")
    shoot(page, tmp_path, "flow-foundation-5-must-change-password")
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(NP_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NP_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(f"{base}/")
    expect(flash(page)).to_contain_text("Password changed.")

    # A clinician's navigation has no Staff link, and the staff pages refuse them.
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Suite")).to_be_visible()
    expect(nav.get_by_role("link", name="Patients")).to_be_visible()
    expect(nav.get_by_role("link", name="Staff")).to_have_count(0)
    shoot(page, tmp_path, "flow-foundation-6-np-board")
    response = page.goto(f"{base}/admin/staff/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("Your role does not allow this page or action.")).to_be_visible()
    shoot(page, tmp_path, "flow-foundation-7-forbidden")

    # After signing out, the home page is the login page.
    sign_out(page)
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)

    db.session.commit()  # a fresh look at what the server wrote
    nina = db.session.scalar(sa.select(Staff).where(Staff.username == "nina"))
    assert (nina.role, nina.full_name, nina.must_change_password) == ("np", "Nina Park", False)
    assert csp_errors == [] and script_errors == []


# --- 2. Charting: a whole session at the bedside -------------------------------------------------


def record_reading(page, **values):
    """Type a reading into the charting form (labels as on screen, "_" for a space) and submit
    it at the form's default time and phase."""
    form = page.locator("#chart-reading")
    for label, value in values.items():
        form.get_by_label(label.replace("_", " "), exact=True).fill(str(value))
    with page.expect_navigation():
        form.get_by_role("button", name="Record reading").click()


def status_tag(page):
    return page.locator(".session-status__state")


def test_nurse_practitioner_charts_a_whole_session(
    app,
    live_server,
    browser_page,
    csp_errors,
    script_errors,
    dialogs,
    make_staff,
    make_protocol,
    tmp_path,
):
    page, base = browser_page, live_server
    make_staff("np", username="nina", full_name="Nina Park", credentials="APRN")
    make_staff("physician", username="sara", full_name="Sara Signer", credentials="MD")
    # Discharge waits for the protocol's minimum observation after the stop (30 min by
    # default). This protocol sets it to 0 so the flow can discharge at once; the wait itself
    # is covered by the discharge tests without a browser.
    make_protocol(min_observation_min=0)
    db.session.commit()  # SQLite: leave the writing to the server's requests

    sign_in(page, base, "nina")
    expect(page).to_have_url(f"{base}/")

    # Register the patient.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Register a patient").click()
    expect(page.get_by_role("heading", name="Register a patient")).to_be_visible()
    page.get_by_label("First name").fill("Robin")
    page.get_by_label("Last name").fill("Hale")
    page.get_by_label("Date of birth").fill("1984-03-09")
    page.get_by_label("Sex").select_option(label="Female")
    page.get_by_label("Primary indication").select_option(label="Treatment-resistant depression")
    page.get_by_label("Allergies").fill("Sulfa (hives)")
    with page.expect_navigation():
        page.get_by_role("button", name="Register patient").click()
    expect(flash(page)).to_contain_text("Patient registered.")
    expect(page.get_by_role("note", name="Allergies")).to_contain_text("Sulfa (hives)")

    # Plan the session: the only protocol and the only physician are chosen already.
    page.get_by_role("link", name="Plan a session").click()
    expect(page.get_by_label("Protocol")).to_have_value(re.compile(r"\d+"))
    page.get_by_label("Room").select_option("Room 3")
    page.get_by_label("Weight (kg)").fill("72")
    with page.expect_navigation():
        page.get_by_role("button", name="Plan session").click()
    expect(flash(page)).to_contain_text("Session 1 planned.")
    expect(status_tag(page)).to_contain_text("Planned")
    session_url = page.url.split("#")[0]

    # Check in, then the baseline reading.
    with page.expect_navigation():
        page.locator("#primary-action").get_by_role("button", name="Check in").click()
    expect(flash(page)).to_contain_text("Checked in. Take the baseline reading.")
    expect(status_tag(page)).to_contain_text("Checked in")
    expect(page.locator(".start-gate")).to_contain_text("Not ready to start")
    shoot(page, tmp_path, "flow-charting-1-checked-in")
    expect(page.locator("#chart-reading").get_by_role("radio", name="Baseline")).to_be_checked()
    record_reading(page, Systolic=128, Diastolic=78, Heart_rate=72, **{"Resp. rate": 14}, SpO2=98)
    expect(flash(page)).to_contain_text("recorded.")

    # The checklist, the IV and the lot, then the start gate opens.
    details = page.locator("#details")
    details.get_by_label("Consent on file").check()
    details.get_by_label("NPO confirmed").check()
    details.get_by_label("Medication and allergy review done").check()
    details.get_by_label("Pregnancy status").select_option(label="Not pregnant (patient report)")
    details.get_by_label("Escort / driver").fill("Sam Hale (partner)")
    expect(details.get_by_label("Weight (kg)")).to_have_value(re.compile(r"^72(\.0)?$"))
    details.get_by_label("IV site").fill("Left antecubital")
    details.get_by_label("IV gauge").select_option("22G")
    details.get_by_label("Drug lot number").fill("KX-2231")
    with page.expect_navigation():
        details.get_by_role("button", name="Save checklist and details").click()
    expect(flash(page)).to_contain_text("Checklist and details saved.")
    expect(page.locator(".start-gate")).to_have_count(0)
    with page.expect_navigation():
        page.locator("#primary-action").get_by_role("button", name="Start infusion").click()
    expect(flash(page)).to_contain_text("Infusion started.")
    expect(status_tag(page)).to_contain_text("Infusing")

    # An abnormal reading is accepted and says so in a word.
    expect(page.locator("#chart-reading").get_by_role("radio", name="Infusion")).to_be_checked()
    record_reading(page, Systolic=165, Diastolic=88, Heart_rate=84, SpO2=97)
    expect(flash(page)).to_contain_text("with abnormal values")
    newest = page.locator("#readings tbody.reading").first
    expect(newest).to_contain_text("165")
    expect(newest.locator(".tag--abnormal")).to_contain_text("abnormal")

    # An impossible one is refused, naming the field and its range, and keeps what was typed.
    record_reading(page, Systolic=400, Diastolic=90, Heart_rate=80, SpO2=96)
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Systolic BP must be between 40 and 300 mmHg")
    expect(summary).to_be_focused()
    form = page.locator("#chart-reading")
    expect(form.get_by_label("Systolic", exact=True)).to_have_value("400")
    expect(form.get_by_label("Diastolic", exact=True)).to_have_value("90")
    expect(form.get_by_label("Heart rate", exact=True)).to_have_value("80")
    expect(form.get_by_label("SpO2", exact=True)).to_have_value("96")
    expect(form.locator(".field--error")).to_contain_text("Systolic BP must be between 40 and 300")
    shoot(page, tmp_path, "flow-charting-2-impossible-refused")
    # The nurse fixes the one box and records it.
    form.get_by_label("Systolic", exact=True).fill("152")
    with page.expect_navigation():
        form.get_by_role("button", name="Record reading").click()
    expect(flash(page)).to_contain_text("recorded")
    expect(page.locator("#readings tbody.reading")).to_have_count(3)
    page.locator("#chart").scroll_into_view_if_needed()
    shoot(page, tmp_path, "flow-charting-3-infusing-with-readings")
    shoot(page, tmp_path, "flow-charting-3-infusing-full", full_page=True)

    # An adverse event that pauses the infusion.
    adverse = page.locator("#adverse-events")
    adverse.get_by_label("Type", exact=True).select_option(label="Nausea")
    adverse.get_by_role("radio", name="Moderate").check()
    adverse.get_by_label("Intervention given").fill("Ondansetron given, reassured")
    adverse.get_by_label("Drug given").fill("Ondansetron")
    adverse.get_by_label("Dose", exact=True).fill("4 mg IV")
    adverse.get_by_role("radio", name="Paused", exact=True).check()
    adverse.get_by_label("Physician notified").check()
    adverse.get_by_label("Outcome", exact=True).fill("Settled after 5 minutes")
    with page.expect_navigation():
        adverse.get_by_role("button", name="Record adverse event").click()
    expect(flash(page)).to_contain_text("Adverse event recorded: Nausea")
    expect(status_tag(page)).to_contain_text("Paused")
    expect(page.locator("#adverse-events table")).to_contain_text("Nausea")
    expect(page.locator("#events table")).to_contain_text("Adverse event: Nausea")
    shoot(page, tmp_path, "flow-charting-4-adverse-event-recorded")  # lands on the list
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, tmp_path, "flow-charting-4-paused-after-adverse-event")

    # Resume, then stop: it ran only seconds, so the reason is asked for.
    with page.expect_navigation():
        page.locator("#primary-action").get_by_role("button", name="Resume infusion").click()
    expect(flash(page)).to_contain_text("Infusion resumed.")
    expect(status_tag(page)).to_contain_text("Infusing")
    # Stop sits with the infusion controls, below the charting (issue 10).
    controls = page.locator("#controls")
    with page.expect_navigation():
        controls.get_by_role("button", name="Stop infusion").click()
    expect(controls).to_contain_text("give the reason for stopping early")
    shoot(page, tmp_path, "flow-charting-5-stop-needs-reason")
    controls.get_by_label("Reason for stopping").fill("Patient asked to stop after the nausea")
    with page.expect_navigation():
        controls.get_by_role("button", name="Stop infusion").click()
    expect(flash(page)).to_contain_text("Recovery observation has begun")
    expect(status_tag(page)).to_contain_text("Recovery")
    # Stopping cannot be undone, so the button asks first (the person here says yes).
    assert dialogs.count("Stop the infusion now? A stopped infusion cannot be restarted.") == 2

    # Recovery readings.
    expect(page.locator("#chart-reading").get_by_role("radio", name="Recovery")).to_be_checked()
    record_reading(page, Systolic=134, Diastolic=82, Heart_rate=76, SpO2=98)
    record_reading(page, Systolic=126, Diastolic=78, Heart_rate=72, SpO2=99)
    expect(page.locator("#readings tbody.reading")).to_have_count(5)

    # Discharge: the modified Aldrete score, pre-filled where the readings allow.
    with page.expect_navigation():
        page.locator("#primary-action").get_by_role("link", name="Discharge").click()
    expect(page.get_by_role("heading", name="Discharge Robin Hale")).to_be_visible()
    expect(page.get_by_text("Minimum observation done")).to_be_visible()
    for item in ("Activity", "Respiration", "Circulation", "Consciousness", "Oxygen saturation"):
        page.get_by_role("group", name=item).get_by_role("radio", name=re.compile(r"^2 ")).check()
    expect(page.locator("[data-aldrete-total]")).to_have_text("10")
    expect(page.get_by_label("Escort", exact=True)).to_have_value("Sam Hale (partner)")
    shoot(page, tmp_path, "flow-charting-6-discharge-form", full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Discharge patient").click()
    expect(flash(page)).to_contain_text("Patient discharged.")
    expect(status_tag(page)).to_contain_text("Discharged")
    expect(page.locator("#chart-reading")).to_contain_text(
        "Readings cannot be charted on a discharged session."
    )
    expect(page.locator("#discharge")).to_contain_text("10 of 10")
    expect(page.locator("#signature")).to_contain_text("Awaiting physician signature")
    shoot(page, tmp_path, "flow-charting-7-discharged")
    shoot(page, tmp_path, "flow-charting-7-discharged-full", full_page=True)
    assert page.url.split("#")[0] == session_url

    db.session.commit()  # a fresh look at what the server wrote
    infusion = db.session.scalar(
        sa.select(InfusionSession).join(Patient).where(Patient.last_name == "Hale")
    )
    assert infusion.status == "discharged" and infusion.room == "Room 3"
    assert (infusion.weight_kg, infusion.total_mg) == (72.0, 36.0)
    assert (infusion.iv_gauge, infusion.lot_number, infusion.aldrete_total) == (
        "22G",
        "KX-2231",
        10,
    )
    readings = db.session.scalars(
        sa.select(Reading).where(Reading.infusion_id == infusion.id).order_by(Reading.id)
    ).all()
    assert [(r.phase, r.systolic, r.severity) for r in readings] == [
        ("baseline", 128, "normal"),
        ("infusion", 165, "abnormal"),
        ("infusion", 152, "normal"),
        ("recovery", 134, "normal"),
        ("recovery", 126, "normal"),
    ]
    kinds = db.session.scalars(
        sa.select(InfusionEvent.kind)
        .where(InfusionEvent.infusion_id == infusion.id)
        .order_by(InfusionEvent.id)
    ).all()
    assert kinds == ["start", "pause", "resume", "stop"]
    event = db.session.scalar(
        sa.select(AdverseEvent).where(AdverseEvent.infusion_id == infusion.id)
    )
    assert (event.event_type, event.infusion_action) == ("nausea", "paused")
    db.session.commit()
    assert csp_errors == [] and script_errors == []


# --- 3. Physician: review queue, signature, addendum, patient charts, printed record ------------


def vitals(at, phase, systolic, diastolic, heart_rate, spo2=98, resp_rate=14):
    values = dict.fromkeys(clinical.VITAL_FIELDS)
    values.update(
        taken_at=at,
        phase=phase,
        systolic=systolic,
        diastolic=diastolic,
        heart_rate=heart_rate,
        resp_rate=resp_rate,
        spo2=spo2,
        o2_flow_lpm=0.0,
        avpu="A",
    )
    return values


def charted_session(patient, nurse, physician, protocol, start, critical):
    """A session charted from `start` through the app's own services and discharged 85 minutes
    later; with `critical`, an SBP of 185 during the infusion answered by an adverse event."""

    def at(minutes):
        return start + timedelta(minutes=minutes)

    infusion = lifecycle.plan_infusion(
        patient,
        {
            "protocol_id": protocol.id,
            "clinician_id": nurse.id,
            "physician_id": physician.id,
            "scheduled_for": start,
            "room": "Room 2",
            "weight_kg": 70.0,
        },
        nurse,
    )
    lifecycle.check_in(infusion, nurse, at=at(0))
    readings.record_reading(infusion, vitals(at(5), "baseline", 130, 80, 72), nurse)
    checklist = {
        "consent_on_file": True,
        "npo_confirmed": True,
        "escort_name": "Lee Whitfield",
        "pregnancy_status": "not_applicable",
        "med_allergy_review_done": True,
        "iv_site": "Right antecubital",
        "iv_gauge": "22G",
        "lot_number": "KX-3107",
    }
    lifecycle.update_infusion(infusion, checklist, nurse, infusion.version)
    # The controlled-substance ledger: a vial from the safe, the order drawn before the start.
    (vial,) = ledger.receive_vials(
        actor=nurse, quantity=1, drug="ketamine", strength_mg_per_ml=50.0, volume_ml=10.0,
        lot="KX-3107", expiry=(start + timedelta(days=365)).date(), supplier="Demo Pharma",
        invoice_number="INV-1", at=start - timedelta(days=1),
    )  # fmt: skip
    ledger.draw(infusion, vial, nurse, infusion.total_mg, 100.0, at=at(8))
    lifecycle.start_infusion(infusion, nurse, at=at(10))
    readings.record_reading(infusion, vitals(at(15), "infusion", 150, 88, 84), nurse)
    if critical:
        reading = readings.record_reading(infusion, vitals(at(20), "infusion", 185, 98, 92), nurse)
        assert reading.severity == "critical"
        adverse_events.record_adverse_event(
            infusion,
            {
                "onset_at": at(20),
                "event_type": "hypertension",
                "severity": "moderate",
                "intervention": "Labetalol given; repeat BP in 10 minutes",
                "intervention_drug": "Labetalol",
                "intervention_dose": "10 mg IV",
                "infusion_action": "none",
                "physician_notified": True,
                "outcome": "SBP 152 ten minutes later",
                "reading_id": reading.id,
            },
            nurse,
        )
    for minutes, systolic in ((25, 146), (35, 142), (45, 138)):
        readings.record_reading(infusion, vitals(at(minutes), "infusion", systolic, 86, 80), nurse)
    lifecycle.stop_infusion(infusion, nurse, at=at(50))
    for minutes, systolic in ((60, 134), (80, 128)):
        readings.record_reading(infusion, vitals(at(minutes), "recovery", systolic, 80, 74), nurse)
    # 35 minutes after the stop: the protocol's default 30 minutes of observation are kept.
    lifecycle.discharge(
        infusion,
        {**dict.fromkeys(clinical.ALDRETE_ITEMS, 2), "escort": "Lee Whitfield", "at": at(85)},
        nurse,
    )
    # The pump gave the whole order: given recorded, nothing left to waste.
    ledger.record_given(infusion, nurse)
    return infusion


def page_count(pdf: bytes) -> int:
    # Chromium writes each page as an uncompressed /Type /Page dictionary.
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))


def test_physician_reviews_signs_adds_an_addendum_and_prints(
    app,
    live_server,
    browser_page,
    csp_errors,
    script_errors,
    make_staff,
    make_patient,
    make_protocol,
    tmp_path,
):
    page, base = browser_page, live_server
    nurse = make_staff("np", username="nina", full_name="Nina Park", credentials="APRN")
    physician = make_staff("physician", username="sara", full_name="Sara Signer", credentials="MD")
    protocol = make_protocol()
    # A routine session discharged earlier, which oldest-first alone would put first ...
    routine = charted_session(
        make_patient(first_name="Alex", last_name="Early"),
        nurse,
        physician,
        protocol,
        utcnow() - timedelta(hours=5),
        critical=False,
    )
    # ... and the one with the critical reading, with PHQ-9 scores before and after it.
    patient = make_patient(first_name="Dana", last_name="Whitfield")
    assessments.record_assessment(
        patient, instrument="phq9", score=21, actor=nurse, taken_at=utcnow() - timedelta(days=14)
    )
    infusion = charted_session(
        patient, nurse, physician, protocol, utcnow() - timedelta(hours=2), critical=True
    )
    assessments.record_assessment(
        patient,
        instrument="phq9",
        score=12,
        actor=nurse,
        taken_at=infusion.checked_in_at + timedelta(minutes=2),  # before the infusion
        infusion=infusion,
    )
    infusion_id, patient_id, routine_id = infusion.id, patient.id, routine.id
    db.session.commit()  # SQLite: leave the writing to the server's requests

    sign_in(page, base, "sara")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name=re.compile(r"^Review"))).to_contain_text("2")
    nav.get_by_role("link", name=re.compile(r"^Review")).click()
    expect(page).to_have_url(f"{base}/review/")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    rows = page.locator("table.review-queue tbody tr")
    expect(rows).to_have_count(2)
    # The session with the critical reading comes first, marked, although it is the newer one.
    first = rows.first
    expect(first).to_contain_text("WHITFIELD, Dana", ignore_case=True)
    expect(first.locator(".tag--critical")).to_contain_text("Critical reading")
    expect(first).to_contain_text("Adverse event")
    expect(first).to_have_class(re.compile("row--critical"))
    expect(rows.nth(1).locator(".tag")).to_have_text("Routine")
    shoot(page, tmp_path, "flow-physician-1-review-queue")

    with page.expect_navigation():
        first.get_by_role("link", name=re.compile(r"^Review and sign")).click()
    expect(page).to_have_url(f"{base}/infusions/{infusion_id}#signature")
    signature = page.locator("#signature")
    expect(signature).to_contain_text("Awaiting your signature")
    expect(signature.get_by_label("Attestation")).to_have_value(re.compile("I have reviewed"))
    shoot(page, tmp_path, "flow-physician-2-sign-form")
    password = signature.get_by_label("Your password")
    if password.count():  # asked only when the sign-in is older than REAUTH_MINUTES
        password.fill(PASSWORD)
    with page.expect_navigation():
        signature.get_by_role("button", name="Sign and lock this session").click()

    # Locked: a Signed state, no charting form, no checklist form, an addendum instead.
    expect(page.locator(".session-status__state")).to_contain_text("Signed")
    expect(signature.locator(".signature-lock")).to_contain_text("Signed — locked.")
    expect(signature).to_contain_text("Sara Signer, MD")
    expect(page.locator("#chart-reading")).to_contain_text("This session was signed and is locked.")
    expect(page.locator("#chart-reading form")).to_have_count(0)
    expect(page.get_by_role("button", name="Save checklist and details")).to_have_count(0)
    expect(page.get_by_role("button", name="Record adverse event")).to_have_count(0)
    shoot(page, tmp_path, "flow-physician-3-signed")
    addendum = "Phoned the next day: well, no headache, BP 128/80 at home."
    signature.get_by_label("Addendum").fill(addendum)
    with page.expect_navigation():
        signature.get_by_role("button", name="Add addendum").click()
    expect(page.locator("#addenda")).to_contain_text(addendum)
    expect(page.locator("#addenda")).to_contain_text("Sara Signer, MD")
    page.locator("#signature").scroll_into_view_if_needed()
    shoot(page, tmp_path, "flow-physician-4-addendum")

    # The patient page: the outcome chart and the peak-rise chart.
    with page.expect_navigation():
        page.locator("#session-heading").get_by_role("link").click()
    expect(page).to_have_url(f"{base}/patients/{patient_id}")
    outcome = page.get_by_role("img", name=re.compile(r"^Outcome scores over time"))
    surges = page.get_by_role("img", name=re.compile(r"^Peak rise in systolic BP"))
    expect(outcome).to_be_visible()
    expect(surges).to_be_visible()
    expect(page.locator(".series-table")).to_contain_text("+55 mmHg")  # 185 - baseline 130
    expect(page.locator(".series-table")).to_contain_text("Signed")
    shoot(page, tmp_path, "flow-physician-5-patient-page")
    for heading, name in (("Sessions", "peak-rise"), ("Outcome scores", "outcome")):
        page.get_by_role("heading", name=heading, exact=True).evaluate("e => e.scrollIntoView()")
        shoot(page, tmp_path, f"flow-physician-5-patient-{name}-chart")

    # The printed record, from the session page's button.
    page.goto(f"{base}/infusions/{infusion_id}")
    with page.expect_navigation():
        page.get_by_role("link", name="Print the session record").click()
    expect(page).to_have_url(f"{base}/infusions/{infusion_id}/print")
    shoot(page, tmp_path, "flow-physician-6-print-view", full_page=True)
    pdf = page.pdf(path=str(tmp_path / "flow-physician-record.pdf"), format="Letter")
    assert 1 <= page_count(pdf) <= 2, page_count(pdf)

    db.session.commit()  # a fresh look at what the server wrote
    signed = db.session.get(InfusionSession, infusion_id)
    assert signed.signed_by.username == "sara" and signed.attestation.startswith("I have reviewed")
    assert [a.text for a in signed.addenda] == [addendum]
    assert db.session.get(InfusionSession, routine_id).signed_at is None
    db.session.commit()
    assert csp_errors == [] and script_errors == []
