"""The patient page's body is drawn once for each state of what it shows (issue 8,
patients/page.py): shown again it is the same page for one small query, and every change the
page shows, made the way the app makes it, draws it again. Its forms carry the viewer's own
CSRF token."""

import re

import pytest

from infusion_tracker.admin import services as admin
from infusion_tracker.extensions import db
from infusion_tracker.patients import assessments
from infusion_tracker.patients import services as patients
from tests.conftest import (
    PASSWORD,
    add_reading,
    audit_rows,
    csrf_token_from,
    login,
    run_session,
)


def page(client, patient):
    return page_at(client, f"/patients/{patient.id}")


def page_at(client, url):
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def without_tokens(html):
    """Each view's CSRF token (signed with the second it was drawn in): the sign-out form's
    and the layout's, which the idle script sends."""
    masked = re.sub(r'(csrf_token" value|data-csrf-token)="[^"]*"', "", html)
    assert csrf_token_from(html) not in masked, "a CSRF token the mask missed"
    return masked


@pytest.fixture
def series(make_patient, make_infusion, make_protocol):
    patient = make_patient(first_name="Dana", last_name="Drawn")
    infusion = run_session(make_infusion(patient=patient, protocol=make_protocol()), "recovery",
                           started_minutes_ago=60, infused_minutes=40)
    db.session.commit()
    return patient, infusion


def test_shown_again_it_is_the_same_page_for_one_small_query(
    client, login_as, series, count_queries
):
    login_as("np")
    patient, _ = series
    url = f"/patients/{patient.id}"
    first = page_at(client, url)
    with count_queries() as again:
        second = page_at(client, url)
    assert without_tokens(second) == without_tokens(first)
    # The signed-in user, the fingerprint (which also finds the patient), the audit row (last
    # hash, insert).
    assert again.count == 4, again.statements


@pytest.mark.parametrize(
    "change, shown",
    [
        ("reading", "Critical"),
        ("score", "MADRS"),
        ("void", "Voided"),
        ("clinician", "<td>Renamed Clinician, RN</td>"),  # the sessions table
        ("recorder", "<td>Renamed Recorder, APRN</td>"),  # the scores table
        ("patient", "Dana Redrawn"),
    ],
)
def test_every_change_the_page_shows_draws_it_again(
    client, login_as, series, make_staff, change, shown
):
    nurse = login_as("np", full_name="Nia Nurse", credentials="APRN")
    patient, infusion = series
    score = assessments.record_assessment(
        patient, instrument="gad7", score=9, actor=nurse, infusion=infusion
    )
    db.session.commit()
    before = page(client, patient)
    assert shown not in before
    if change == "reading":
        add_reading(infusion, nurse, phase="recovery", systolic=200)
    elif change == "score":
        assessments.record_assessment(patient, instrument="madrs", score=12, actor=nurse)
    elif change == "void":
        assessments.void_assessment(score, "Entered for the wrong patient", nurse)
    elif change == "clinician":
        admin.update_staff(infusion.clinician, "Renamed Clinician", "RN", make_staff("admin"))
    elif change == "recorder":
        admin.update_staff(nurse, "Renamed Recorder", "APRN", make_staff("admin"))
    else:
        data = {name: getattr(patient, name) for name in patients.PATIENT_FIELDS}
        patients.update_patient(patient, {**data, "last_name": "Redrawn"}, nurse, patient.version)
    db.session.commit()
    html = page(client, patient)
    assert shown in html
    if change == "patient":
        assert "<title>Dana Redrawn ·" in html  # the title is drawn with the page


def test_each_viewer_sees_what_they_may_do(app, series, make_staff):
    patient, infusion = series
    recorder = make_staff("np")
    score = assessments.record_assessment(
        patient, instrument="phq9", score=14, actor=recorder, infusion=infusion
    )
    db.session.commit()
    void_url = f"/patients/assessments/{score.id}/void"
    shown = {}
    for name, viewer in (("np", make_staff("np")), ("recorder", recorder),
                         ("physician", make_staff("physician"))):
        browser = app.test_client()
        assert login(browser, viewer.username).status_code == 302
        shown[name] = page(browser, patient)
    assert void_url not in shown["np"]  # another nurse's score
    assert void_url in shown["recorder"]  # their own
    assert void_url in shown["physician"]  # the physician may void anyone's


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_a_page_drawn_for_one_browser_carries_the_next_browser_s_own_token(
    app, series, make_staff
):
    """Two browsers of one physician: the second is shown the page drawn for the first, with
    its own token in the form, and the form posts."""
    patient, _ = series
    physician = make_staff("physician")
    first, second = app.test_client(), app.test_client()
    for browser in (first, second):
        token = csrf_token_from(browser.get("/login").get_data(as_text=True))
        data = {"username": physician.username, "password": PASSWORD, "csrf_token": token}
        assert browser.post("/login", data=data).status_code == 302
    page(first, patient)
    shown = page(second, patient)
    assert "<csrf-token>" not in shown
    archive = shown[shown.index(f'action="/patients/{patient.id}/archive"') :]
    token = csrf_token_from(archive[: archive.index("</form>")])
    response = second.post(f"/patients/{patient.id}/archive", data={"csrf_token": token})
    assert response.status_code == 302
    db.session.refresh(patient)
    assert patient.active is False
    assert "Archived" in page(second, patient)


def test_no_such_patient_is_404_and_leaves_no_audit_row(client, login_as, series):
    login_as("np")
    assert client.get("/patients/99999").status_code == 404
    assert audit_rows("patient.viewed") == []
