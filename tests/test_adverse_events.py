"""Adverse events on the session page (SPEC §2): recorded, pausing or stopping the infusion,
answering a critical reading, voided and corrected; refused on signed sessions."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.infusions import adverse_events as ae_services
from infusion_tracker.infusions import readings as reading_services
from infusion_tracker.models import AdverseEvent, InfusionEvent
from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import audit_rows, login, section


def wall(minutes_ago: float = 0) -> str:
    return to_clinic(utcnow() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")


def ae_data(minutes_ago: float = 1, **values) -> dict:
    data = {
        "ae-onset_at": wall(minutes_ago),
        "ae-event_type": "hypertension",
        "ae-severity": "moderate",
        "ae-infusion_action": "none",
    }
    data.update({f"ae-{name}": str(value) for name, value in values.items()})
    return data


def events_of(infusion) -> list[AdverseEvent]:
    return db.session.scalars(
        sa.select(AdverseEvent)
        .where(AdverseEvent.infusion_id == infusion.id)
        .order_by(AdverseEvent.id)
    ).all()


def infusion_events(infusion, kind: str) -> list[InfusionEvent]:
    return db.session.scalars(
        sa.select(InfusionEvent).where(
            InfusionEvent.infusion_id == infusion.id, InfusionEvent.kind == kind
        )
    ).all()


@pytest.fixture
def charted_baseline():
    return False  # these tests count the session's readings from none


def post_ae(client, infusion, minutes_ago=1, **values):
    return client.post(
        f"/infusions/{infusion.id}/adverse-events", data=ae_data(minutes_ago, **values)
    )


def record(infusion, staff, **values):
    data = {
        "onset_at": utcnow() - timedelta(minutes=2),
        "event_type": "nausea",
        "severity": "mild",
        "infusion_action": "none",
        **values,
    }
    event = ae_services.record_adverse_event(infusion, data, staff)
    db.session.commit()
    return event


def test_an_adverse_event_is_recorded_audited_and_listed(client, infusing, nurse):
    response = post_ae(
        client,
        infusing,
        event_type="nausea",
        severity="mild",
        intervention="Ondansetron given",
        intervention_drug="ondansetron",
        intervention_dose="4 mg IV",
        physician_notified="y",
        outcome="Settled in 10 minutes",
    )
    assert response.status_code == 302
    (event,) = events_of(infusing)
    assert (event.event_type, event.severity, event.infusion_action) == ("nausea", "mild", "none")
    assert event.physician_notified and not event.serious
    assert event.intervention_dose == "4 mg IV" and event.recorded_by_id == nurse.id
    (entry,) = audit_rows("adverse_event.recorded")
    assert entry.patient_id == infusing.patient_id and entry.details["event_type"] == "nausea"
    assert infusing.status == "infusing"
    listing = section(
        client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "adverse-events"
    )
    assert "Nausea" in listing and "Mild" in listing and "ondansetron 4 mg IV" in listing
    assert "Physician notified" in listing


def test_a_refused_adverse_event_comes_back_as_typed(client, infusing):
    response = client.post(
        f"/infusions/{infusing.id}/adverse-events",
        data={
            "ae-onset_at": wall(1),
            "ae-event_type": "other",
            "ae-intervention": "Reassured",
            "ae-infusion_action": "none",
        },
    )
    assert response.status_code == 422
    form = section(response.get_data(as_text=True), "adverse-events")
    assert "There is a problem" in form
    assert "Describe the other type of event." in form and "Choose the severity." in form
    assert re.search(r'<option selected value="other">', form)
    assert "Reassured</textarea>" in form
    assert events_of(infusing) == []


def test_an_onset_in_the_future_is_refused(client, infusing):
    response = post_ae(client, infusing, minutes_ago=-30)
    assert "The onset time cannot be in the future." in response.get_data(as_text=True)
    assert events_of(infusing) == []


def test_paused_pauses_the_infusion(client, infusing):
    response = post_ae(
        client,
        infusing,
        event_type="emergence_reaction",
        severity="moderate",
        infusion_action="paused",
    )
    assert response.status_code == 302
    assert infusing.status == "paused"
    (pause,) = infusion_events(infusing, "pause")
    assert pause.reason == "Adverse event: Emergence reaction / dissociation distress"
    assert len(audit_rows("session.paused")) == 1
    assert events_of(infusing)[0].infusion_action == "paused"


def test_stopped_stops_the_infusion_early(client, infusing):
    response = post_ae(
        client,
        infusing,
        event_type="hypertension",
        severity="severe",
        serious="y",
        infusion_action="stopped",
    )
    assert response.status_code == 302
    assert infusing.status == "stopped_early" and infusing.ended_at is not None
    (stop,) = infusion_events(infusing, "stop")
    assert stop.reason == "Adverse event: Hypertension"
    listing = section(
        client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "adverse-events"
    )
    assert "SERIOUS" in listing and "Severe" in listing and "Stopped" in listing


def test_stopped_also_works_while_paused(client, infusing, nurse):
    record(infusing, nurse, infusion_action="paused")
    assert infusing.status == "paused"
    assert post_ae(client, infusing, infusion_action="stopped").status_code == 302
    assert infusing.status == "stopped_early"


def test_pausing_what_is_not_running_is_refused_beside_the_choice(client, infusing, nurse):
    record(infusing, nurse, infusion_action="paused")
    response = post_ae(client, infusing, infusion_action="paused", outcome="kept")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="ae-infusion_action-error"' in html
    assert "The infusion cannot be paused now: the session is paused." in html
    assert "kept</textarea>" in html
    assert len(events_of(infusing)) == 1 and len(infusion_events(infusing, "pause")) == 1


def test_an_event_for_a_critical_reading_answers_it(client, infusing, nurse):
    reading = reading_services.record_reading(
        infusing,
        {
            "taken_at": utcnow() - timedelta(minutes=2),
            "phase": "infusion",
            "systolic": 190,
            "diastolic": 100,
        },
        nurse,
    )
    db.session.commit()
    page = client.get(f"/infusions/{infusing.id}?ae_reading={reading.id}")
    form = section(page.get_data(as_text=True), "adverse-events")
    assert f'name="ae-reading_id" type="hidden" value="{reading.id}"' in form
    assert "For the critical reading" in form and "SBP 190 ≥ 180" in form
    taken = to_clinic(reading.taken_at).strftime("%Y-%m-%dT%H:%M")
    assert re.search(r'name="ae-onset_at"[^>]*value="' + taken, form)

    response = post_ae(client, infusing, reading_id=reading.id, intervention="Labetalol")
    assert response.status_code == 302
    (event,) = events_of(infusing)
    assert event.reading_id == reading.id
    assert reading.critical_action == "adverse_event"
    assert reading.critical_action_by_id == nurse.id
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    assert 'id="critical-actions"' not in html
    assert f'Answered by adverse event <a href="#adverse-event-{event.id}">' in html


def test_a_reading_of_another_session_cannot_be_linked(client, infusing, nurse, make_infusion):
    other = make_infusion(
        status="infusing",
        clinician=nurse,
        protocol=infusing.protocol,
        checked_in_at=utcnow() - timedelta(minutes=30),
        started_at=utcnow() - timedelta(minutes=5),
    )
    foreign = reading_services.record_reading(
        other, {"taken_at": utcnow(), "phase": "infusion", "systolic": 190}, nurse
    )
    db.session.commit()
    response = post_ae(client, infusing, reading_id=foreign.id)
    assert response.status_code == 422
    assert "not part of this session" in response.get_data(as_text=True)
    assert foreign.critical_action == ""


def test_void_needs_a_reason_and_reopens_the_reading_it_answered(client, infusing, nurse):
    reading = reading_services.record_reading(
        infusing,
        {"taken_at": utcnow() - timedelta(minutes=2), "phase": "infusion", "spo2": 88},
        nurse,
    )
    db.session.commit()
    event = record(infusing, nurse, event_type="desaturation", reading_id=reading.id)
    assert reading.critical_action == "adverse_event"

    assert client.post(f"/adverse-events/{event.id}/void", data={}).status_code == 302
    assert event.voided_at is None

    response = client.post(
        f"/adverse-events/{event.id}/void",
        data={f"void-ae-{event.id}-reason": "entered on the wrong patient"},
    )
    assert response.status_code == 302
    assert event.voided_at is not None and event.void_reason == "entered on the wrong patient"
    (entry,) = audit_rows("adverse_event.voided")
    assert entry.details["critical_reading_reopened"] == reading.id
    # The critical reading asks for an action again.
    assert reading.critical_action == ""
    html = client.get(f"/infusions/{infusing.id}").get_data(as_text=True)
    assert 'id="critical-actions"' in html
    listing = section(html, "adverse-events")
    assert f'id="adverse-event-{event.id}" class="voided"' in listing
    assert "entered on the wrong patient" in listing


def test_a_correction_replaces_the_event_without_pausing_again(client, infusing, nurse):
    event = record(infusing, nurse, event_type="nausea", infusion_action="paused")
    assert infusing.status == "paused"
    page = client.get(f"/adverse-events/{event.id}/correct")
    assert page.status_code == 200
    assert '<option selected value="nausea">' in page.get_data(as_text=True)

    response = client.post(
        f"/adverse-events/{event.id}/correct",
        data=ae_data(2, event_type="vomiting", severity="moderate", infusion_action="paused"),
    )
    assert response.status_code == 302
    old, new = events_of(infusing)
    assert old.is_voided and old.void_reason == "corrected"
    assert new.corrects_id == old.id and new.event_type == "vomiting"
    assert infusing.status == "paused" and len(infusion_events(infusing, "pause")) == 1
    assert audit_rows("adverse_event.corrected")[0].details["corrects"] == old.id
    listing = section(
        client.get(f"/infusions/{infusing.id}").get_data(as_text=True), "adverse-events"
    )
    assert (
        f"Corrects #{old.id}" in listing
        and f'Corrected by <a href="#adverse-event-{new.id}"' in listing
    )


def test_an_event_after_discharge_is_recorded_but_cannot_pause(client, make_infusion, nurse):
    infusion = make_infusion(
        status="discharged", clinician=nurse, checked_in_at=utcnow() - timedelta(hours=2)
    )
    assert post_ae(client, infusion, event_type="fall", severity="mild").status_code == 302
    response = post_ae(client, infusion, infusion_action="paused")
    assert "cannot be paused now" in response.get_data(as_text=True)
    assert len(events_of(infusion)) == 1


def test_a_signed_session_takes_no_adverse_event(client, infusing, nurse, make_staff):
    event = record(infusing, nurse)
    infusing.signed_at = utcnow()
    infusing.signed_by_id = make_staff("physician").id
    db.session.commit()
    assert post_ae(client, infusing).status_code == 409
    data = {f"void-ae-{event.id}-reason": "typo"}
    assert client.post(f"/adverse-events/{event.id}/void", data=data).status_code == 409
    assert client.get(f"/adverse-events/{event.id}/correct").status_code == 409
    assert len(events_of(infusing)) == 1 and event.voided_at is None


def test_a_planned_session_takes_no_adverse_event(client, make_infusion, nurse):
    infusion = make_infusion(clinician=nurse)
    assert post_ae(client, infusion).status_code == 409
    assert events_of(infusion) == []


def test_admin_may_not_record_adverse_events(app, infusing, make_staff):
    admin = app.test_client()
    login(admin, make_staff("admin").username)
    assert post_ae(admin, infusing).status_code == 403
    assert events_of(infusing) == []
