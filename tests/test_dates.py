"""Far-off and absurd dates: refused at the form with the field's name, and a stored one never
breaks the pages that show it."""

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import AdverseEvent, Assessment, InfusionSession, Patient, Reading
from infusion_tracker.timeutil import clinic_today

FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("when", [FAR_PAST, FAR_FUTURE], ids=["year-1", "year-9999"])
def test_a_stored_absurd_date_never_breaks_the_patient_pages(
    client, login_as, make_patient, make_protocol, make_infusion, when
):
    clinician = login_as("physician")
    patient = make_patient(date_of_birth=date(1, 1, 1))
    protocol = make_protocol()
    planned = make_infusion(patient=patient, protocol=protocol, scheduled_for=when)
    done = make_infusion(
        patient=patient, protocol=protocol, status="discharged", started_at=when, ended_at=when,
        checked_in_at=when, discharged_at=when,
    )
    db.session.add_all([
        Assessment(patient_id=patient.id, instrument="phq9", score=20, taken_at=when,
                   recorded_by=clinician, infusion=done),
        Reading(infusion=done, taken_at=when, phase="baseline", systolic=120, diastolic=80,
                heart_rate=70, recorded_by=clinician),
    ])
    db.session.commit()
    for url in (
        f"/patients/{patient.id}",
        f"/infusions/{planned.id}",
        f"/infusions/{done.id}",
        f"/infusions/{done.id}/print",
        "/",
        "/review/",
    ):
        assert client.get(url).status_code == 200, url


# --- refused at the form, naming the field --------------------------------------------------


@pytest.fixture
def charted_baseline():
    return False  # these tests count the session's readings from none


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0001-01-01T10:00", "The time taken cannot be before 1 Jan 2000."),
        ("9999-12-31T23:30", "The time taken cannot be in the future."),
    ],
)
def test_a_reading_dated_year_1_or_9999_is_refused(client, infusing, typed, message):
    response = client.post(
        f"/infusions/{infusing.id}/readings",
        data={"reading-taken_at": typed, "reading-phase": "infusion", "reading-heart_rate": "70"},
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Reading)) == 0


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0001-01-01T10:00", "The onset time cannot be before 1 Jan 2000."),
        ("9999-12-31T23:30", "The onset time cannot be in the future."),
    ],
)
def test_an_adverse_event_dated_year_1_or_9999_is_refused(client, infusing, typed, message):
    response = client.post(
        f"/infusions/{infusing.id}/adverse-events",
        data={"ae-onset_at": typed, "ae-event_type": "hypertension",
              "ae-severity": "moderate", "ae-infusion_action": "none"},
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AdverseEvent)) == 0


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("9999-01-01T10:00", "The time taken cannot be in the future."),
        ("0001-01-01T10:00", "The time taken cannot be before 1 Jan 2000."),
    ],
)
def test_a_score_dated_9999_or_year_1_is_refused(client, login_as, make_patient, typed, message):
    login_as("np")
    patient = make_patient()
    response = client.post(
        f"/patients/{patient.id}/assessments/new",
        data={"instrument": "phq9", "score": "12", "taken_at": typed},
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Assessment)) == 0


@pytest.mark.parametrize("typed", ["0001-01-01T09:30", "9999-12-31T09:30"])
def test_a_session_planned_for_year_1_or_9999_is_refused(
    client, login_as, make_patient, make_protocol, make_staff, typed
):
    nurse = login_as("np")
    patient, protocol = make_patient(), make_protocol()
    response = client.post(
        f"/patients/{patient.id}/infusions/new",
        data={"protocol_id": protocol.id, "scheduled_for": typed, "clinician_id": nurse.id,
              "physician_id": make_staff("physician").id, "weight": "70"},
    )
    assert response.status_code == 422
    today = clinic_today()
    assert (
        f"Scheduled for must be between {today.day} {today:%b} {today.year - 5} and "
        f"{today.day} {today:%b} {today.year + 5}." in response.get_data(as_text=True)
    )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(InfusionSession)) == 0


@pytest.mark.parametrize("typed", ["1899-12-31", "0001-01-01", "9999-12-31"])
def test_a_date_of_birth_before_1900_or_in_the_future_is_refused(client, login_as, typed):
    login_as("np")
    response = client.post(
        "/patients/new",
        data={"first_name": "Dana", "last_name": "Whitfield", "date_of_birth": typed,
              "sex": "female", "indication": "trd"},
    )
    assert response.status_code == 422
    assert "Date of birth must be between 1900-01-01 and today." in response.get_data(
        as_text=True
    )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Patient)) == 0
