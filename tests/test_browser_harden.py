"""Issue 9 in Chromium at 1024×768: the audit log fits the screen, and two-factor
enrolment shows its QR code under the CSP."""

import pyotp
import pytest
from playwright.sync_api import expect

from infusion_tracker import audit
from infusion_tracker.auth.two_factor import secret_of
from infusion_tracker.extensions import db
from infusion_tracker.timeutil import utcnow
from tests.browser_support import shoot, sign_in

pytestmark = pytest.mark.browser


def test_the_audit_log_fits_1024_pixels(
    live_server, browser_page, make_staff, make_patient, tmp_path, csp_errors
):
    admin = make_staff("admin", username="office", full_name="Olive Office")
    nurse = make_staff("np", username="nia", full_name="Nia Nightingale-Longname")
    patient = make_patient(mrn="MRN-0000012345")
    audit.record(
        "patient.updated",
        actor=nurse,
        entity=patient,
        patient_id=patient.id,
        details={"changes": {"allergies": ["None", "Penicillin " * 20]}},
    )
    audit.record(
        "staff.updated",
        actor=admin,
        entity=nurse,
        details={"changes": {"full_name": ["Nia", "Nia Nightingale-Longname " * 5]}},
    )
    audit.record("auth.locked_out", entity=nurse, details={"locked_until": utcnow()})
    db.session.commit()
    page = browser_page
    sign_in(page, live_server, "office")
    page.goto(f"{live_server}/admin/audit")
    width = page.evaluate("document.documentElement.scrollWidth")
    shoot(page, tmp_path, "harden-audit-1024", full_page=True)
    assert width <= 1024, width
    assert "Penicillin" not in page.content()
    assert csp_errors == []


def test_two_factor_enrolment_in_the_browser(live_server, browser_page, make_staff, tmp_path,
                                             csp_errors):
    staff = make_staff("physician", username="doc")
    page = browser_page
    sign_in(page, live_server, "doc")
    page.goto(f"{live_server}/account/two-factor")
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    qr = page.get_by_alt_text("QR code holding your two-factor key")
    assert qr.evaluate("img => img.naturalWidth") > 0
    shoot(page, tmp_path, "harden-two-factor-enrol")
    db.session.refresh(staff)
    code = pyotp.TOTP(secret_of(staff)).now()
    db.session.commit()  # release SQLite's lock (transactions begin IMMEDIATE) for the server
    page.get_by_label("Code from the app").fill(code)
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on two-factor sign-in").click()
    shoot(page, tmp_path, "harden-two-factor-after")
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    shoot(page, tmp_path, "harden-two-factor-codes")
    assert csp_errors == []
