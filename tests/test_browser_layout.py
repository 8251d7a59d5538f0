"""The review queue on a tablet held upright (768 px wide): every column, the actions
included, on the screen without scrolling sideways."""

import pytest

from infusion_tracker.extensions import db
from tests.browser_support import shoot, sign_in
from tests.conftest import run_session

pytestmark = pytest.mark.browser


def test_the_review_queue_fits_a_tablet_held_upright(
    live_server, browser_page, make_staff, make_patient, make_protocol, make_infusion, tmp_path,
    csp_errors,
):
    physician = make_staff("physician", username="doc", full_name="Anastasia Montgomery-Patel")
    nurse = make_staff("np", full_name="Linh Nguyen-Abernathy")
    protocol = make_protocol()
    for first, last in (("Jordan", "Ibarra-Kowalski"), ("Harper", "Abernathy")):
        infusion = make_infusion(patient=make_patient(first_name=first, last_name=last),
                                 physician=physician, clinician=nurse, protocol=protocol)
        run_session(infusion, "discharged", started_minutes_ago=180)
    db.session.commit()  # release SQLite's lock for the server
    page = browser_page
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, live_server, "doc")
    page.goto(f"{live_server}/review/")
    shoot(page, tmp_path, "review-queue-768", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    buttons = page.get_by_role("link", name="Review and sign")
    assert buttons.count() == 2
    for index in range(2):
        box = buttons.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 768, box
    assert csp_errors == []
