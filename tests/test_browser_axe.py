"""Every page passes axe-core's WCAG 2.1 AA rules (issue 10), in Chromium at 1024×768.

axe-core comes from npm (tests/axe/package.json pins it; `npm ci --prefix tests/axe`) and is
loaded by this test only: the app never serves it. The app's Content-Security-Policy allows
no inline script, so `page.add_script_tag` (an inline <script>) is refused; the test evaluates
axe's source through the DevTools protocol instead (`page.evaluate`), which the CSP does not
govern, and the CSP stays as strict as it is for everyone else.

One clinic is built through the services (every session state, readings, an adverse event,
a vial in the ledger, a count discrepancy, a monitor with a proposed reading, a revised
protocol, a two-factor enrolment), then each role walks every page it can reach, including
forms showing their errors and the error pages. All violations are collected and reported
together: rule, impact, page, element and axe's summary of what to fix."""

import random
import re
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from infusion_tracker.devices import services as devices
from infusion_tracker.devices import simulator
from infusion_tracker.extensions import db
from infusion_tracker.infusions import adverse_events, lifecycle
from infusion_tracker.ledger import services as ledger
from infusion_tracker.models import LedgerEntry, Patient, Staff
from infusion_tracker.patients import assessments
from infusion_tracker.patients.services import PATIENT_FIELDS, update_patient
from infusion_tracker.protocols.services import PROTOCOL_FIELDS, revise_protocol
from infusion_tracker.timeutil import clinic_today, utcnow
from tests.browser_support import VIEWPORT, require, sign_in, sign_out
from tests.conftest import PASSWORD, add_reading, run_session

pytestmark = pytest.mark.browser

AXE_JS = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
  });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
  }));
}"""


class Axe:
    """Runs axe on the page as it is now and keeps every violation, by page."""

    def __init__(self, page, base: str):
        require(AXE_JS.exists(), f"{AXE_JS} (run `npm ci --prefix tests/axe`)")
        self.page, self.base = page, base
        # Evaluated before each document's own scripts, through the DevTools protocol.
        page.context.add_init_script(path=str(AXE_JS))
        self.found: dict[str, list[dict]] = {}
        self.pages = 0

    def check(self, label: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        violations = page.evaluate(RUN_AXE, WCAG_21_AA)
        self.pages += 1
        if violations:
            self.found[label] = violations

    def visit(self, path: str, label: str | None = None, status: int = 200) -> None:
        response = self.page.goto(self.base + path)
        assert response.status == status, f"{path}: {response.status}, expected {status}"
        self.check(label or path)

    def portrait(self, *paths: str) -> None:
        """The tablet turned upright (768×1024): wide tables scroll sideways there."""
        self.page.set_viewport_size({"width": 768, "height": 1024})
        for path in paths:
            self.visit(path, f"{path} (portrait)")
        self.page.set_viewport_size(VIEWPORT)

    def report(self) -> str:
        """Each rule and element once, with its summary and the pages it was found on."""
        seen: dict[tuple[str, str, str], dict] = {}
        for label, violations in self.found.items():
            for violation in violations:
                for node in violation["nodes"]:
                    summary = " ".join(node["summary"].split())
                    key = (violation["id"], node["target"], summary)
                    entry = seen.setdefault(key, {"violation": violation, "pages": []})
                    entry["pages"].append(label)
        lines = []
        for (rule, target, summary), entry in seen.items():
            violation, pages = entry["violation"], entry["pages"]
            where = ", ".join(pages[:4]) + (f" and {len(pages) - 4} more" if len(pages) > 4 else "")
            lines.append(f"- {rule} ({violation['impact']}): {violation['help']}")
            lines.append(f"    {target}: {summary}")
            lines.append(f"    on {len(pages)} page(s): {where}")
        return "\n".join(lines)


def build_clinic(make_staff, make_patient, make_protocol, make_infusion):
    """Every state a page can show, built through the services; returns the ids to visit."""
    nurse = make_staff("np", username="nina", full_name="Nina Novak")
    pa = make_staff("pa", username="paul", full_name="Paul Park")
    physician = make_staff("physician", username="drmd", full_name="Maya Diaz")
    make_staff("admin", username="boss", full_name="Olive Office")
    protocol = make_protocol()
    revised = revise_protocol(
        protocol,
        {**{name: getattr(protocol, name) for name in PROTOCOL_FIELDS}, "infusion_minutes": 45},
        physician,
        "Slower infusion after review",
    )
    patient = make_patient(first_name="Avery", last_name="Bennett")
    for weeks, score in ((6, 21), (3, 15), (0, 11)):
        assessments.record_assessment(
            patient, instrument="phq9", score=score, actor=nurse,
            taken_at=utcnow() - timedelta(weeks=weeks, hours=1),
        )  # fmt: skip
    gad7 = assessments.record_assessment(patient, instrument="gad7", score=9, actor=nurse)

    def session(until, room, **run):
        infusion = make_infusion(
            patient=make_patient(), protocol=revised, clinician=nurse, physician=physician,
            room=room,
        )  # fmt: skip
        return run_session(infusion, until, **run) if until != "planned" else infusion

    planned = make_infusion(patient=patient, protocol=revised, clinician=nurse,
                            physician=physician, room="Room 1")  # fmt: skip
    checked_in = session("checked_in", "Room 2")
    infusing = session("infusing", "Room 3", started_minutes_ago=20)
    critical = add_reading(infusing, minutes_ago=5, systolic=186, diastolic=104)
    paused = session("infusing", "Room 4", started_minutes_ago=15)
    lifecycle.pause_infusion(paused, nurse, "Patient asked for a break")
    recovery = session("recovery", "Room 5", started_minutes_ago=50)
    discharged = session("discharged", "Room 6", started_minutes_ago=120)
    event = adverse_events.record_adverse_event(
        discharged,
        {
            "onset_at": discharged.started_at + timedelta(minutes=10),
            "event_type": "nausea", "severity": "mild", "intervention": "Reassured",
            "infusion_action": "none", "physician_notified": False, "outcome": "Settled",
        },
        nurse,
        now=discharged.ended_at + timedelta(minutes=5),
    )  # fmt: skip
    signed = session("signed", "Room 6", started_minutes_ago=200)
    db.session.commit()

    # The ledger: a box received, a draw for the checked-in session, a count one vial short.
    vials = ledger.receive_vials(
        actor=nurse, quantity=3, drug="ketamine", strength_mg_per_ml=50.0, volume_ml=10.0,
        lot="KX-3107", expiry=clinic_today() + timedelta(days=365), supplier="Hikma",
        invoice_number="DEA222-88120",
    )  # fmt: skip
    ledger.draw(checked_in, vials[0], nurse, checked_in.total_mg, 100.0)
    ledger.record_count(
        nurse, {vials[0].id: 10.0 - checked_in.total_mg / 50, vials[1].id: 10.0,
                vials[2].id: 9.5}, "paul", PASSWORD,
    )  # fmt: skip
    db.session.commit()

    # A monitor in Room 3 proposes a reading for the infusing session.
    device, _token = devices.register_device("Bed 3 monitor", "Room 3", None, "MON-3")
    db.session.commit()
    values = simulator.vitals_at(20, random.Random(1))
    answer = devices.receive(device, simulator.message("MON-3", "C1", utcnow(), values), "http")
    assert answer.http_status == 200, answer
    db.session.commit()

    receipt = db.session.scalar(sa.select(LedgerEntry.id).where(LedgerEntry.vial_id == vials[2].id))
    ids = {
        "patient": patient.id, "gad7": gad7.id, "protocol": revised.id,
        "planned": planned.id, "checked_in": checked_in.id, "infusing": infusing.id,
        "paused": paused.id, "recovery": recovery.id, "discharged": discharged.id,
        "signed": signed.id, "critical": critical.id, "event": event.id, "vial": vials[1].id,
        "receipt": receipt, "device": device.id,
        "proposed": devices.pending_for(infusing)[0].id,
        "discrepancy": ledger.open_discrepancies()[0].id, "nurse": nurse.id, "pa": pa.id,
    }  # fmt: skip
    db.session.commit()  # SQLite: hold no lock the live server needs
    return ids


def walk_as_nurse(axe, ids):
    page = axe.page
    sign_in(page, axe.base, "nina")
    axe.check("/ (suite board, NP)")
    axe.visit("/patients/")
    axe.visit("/patients/?q=Bennett")
    axe.visit("/patients/?q=nobody-by-that-name")
    axe.visit("/patients/new")
    with page.expect_navigation():
        page.get_by_role("button", name="Register patient").click()
    axe.check("/patients/new (errors shown)")
    p = ids["patient"]
    axe.visit(f"/patients/{p}")
    axe.visit(f"/patients/{p}/assessments/new")
    axe.visit(f"/patients/assessments/{ids['gad7']}/void")
    axe.visit(f"/patients/{p}/infusions/new")
    for state in ("planned", "checked_in", "infusing", "paused", "recovery", "discharged",
                  "signed"):  # fmt: skip
        axe.visit(f"/infusions/{ids[state]}", f"/infusions/{{{state}}} (session page, NP)")
    axe.visit(f"/readings/{ids['critical']}/correct")
    axe.visit(f"/adverse-events/{ids['event']}/correct")
    axe.visit(f"/infusions/{ids['recovery']}/discharge")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^Discharge")).click()
    axe.check("/infusions/{recovery}/discharge (errors shown)")
    axe.visit(f"/proposed-readings/{ids['proposed']}/accept")
    axe.visit(f"/infusions/{ids['signed']}/print")
    for path in ("/protocols/", f"/protocols/{ids['protocol']}",
                 f"/protocols/{ids['protocol']}/history",
                 f"/protocols/{ids['protocol']}/compare"):  # fmt: skip
        axe.visit(path)
    for path in ("/ledger/", "/ledger/vials", f"/ledger/vials/{ids['vial']}",
                 f"/ledger/vials/{ids['vial']}/print", f"/ledger/vials/{ids['vial']}/waste",
                 "/ledger/count", "/ledger/discrepancies",
                 f"/ledger/entries/{ids['receipt']}/correct", "/ledger/reports/stock",
                 "/ledger/reports/period", f"/ledger/sessions/{ids['checked_in']}"):  # fmt: skip
        axe.visit(path)
    axe.visit("/ledger/receive")
    with page.expect_navigation():
        page.get_by_role("button", name="Receive into the safe").click()
    axe.check("/ledger/receive (errors shown)")
    axe.visit("/account/password")
    axe.visit("/account/two-factor")
    axe.visit("/admin/staff/", "403 (NP on the staff list)", status=403)
    axe.visit("/no-such-page", "404", status=404)
    # The edit form, then a 409: the record changed after the form was opened.
    axe.visit(f"/patients/{p}/edit")
    patient = db.session.get(Patient, p)
    edit = {name: getattr(patient, name) for name in PATIENT_FIELDS}
    update_patient(patient, {**edit, "allergies": "Latex"}, db.session.get(Staff, ids["pa"]),
                   patient.version)  # fmt: skip
    db.session.commit()
    page.get_by_label("Current medications").fill("Sertraline 100 mg daily")
    with page.expect_navigation():
        page.get_by_role("button", name="Save changes").click()
    axe.check("409 (changed by someone else)")
    axe.portrait("/", f"/infusions/{ids['infusing']}")
    sign_out(page)


def walk_as_physician(axe, ids):
    page = axe.page
    sign_in(page, axe.base, "drmd")
    axe.check("/ (suite board, physician)")
    axe.visit("/review/")
    axe.visit(f"/infusions/{ids['discharged']}", "/infusions/{discharged} (to sign, physician)")
    axe.visit(f"/infusions/{ids['signed']}", "/infusions/{signed} (addendum, physician)")
    axe.visit("/quality/")
    axe.visit("/protocols/new")
    axe.visit(f"/protocols/{ids['protocol']}/edit")
    axe.visit(f"/ledger/discrepancies/{ids['discrepancy']}/resolve")
    axe.portrait("/quality/")
    # What the portrait pass relies on: a table that scrolls sideways is a named region in the
    # Tab order; in landscape the same tables fit and are not.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{axe.base}/quality/")
    scrolling = page.get_by_role("region", name=re.compile(r"\(scrolls sideways\)$"))
    expect(scrolling.first).to_have_attribute("tabindex", "0")
    page.set_viewport_size(VIEWPORT)
    expect(scrolling).to_have_count(0)
    # Two-factor enrolment: the QR page, then the recovery codes.
    axe.visit("/account/two-factor")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Turn on|Set up|Start", re.I)).click()
    axe.check("/account/two-factor (QR code and key)")
    key = page.locator(".totp-key").inner_text().replace(" ", "")
    page.get_by_label(re.compile("code", re.I)).first.fill(pyotp.TOTP(key).now())
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Confirm|Turn on", re.I)).click()
    axe.check("/account/two-factor (recovery codes)")
    sign_out(page)
    sign_in(page, axe.base, "drmd")
    axe.check("/login/two-factor")
    page.get_by_label(re.compile("code", re.I)).first.fill("000000")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Sign in|Continue|Verify", re.I)).click()
    axe.check("/login/two-factor (wrong code)")


def walk_as_admin(axe, ids):
    page = axe.page
    page.context.clear_cookies()
    sign_in(page, axe.base, "boss")
    axe.check("/admin/staff/ (admin home)")
    axe.visit("/admin/staff/new")
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    axe.check("/admin/staff/new (errors shown)")
    page.get_by_label("Username").fill("newnp")
    page.get_by_label("Full name").fill("Noor Nasser")
    page.get_by_label("Nurse practitioner").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Account created")).to_be_visible()
    axe.check("/admin/staff/new (temporary password)")
    axe.visit(f"/admin/staff/{ids['nurse']}")
    axe.visit("/admin/audit")
    axe.visit("/admin/audit?action=reading.recorded&sort=oldest", "/admin/audit (filtered)")
    axe.visit("/admin/audit?date_from=31-31-2020", "/admin/audit (bad filter)")
    axe.visit("/admin/audit?patient=NO-SUCH-MRN", "/admin/audit (no entries)")
    axe.visit("/admin/devices/")
    axe.visit(f"/admin/devices/{ids['device']}")
    axe.visit("/admin/devices/new")
    page.get_by_label("Name").fill("Bed 5 monitor")
    page.get_by_label("Room").select_option("Room 5")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Register|Add", re.I)).click()
    axe.check("/admin/devices/new (token shown once)")
    axe.portrait("/admin/audit", f"/ledger/vials/{ids['vial']}")
    sign_out(page)
    axe.check("/login (signed out)")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password", exact=True).fill("not the password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    axe.check("/login (wrong password)")


def test_every_page_passes_axe_wcag21_aa(
    app, live_server, browser_page, make_staff, make_patient, make_protocol, make_infusion
):
    ids = build_clinic(make_staff, make_patient, make_protocol, make_infusion)
    axe = Axe(browser_page, live_server)
    walk_as_nurse(axe, ids)
    walk_as_physician(axe, ids)
    walk_as_admin(axe, ids)
    assert axe.pages >= 70
    assert not axe.found, (
        f"axe-core (WCAG 2.1 AA) found violations on {len(axe.found)} of {axe.pages} pages:\n"
        + axe.report()
    )


@pytest.mark.parametrize(
    "app_config",
    [{"RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT_PER_USERNAME": "2 per 15 minutes"}],
)
def test_pages_before_sign_in_pass_axe(app, live_server, browser_page, make_staff):
    """The first-run setup page (an empty clinic), then login's 429 once an account exists."""
    axe = Axe(browser_page, live_server)
    page = browser_page
    axe.visit("/setup")
    with page.expect_navigation():
        page.get_by_role("button", name="Create administrator").click()
    axe.check("/setup (errors shown)")
    make_staff("np", username="nina")
    db.session.commit()
    for _ in range(3):
        page.goto(f"{live_server}/login")
        page.get_by_label("Username").fill("nina")
        page.get_by_label("Password", exact=True).fill("not the password")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Too many attempts")).to_be_visible()
    axe.check("429 (too many sign-in attempts)")
    assert not axe.found, axe.report()
