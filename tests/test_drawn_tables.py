"""The tables of the patient search, the review queue and the audit log are kept drawn under
the rows they show (issue 8, memo.drawn): the same rows shown again are not drawn again, and
every change to what a row shows is shown."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import template_rendered

from infusion_tracker.admin import services as admin
from infusion_tracker.extensions import db
from infusion_tracker.infusions import adverse_events
from infusion_tracker.patients import services as patients
from infusion_tracker.timeutil import utcnow
from tests.conftest import login, run_session


@contextmanager
def drawings(app):
    """The names of the templates drawn while it is open."""
    names: list[str] = []

    def drawn(sender, template, context, **extra):
        names.append(template.name)

    template_rendered.connect(drawn, app)
    try:
        yield names
    finally:
        template_rendered.disconnect(drawn, app)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def rename_patient(patient, staff, **changes):
    data = {name: getattr(patient, name) for name in patients.PATIENT_FIELDS}
    patients.update_patient(patient, {**data, **changes}, staff, patient.version)
    db.session.commit()


@pytest.mark.parametrize(
    "url, table",
    [
        ("/patients/?q=Drawn", "patients/_results.html"),
        ("/review/", "review/_queue_table.html"),
        ("/admin/audit?action=patient.viewed", "admin/_audit_table.html"),
    ],
)
def test_the_same_rows_shown_again_are_not_drawn_again(
    app, client, make_staff, make_patient, make_infusion, url, table
):
    physician = make_staff("physician")
    patient = make_patient(first_name="Dana", last_name="Drawn")
    run_session(make_infusion(patient=patient, physician=physician), "discharged",
                started_minutes_ago=120, infused_minutes=40)
    db.session.commit()
    browser = app.test_client()
    assert login(browser, physician.username).status_code == 302
    page(browser, f"/patients/{patient.id}")  # an entry for the audit log's table
    viewer = make_staff("admin") if "audit" in url else physician
    assert login(client, viewer.username).status_code == 302
    with drawings(app) as drawn:
        first = page(client, url)
        second = page(client, url)
    assert drawn.count(table) == 1, drawn
    assert first.count("<tr") == second.count("<tr") > 1


def test_search_results_show_a_renamed_and_an_archived_patient(client, login_as, make_patient):
    nurse = login_as("np")
    patient = make_patient(first_name="Dana", last_name="Drawn", mrn="MRN-4242")
    db.session.commit()
    assert "Drawn, Dana" in page(client, "/patients/?q=MRN-4242&archived=y")
    rename_patient(patient, nurse, last_name="Redrawn")
    assert "Redrawn, Dana" in page(client, "/patients/?q=MRN-4242&archived=y")
    patients.archive_patient(patient, nurse)
    db.session.commit()
    assert "Archived" in page(client, "/patients/?q=MRN-4242&archived=y")


def test_the_review_queue_shows_each_change_to_a_row(
    client, login_as, make_staff, make_patient, make_infusion
):
    physician = login_as("physician")
    patient = make_patient(first_name="Dana", last_name="Drawn")
    infusion = run_session(make_infusion(patient=patient, physician=physician), "discharged",
                           started_minutes_ago=120, infused_minutes=40)
    db.session.commit()
    assert "Routine" in page(client, "/review/")
    adverse_events.record_adverse_event(
        infusion,
        {"event_type": "nausea", "severity": "mild", "infusion_action": "none",
         "onset_at": utcnow() - timedelta(minutes=2)},
        infusion.clinician,
    )
    db.session.commit()
    assert "Adverse event" in page(client, "/review/")
    admin.update_staff(infusion.clinician, "Renamed Clinician", "RN", make_staff("admin"))
    db.session.commit()
    assert "Renamed Clinician, RN" in page(client, "/review/")
    rename_patient(patient, physician, last_name="Redrawn")
    assert "Redrawn, Dana" in page(client, "/review/")


def test_the_audit_log_shows_names_and_mrns_as_they_are_now(
    app, client, login_as, make_staff, make_patient
):
    nurse = make_staff("np", full_name="Nia Nurse", credentials="APRN")
    patient = make_patient(mrn="MRN-5150")
    db.session.commit()
    browser = app.test_client()
    login(browser, nurse.username)
    page(browser, f"/patients/{patient.id}")
    office = login_as("admin")

    def table():
        html = page(client, "/admin/audit?action=patient.viewed")
        return html[html.index('<table class="audit-table">') :]  # not the filter's names

    first = table()
    assert "Nia Nurse, APRN" in first and "MRN-5150" in first
    admin.update_staff(nurse, "Nia Renamed", "APRN", office)
    db.session.commit()
    assert "Nia Renamed, APRN" in table()
    rename_patient(patient, nurse, mrn="MRN-6160")
    assert "MRN-6160" in table()
