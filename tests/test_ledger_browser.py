"""In Chromium at 1024×768: receive a vial, draw for a session, record what the pump gave,
waste the remainder with a witness, count the safe, print the vial's ledger."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from infusion_tracker.extensions import db
from infusion_tracker.models import InfusionEvent
from infusion_tracker.timeutil import clinic_today, utcnow
from tests.browser_support import shoot, sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_a_vial_from_receipt_to_printed_ledger(
    app, live_server, browser_page, make_staff, make_infusion, csp_errors, script_errors,
    tmp_path,
):
    page, base = browser_page, live_server
    nurse = make_staff("np", username="nina", full_name="Nina Novak")
    make_staff("pa", username="paul", full_name="Paul Park")
    infusion = make_infusion(clinician=nurse, status="checked_in", weight_kg=70.0,
                             dose_mg_per_kg=0.5, total_mg=35.0, duration_min=40)
    infusion_id, nurse_id = infusion.id, nurse.id
    db.session.commit()  # SQLite: the test's reads hold the write lock until they end
    sign_in(page, base, "nina")

    page.goto(f"{base}/ledger/receive")
    page.get_by_label("Number of vials").fill("1")
    page.get_by_label("Lot number").fill("KET-2291")
    page.get_by_label("Expiry date").fill((clinic_today() + timedelta(days=400)).isoformat())
    page.get_by_label("Supplier").fill("Hikma Pharmaceuticals")
    page.get_by_label("Invoice or DEA form number").fill("DEA222-88120")
    with page.expect_navigation():
        page.get_by_role("button", name="Receive into the safe").click()
    expect(page.locator(".flashes")).to_contain_text("Received 1 vial(s): V-00001")
    shoot(page, tmp_path, "ledger-1-stock")

    page.goto(f"{base}/ledger/sessions/{infusion_id}")
    page.get_by_label("Vial").select_option(label="V-00001 · lot KET-2291 · 500.0 mg left")
    page.get_by_label("Amount drawn").fill("40")
    page.get_by_label("Diluted into").fill("100")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the draw").click()
    expect(page.locator(".ledger-sum")).to_contain_text("Drawn 40.0 mg")

    # The pump ran the whole 40 minutes at 52.5 mg/h (written as the lifecycle writes it).
    start = utcnow() - timedelta(minutes=50)
    db.session.add_all([
        InfusionEvent(infusion_id=infusion_id, kind="start", occurred_at=start,
                      rate_mg_per_h=52.5, recorded_by_id=nurse_id),
        InfusionEvent(infusion_id=infusion_id, kind="stop",
                      occurred_at=start + timedelta(minutes=40), recorded_by_id=nurse_id),
    ])
    infusion.status, infusion.started_at = "recovery", start
    infusion.ended_at = start + timedelta(minutes=40)
    db.session.commit()

    page.reload()
    with page.expect_navigation():
        page.get_by_role("button", name="Record given from the pump (35.0 mg)").click()
    expect(page.get_by_role("alert").filter(has_text="Does not balance")).to_contain_text(
        "leaves 5.0 mg unaccounted for"
    )
    shoot(page, tmp_path, "ledger-2-unbalanced", full_page=True)

    expect(page.get_by_label("Amount wasted")).to_have_value("5.0")
    page.get_by_label("Witness username").fill("paul")
    page.get_by_label("Witness password").fill("wrong password")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the waste").click()
    expect(page.locator(".error-summary")).to_contain_text("not the witness's password")
    shoot(page, tmp_path, "ledger-3-witness-refused", full_page=True)
    page.get_by_label("Witness password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Record the waste").click()
    expect(page.locator(".ledger-sum")).to_contain_text("Balanced")
    shoot(page, tmp_path, "ledger-4-balanced", full_page=True)

    page.goto(f"{base}/ledger/count")
    page.get_by_label("Counted volume of V-00001 in mL").fill("9.20")
    page.get_by_label("Second counter username").fill("paul")
    page.get_by_label("Second counter password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Record the count").click()
    expect(page.locator(".flashes")).to_contain_text("all 1 vial(s) match")

    page.goto(f"{base}/ledger/vials/1")
    with page.expect_navigation():
        page.get_by_role("link", name="Print ledger").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("vial V-00001")
    expect(page.locator("table")).to_contain_text("Remainder wasted")
    expect(page.locator("body")).to_contain_text("Paul Park")
    shoot(page, tmp_path, "ledger-5-print", full_page=True)
    assert csp_errors == [] and script_errors == []


def test_quality_report_on_the_demo_clinic(app, live_server, browser_page, csp_errors,
                                           script_errors, tmp_path):
    import random

    import sqlalchemy as sa

    from infusion_tracker.demo import DEMO_PASSWORD, seed_demo
    from infusion_tracker.ledger.demo import seed_ledger
    from infusion_tracker.models import Staff

    seed_demo(2026)
    seed_ledger({s.username: s for s in db.session.scalars(sa.select(Staff))},
                random.Random(1), DEMO_PASSWORD)
    db.session.commit()
    page, base = browser_page, live_server
    sign_in(page, base, "drpatel", DEMO_PASSWORD)
    page.goto(f"{base}/quality/")
    expect(page.get_by_role("img", name="Adverse events per 100 infusions, all protocols")
           ).to_be_visible()
    shoot(page, tmp_path, "quality-1-top")
    page.locator("#critical-readings").scroll_into_view_if_needed()
    shoot(page, tmp_path, "quality-2-critical")
    page.locator("#outcomes").scroll_into_view_if_needed()
    shoot(page, tmp_path, "quality-3-outcomes")
    page.goto(f"{base}/ledger/")
    shoot(page, tmp_path, "ledger-6-demo-stock")
    assert csp_errors == [] and script_errors == []
