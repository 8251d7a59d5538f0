"""The session lifecycle: planning, the state machine, the start gate and dose maximum, events,
discharge, cancel, optimistic locking and the audit trail (SPEC §3)."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.errors import RuleError, StaleRecord
from infusion_tracker.extensions import db
from infusion_tracker.infusions import lifecycle, queries, readings
from infusion_tracker.models import InfusionEvent, InfusionSession
from infusion_tracker.timeutil import utcnow
from tests.conftest import add_reading, audit_rows, run_session

CHECKLIST = {
    "consent_on_file": True,
    "npo_confirmed": True,
    "escort_name": "Sam Driver",
    "pregnancy_status": "not_applicable",
    "med_allergy_review_done": True,
}


def checked(html, name):
    """The value of the checked radio button called `name`, or None."""
    for tag in re.findall(rf'<input[^>]*name="{name}"[^>]*>', html):
        if re.search(r"\schecked[\s>]", tag):
            return int(re.search(r'value="(\d+)"', tag).group(1))
    return None


@pytest.fixture
def protocol(make_protocol):
    return make_protocol()


@pytest.fixture
def new_infusion(make_infusion, protocol):
    """make_infusion under one shared protocol (protocol names are unique per version)."""

    def make(**fields):
        return make_infusion(**{"protocol": protocol, **fields})

    return make


@pytest.fixture
def np_staff(make_staff):
    return make_staff("np")


@pytest.fixture
def physician(make_staff):
    return make_staff("physician")


@pytest.fixture
def checked_in(new_infusion, np_staff, physician):
    """Checked in an hour ago, checklist complete, a fresh baseline within start limits."""
    infusion = new_infusion(clinician=np_staff, physician=physician, **CHECKLIST)
    run_session(infusion, "checked_in", checked_in_minutes_ago=60)
    add_reading(infusion, np_staff, minutes_ago=5, phase="baseline")
    return infusion


@pytest.fixture
def checked_in_now(new_infusion):
    """A session checked in through the lifecycle a few minutes ago, with `fields`."""

    def make(**fields):
        return run_session(new_infusion(**fields), "checked_in", checked_in_minutes_ago=3)

    return make


def started(infusion, actor, minutes_ago):
    """Start the infusion `minutes_ago` through the service (so its start event exists), with a
    baseline taken just before."""
    add_reading(infusion, actor, minutes_ago=minutes_ago + 2, phase="baseline")
    lifecycle.start_infusion(infusion, actor, at=utcnow() - timedelta(minutes=minutes_ago))
    db.session.commit()
    return infusion


# --- Planning ---------------------------------------------------------------------------------


def test_plan_numbers_the_series_and_copies_the_protocol_dose(
    make_patient, make_protocol, new_infusion, np_staff, physician
):
    patient = make_patient()
    protocol = make_protocol(name="Two mg/mL", concentration_mg_per_ml=2)
    new_infusion(patient=patient, protocol=protocol)
    infusion = lifecycle.plan_infusion(
        patient,
        {
            "protocol_id": protocol.id,
            "clinician_id": np_staff.id,
            "physician_id": physician.id,
            "weight_kg": 80.0,
            "room": "Room 2",
        },
        np_staff,
    )
    db.session.commit()
    assert infusion.series_number == 2
    assert infusion.status == "planned"
    assert (infusion.dose_mg_per_kg, infusion.duration_min) == (0.5, 40)
    assert infusion.concentration_mg_per_ml == 2
    assert infusion.total_mg == 40.0
    [row] = audit_rows("session.planned")
    assert row.patient_id == patient.id
    assert row.details["after"]["total_mg"] == 40.0


def test_plan_keeps_a_changed_dose_and_leaves_total_empty_without_weight(
    make_patient, make_protocol, np_staff, physician
):
    protocol = make_protocol()
    infusion = lifecycle.plan_infusion(
        make_patient(),
        {
            "protocol_id": protocol.id,
            "clinician_id": np_staff.id,
            "physician_id": physician.id,
            "dose_mg_per_kg": 0.75,
            "duration_min": 60,
        },
        np_staff,
    )
    assert (infusion.dose_mg_per_kg, infusion.duration_min, infusion.total_mg) == (0.75, 60, None)


def test_plan_refuses_a_non_physician_supervisor_and_an_archived_patient(
    make_patient, make_protocol, np_staff
):
    protocol = make_protocol()
    data = {"protocol_id": protocol.id, "clinician_id": np_staff.id, "physician_id": np_staff.id}
    with pytest.raises(RuleError, match="Supervising physician"):
        lifecycle.plan_infusion(make_patient(), data, np_staff)
    with pytest.raises(RuleError, match="archived"):
        lifecycle.plan_infusion(make_patient(active=False), data, np_staff)


# --- Details and optimistic locking -----------------------------------------------------------


def test_update_audits_before_and_after_and_bumps_the_version(new_infusion, np_staff):
    infusion = new_infusion()
    version = infusion.version
    changed = lifecycle.update_infusion(
        infusion,
        {"consent_on_file": True, "weight_kg": 90.0, "lot_number": "K123"},
        np_staff,
        version,
    )
    db.session.commit()
    assert set(changed) == {"consent_on_file", "weight_kg", "lot_number", "total_mg"}
    assert infusion.total_mg == 45.0
    assert infusion.version == version + 1
    assert infusion.updated_by_id == np_staff.id
    [row] = audit_rows("session.updated")
    assert row.details["before"]["weight_kg"] == 70.0
    assert row.details["after"]["weight_kg"] == 90.0
    assert row.patient_id == infusion.patient_id


def test_update_with_nothing_changed_writes_nothing(new_infusion, np_staff):
    infusion = new_infusion()
    version = infusion.version
    assert lifecycle.update_infusion(infusion, {"weight_kg": 70.0}, np_staff, version) == {}
    db.session.commit()
    assert infusion.version == version
    assert audit_rows("session.updated") == []


def test_stale_version_is_refused_not_overwritten(new_infusion, np_staff):
    infusion = new_infusion()
    old = infusion.version
    lifecycle.update_infusion(infusion, {"notes": "first"}, np_staff, old)
    db.session.commit()
    with pytest.raises(StaleRecord) as stale:
        lifecycle.update_infusion(infusion, {"notes": "second"}, np_staff, old)
    assert np_staff.full_name in stale.value.changed_by
    db.session.rollback()
    assert infusion.notes == "first"


def test_dose_cannot_change_after_the_start(checked_in, np_staff):
    started(checked_in, np_staff, 5)
    with pytest.raises(RuleError, match="rate change"):
        lifecycle.update_infusion(checked_in, {"weight_kg": 95.0}, np_staff, checked_in.version)
    # The rest of the details still change.
    lifecycle.update_infusion(
        checked_in,
        {"weight_kg": 70.0, "iv_site": "left antecubital"},
        np_staff,
        checked_in.version,
    )
    assert checked_in.iv_site == "left antecubital"


def test_signed_session_is_locked(new_infusion, np_staff, physician):
    infusion = run_session(new_infusion(physician=physician), "signed", started_minutes_ago=180)
    with pytest.raises(RuleError, match="signed"):
        lifecycle.update_infusion(infusion, {"notes": "late"}, np_staff, infusion.version)
    with pytest.raises(RuleError, match="signed"):
        lifecycle.cancel_infusion(infusion, np_staff, "no")


# --- Check in ---------------------------------------------------------------------------------


def test_check_in_needs_a_free_room(new_infusion, np_staff):
    run_session(new_infusion(room="Room 1"), "infusing")
    infusion = new_infusion(room="")
    with pytest.raises(RuleError, match="Choose a room"):
        lifecycle.check_in(infusion, np_staff)
    infusion.room = "Room 1"
    with pytest.raises(RuleError, match="Room 1 is in use"):
        lifecycle.check_in(infusion, np_staff)
    infusion.room = "Room 2"
    lifecycle.check_in(infusion, np_staff)
    db.session.commit()
    assert infusion.status == "checked_in"
    assert infusion.checked_in_at is not None
    assert audit_rows("session.checked_in")[-1].patient_id == infusion.patient_id


def test_actions_out_of_order_are_refused_with_the_state(new_infusion, np_staff):
    infusion = new_infusion()
    with pytest.raises(RuleError, match="not possible while the session is planned"):
        lifecycle.start_infusion(infusion, np_staff)
    with pytest.raises(RuleError, match="not possible while the session is planned"):
        lifecycle.discharge(infusion, {}, np_staff)
    with pytest.raises(RuleError, match="only while infusing"):
        lifecycle.change_rate(infusion, np_staff, 40, "why")


# --- The start gate and the dose maximum ------------------------------------------------------


def test_start_gate_lists_what_is_missing(checked_in_now, np_staff):
    infusion = checked_in_now()
    with pytest.raises(RuleError) as refused:
        lifecycle.start_infusion(infusion, np_staff)
    message = str(refused.value)
    assert "Consent on file" in message
    assert "No baseline reading" in message
    assert infusion.status == "checked_in"


def test_start_with_everything_ready_records_the_event_and_rate(checked_in, np_staff):
    event = lifecycle.start_infusion(checked_in, np_staff)
    db.session.commit()
    assert checked_in.status == "infusing"
    assert event.kind == "start"
    assert event.rate_mg_per_h == 52.5  # 70 kg x 0.5 mg/kg = 35 mg over 40 min
    assert checked_in.start_override_reason == ""
    [row] = audit_rows("session.started")
    assert row.details["total_mg"] == 35.0
    assert row.details["ml_per_h"] == 52.5


def test_baseline_outside_start_limits_or_stale_closes_the_gate(checked_in, np_staff):
    add_reading(checked_in, np_staff, minutes_ago=1, phase="baseline", systolic=172)
    with pytest.raises(RuleError, match="above the start limit"):
        lifecycle.start_infusion(checked_in, np_staff)


def test_voided_baseline_does_not_count(checked_in_now, np_staff):
    infusion = checked_in_now(**CHECKLIST)
    reading = add_reading(infusion, np_staff, minutes_ago=2, phase="baseline")
    readings.void_reading(reading, np_staff, "wrong patient")
    db.session.commit()
    with pytest.raises(RuleError, match="No baseline"):
        lifecycle.start_infusion(infusion, np_staff)


def test_only_a_physician_overrides_the_gate_and_it_is_stored(checked_in_now, np_staff, physician):
    infusion = checked_in_now()
    with pytest.raises(RuleError, match="Only a physician"):
        lifecycle.start_infusion(infusion, np_staff, override_reason="Patient anxious to start")
    lifecycle.start_infusion(infusion, physician, override_reason="Consent re-signed on paper")
    db.session.commit()
    assert infusion.status == "infusing"
    assert infusion.start_override_reason == "Consent re-signed on paper"
    assert infusion.start_override_by_id == physician.id
    [row] = audit_rows("session.start_override")
    assert row.patient_id == infusion.patient_id
    assert any("Consent" in problem for problem in row.details["problems"])


def test_dose_above_the_maximum_needs_a_physician_override(checked_in_now, np_staff, physician):
    infusion = checked_in_now(weight_kg=250.0, total_mg=125.0, **CHECKLIST)
    add_reading(infusion, np_staff, minutes_ago=2, phase="baseline")
    with pytest.raises(RuleError, match="above the protocol maximum"):
        lifecycle.start_infusion(infusion, np_staff)
    with pytest.raises(RuleError, match="Only a physician"):
        lifecycle.start_infusion(infusion, np_staff, override_reason="big patient")
    lifecycle.start_infusion(infusion, physician, override_reason="Reviewed: 125 mg intended")
    db.session.commit()
    assert infusion.dose_override_reason == "Reviewed: 125 mg intended"
    assert infusion.dose_override_by_id == physician.id
    assert infusion.start_override_reason == ""  # the gate itself was open
    [row] = audit_rows("session.dose_override")
    assert (row.details["total_mg"], row.details["max_total_mg"]) == (125.0, 100.0)


def test_start_without_weight_is_refused_even_with_an_override(checked_in_now, physician):
    infusion = checked_in_now(weight_kg=None)
    with pytest.raises(RuleError, match="Record the weight"):
        lifecycle.start_infusion(infusion, physician, override_reason="go")


# --- Pause, resume, rate, stop ----------------------------------------------------------------


def test_pause_needs_a_reason_then_resume(checked_in, np_staff):
    started(checked_in, np_staff, 10)
    with pytest.raises(RuleError, match="reason for the pause"):
        lifecycle.pause_infusion(checked_in, np_staff, "  ")
    lifecycle.pause_infusion(checked_in, np_staff, "Nausea")
    assert checked_in.status == "paused"
    lifecycle.resume_infusion(checked_in, np_staff)
    db.session.commit()
    assert checked_in.status == "infusing"
    assert [e.kind for e in checked_in.events] == ["start", "pause", "resume"]
    assert checked_in.events[1].reason == "Nausea"
    assert [r.action for r in audit_rows() if r.action.startswith("session.")][-2:] == [
        "session.paused",
        "session.resumed",
    ]


def test_rate_change_is_an_event_with_the_new_rate(checked_in, np_staff):
    started(checked_in, np_staff, 10)
    with pytest.raises(RuleError, match="reason"):
        lifecycle.change_rate(checked_in, np_staff, 40.0, "")
    with pytest.raises(RuleError, match="above 0"):
        lifecycle.change_rate(checked_in, np_staff, 0, "slow")
    lifecycle.change_rate(checked_in, np_staff, 40.0, "BP rising")
    db.session.commit()
    event = checked_in.events[-1]
    assert (event.kind, event.rate_mg_per_h, event.reason) == ("rate_change", 40.0, "BP rising")
    assert queries.pump_run(checked_in, utcnow()).rate_mg_per_h == 40.0
    [row] = audit_rows("session.rate_changed")
    assert (row.details["before"], row.details["after"]) == (52.5, 40.0)


def test_stopping_before_the_planned_duration_needs_a_reason(checked_in, np_staff):
    started(checked_in, np_staff, 10)
    with pytest.raises(RuleError, match="ran 10 of the planned 40 minutes"):
        lifecycle.stop_infusion(checked_in, np_staff)
    lifecycle.stop_infusion(checked_in, np_staff, reason="Patient request")
    db.session.commit()
    assert checked_in.status == "recovery"
    assert checked_in.ended_at is not None
    assert checked_in.events[-1].kind == "stop"
    [row] = audit_rows("session.stopped")
    assert row.details["early"] is False
    assert row.details["reason"] == "Patient request"


def test_routine_stop_after_the_planned_duration_needs_no_reason(checked_in, np_staff):
    started(checked_in, np_staff, 41)
    lifecycle.stop_infusion(checked_in, np_staff)
    assert checked_in.status == "recovery"


def test_paused_time_does_not_count_as_infused(checked_in, np_staff):
    started(checked_in, np_staff, 45)
    now = utcnow()
    lifecycle.pause_infusion(checked_in, np_staff, "Agitation", at=now - timedelta(minutes=30))
    lifecycle.resume_infusion(checked_in, np_staff, at=now - timedelta(minutes=20))
    assert round(queries.pump_run(checked_in, now).minutes) == 35
    with pytest.raises(RuleError, match="ran 35 of the planned 40"):
        lifecycle.stop_infusion(checked_in, np_staff, at=now)


def test_stop_early_for_an_adverse_event(checked_in, np_staff):
    started(checked_in, np_staff, 10)
    lifecycle.stop_infusion(checked_in, np_staff, early=True)
    assert checked_in.status == "stopped_early"
    assert checked_in.events[-1].reason == "Stopped for an adverse event"


def test_events_cannot_be_in_the_future_or_out_of_order(checked_in, np_staff):
    started(checked_in, np_staff, 10)
    with pytest.raises(RuleError, match="future"):
        lifecycle.pause_infusion(checked_in, np_staff, "x", at=utcnow() + timedelta(minutes=30))
    with pytest.raises(RuleError, match="cannot be before"):
        lifecycle.pause_infusion(checked_in, np_staff, "x", at=utcnow() - timedelta(minutes=20))


# --- Discharge --------------------------------------------------------------------------------

GOOD_ALDRETE = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}


@pytest.fixture
def in_recovery(new_infusion, np_staff):
    def make(ended_minutes_ago=35, **fields):
        return run_session(
            new_infusion(clinician=np_staff, **fields),
            "recovery",
            started_minutes_ago=ended_minutes_ago + 40,
            checked_in_minutes_ago=ended_minutes_ago + 60,
        )

    return make


def test_discharge_respects_the_minimum_observation(in_recovery, np_staff):
    infusion = in_recovery(ended_minutes_ago=20)
    with pytest.raises(RuleError, match="30 minutes: 10 minutes remain"):
        lifecycle.discharge(infusion, {**GOOD_ALDRETE, "escort": "Sam"}, np_staff)


def test_discharge_below_nine_needs_a_reason_and_an_escort(in_recovery, np_staff):
    infusion = in_recovery()
    low = {**GOOD_ALDRETE, "activity": 1, "respiration": 1}
    with pytest.raises(RuleError, match="8 of 10"):
        lifecycle.discharge(infusion, {**low, "escort": "Sam"}, np_staff)
    with pytest.raises(RuleError, match="escort"):
        lifecycle.discharge(infusion, {**GOOD_ALDRETE, "escort": " "}, np_staff)
    with pytest.raises(RuleError, match="Aldrete"):
        lifecycle.discharge(infusion, {"activity": 2, "escort": "Sam"}, np_staff)
    lifecycle.discharge(
        infusion,
        {**low, "escort": "Sam", "override_reason": "Baseline mobility: uses a cane"},
        np_staff,
    )
    db.session.commit()
    assert infusion.status == "discharged"
    assert infusion.aldrete_total == 8
    assert infusion.aldrete == low
    assert infusion.discharge_override_reason == "Baseline mobility: uses a cane"
    assert infusion.discharged_by_id == np_staff.id
    [row] = audit_rows("session.discharged")
    assert row.details["aldrete_total"] == 8


def test_discharge_with_a_good_score_stores_no_override(in_recovery, np_staff):
    infusion = in_recovery()
    lifecycle.discharge(
        infusion, {**GOOD_ALDRETE, "escort": "Sam", "override_reason": "unneeded"}, np_staff
    )
    assert infusion.discharge_override_reason == ""
    assert infusion.discharge_escort == "Sam"
    assert infusion.discharged_at is not None


# --- Cancel -----------------------------------------------------------------------------------


def test_cancel_needs_a_reason_and_only_before_the_start(new_infusion, checked_in, np_staff):
    infusion = new_infusion()
    with pytest.raises(RuleError, match="reason"):
        lifecycle.cancel_infusion(infusion, np_staff, "")
    lifecycle.cancel_infusion(infusion, np_staff, "Patient unwell with flu")
    db.session.commit()
    assert (infusion.status, infusion.cancel_reason) == ("cancelled", "Patient unwell with flu")
    assert db.session.get(InfusionSession, infusion.id) is not None  # never deleted
    started(checked_in, np_staff, 5)
    with pytest.raises(RuleError, match="not possible while the session is infusing"):
        lifecycle.cancel_infusion(checked_in, np_staff, "changed mind")


# --- Through the routes -----------------------------------------------------------------------


def post(client, path, **data):
    return client.post(path, data=data)


def test_plan_page_creates_a_session(client, login_as, make_patient, make_protocol, make_staff):
    staff = login_as("np")
    physician = make_staff("physician")
    patient = make_patient()
    protocol = make_protocol()
    page = client.get(f"/patients/{patient.id}/infusions/new")
    assert page.status_code == 200
    assert protocol.label in page.get_data(as_text=True)
    response = post(
        client,
        f"/patients/{patient.id}/infusions/new",
        protocol_id=protocol.id,
        scheduled_for="2030-01-02T09:30",
        room="Room 3",
        clinician_id=staff.id,
        physician_id=physician.id,
        weight="72.4",
    )
    assert response.status_code == 302
    infusion = db.session.scalar(sa.select(InfusionSession))
    assert response.headers["Location"] == f"/infusions/{infusion.id}"
    assert infusion.weight_kg == 72.4
    assert infusion.total_mg == 36.2
    # 09:30 in New York in January is 14:30 UTC.
    assert infusion.scheduled_for.hour == 14 and infusion.scheduled_for.minute == 30


def test_plan_form_refusal_keeps_what_was_typed(client, login_as, make_patient, make_protocol):
    login_as("np")
    patient = make_patient()
    make_protocol()
    response = post(
        client, f"/patients/{patient.id}/infusions/new", weight="900", notes="Typed note"
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Weight must be between 20 and 400 kg." in html
    assert "Choose a protocol." in html
    assert "Typed note" in html
    assert 'value="900"' in html


@pytest.mark.parametrize("app_config", [{"UNITS": "us"}])
def test_weight_in_pounds_is_stored_in_kilograms(client, login_as, new_infusion):
    login_as("np")
    infusion = new_infusion(weight_kg=None, total_mg=None)
    response = post(
        client,
        f"/infusions/{infusion.id}/edit",
        **{"details-version": infusion.version, "details-weight": "154"},
    )
    assert response.status_code == 302
    assert infusion.weight_kg == 69.85
    assert infusion.total_mg == 34.92
    page = client.get(f"/infusions/{infusion.id}").get_data(as_text=True)
    assert "Weight (lb)" in page
    assert 'value="154.0"' in page
    too_light = post(
        client,
        f"/infusions/{infusion.id}/edit",
        **{"details-version": infusion.version, "details-weight": "30"},
    )
    assert "Weight must be between 44 and 882 lb." in too_light.get_data(as_text=True)


def test_stale_click_answers_409_and_changes_nothing(client, login_as, new_infusion):
    staff = login_as("np")
    infusion = new_infusion()
    old = infusion.version
    lifecycle.update_infusion(infusion, {"notes": "changed elsewhere"}, staff, old)
    db.session.commit()
    response = post(client, f"/infusions/{infusion.id}/check-in", **{"checkin-version": old})
    assert response.status_code == 409
    assert staff.full_name in response.get_data(as_text=True)
    assert infusion.status == "planned"


def test_lifecycle_through_the_buttons(client, login_as, new_infusion, app):
    staff = login_as("np")
    infusion = new_infusion(room="Room 4", **CHECKLIST)
    url = f"/infusions/{infusion.id}"
    assert (
        post(client, f"{url}/check-in", **{"checkin-version": infusion.version}).status_code == 302
    )
    assert infusion.status == "checked_in"
    add_reading(infusion, staff, phase="baseline")  # taken now, after the check-in
    assert post(client, f"{url}/start", **{"start-version": infusion.version}).status_code == 302
    assert infusion.status == "infusing"
    response = post(
        client,
        f"{url}/rate",
        **{"rate-version": infusion.version, "rate-mg_per_h": "45", "rate-reason": "BP up"},
    )
    assert response.status_code == 302
    response = post(
        client, f"{url}/pause", **{"pause-version": infusion.version, "pause-reason": "Nausea"}
    )
    assert response.status_code == 302
    assert post(client, f"{url}/resume", **{"resume-version": infusion.version}).status_code == 302
    refused = post(client, f"{url}/stop", **{"stop-version": infusion.version})
    assert refused.status_code == 422
    assert "give the reason for stopping early" in refused.get_data(as_text=True)
    response = post(
        client,
        f"{url}/stop",
        **{"stop-version": infusion.version, "stop-reason": "Patient request"},
    )
    assert response.status_code == 302
    assert infusion.status == "recovery"
    assert [e.kind for e in infusion.events] == ["start", "rate_change", "pause", "resume", "stop"]
    actions = [row.action for row in audit_rows() if row.action.startswith("session.")]
    assert actions == [
        "session.checked_in",
        "session.started",
        "session.rate_changed",
        "session.paused",
        "session.resumed",
        "session.stopped",
    ]
    assert all(row.patient_id == infusion.patient_id for row in audit_rows("session.stopped"))


def test_start_refusal_is_said_on_the_page(client, login_as, checked_in_now):
    login_as("np")
    infusion = checked_in_now()
    response = post(
        client,
        f"/infusions/{infusion.id}/start",
        **{"start-version": infusion.version, "start-override_reason": "trust me"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Only a physician may override" in html
    assert infusion.status == "checked_in"


def test_empty_action_post_comes_back_as_a_form_error(client, login_as, new_infusion):
    login_as("pa")
    infusion = new_infusion()
    response = client.post(f"/infusions/{infusion.id}/check-in", data={})
    assert response.status_code == 422
    assert "The form is incomplete" in response.get_data(as_text=True)
    assert infusion.status == "planned"


def test_an_action_the_state_does_not_allow_answers_409(client, login_as, new_infusion):
    login_as("pa")
    infusion = new_infusion()
    response = client.post(f"/infusions/{infusion.id}/pause", data={})
    assert response.status_code == 409
    assert "Pause infusion is not possible while the session is planned" in response.get_data(
        as_text=True
    )
    response = client.post(f"/infusions/{infusion.id}/rate", data={})
    assert response.status_code == 409
    assert "only while infusing" in response.get_data(as_text=True)


def test_cancel_through_the_page(client, login_as, new_infusion):
    login_as("np")
    infusion = new_infusion()
    response = post(
        client,
        f"/infusions/{infusion.id}/cancel",
        **{"cancel-version": infusion.version, "cancel-reason": "No driver today"},
    )
    assert response.status_code == 302
    assert infusion.status == "cancelled"
    assert "No driver today" in client.get(f"/infusions/{infusion.id}").get_data(as_text=True)


def test_discharge_form_is_prefilled_from_the_last_reading(
    client, login_as, new_infusion, in_recovery
):
    staff = login_as("np")
    infusion = in_recovery(escort_name="Sam Driver")
    add_reading(infusion, staff, minutes_ago=80, phase="baseline", systolic=120)
    add_reading(infusion, staff, minutes_ago=2, phase="recovery", systolic=126, avpu="A")
    page = client.get(f"/infusions/{infusion.id}/discharge").get_data(as_text=True)
    # SBP 126 vs baseline 120, alert, SpO2 98 % on room air; activity is the clinician's.
    assert (checked(page, "circulation"), checked(page, "consciousness")) == (2, 2)
    assert checked(page, "spo2") == 2
    assert checked(page, "activity") is None
    assert 'value="Sam Driver"' in page
    response = post(
        client,
        f"/infusions/{infusion.id}/discharge",
        version=infusion.version,
        escort="Sam Driver",
        **GOOD_ALDRETE,
    )
    assert response.status_code == 302
    assert infusion.status == "discharged"


def test_discharge_too_soon_keeps_the_answers(client, login_as, in_recovery):
    login_as("np")
    infusion = in_recovery(ended_minutes_ago=10)
    response = post(
        client,
        f"/infusions/{infusion.id}/discharge",
        version=infusion.version,
        escort="Sam Driver",
        **GOOD_ALDRETE,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "20 minutes remain" in html
    assert checked(html, "activity") == 2
    assert infusion.status == "recovery"


def test_discharge_low_score_without_reason_is_a_form_error(client, login_as, in_recovery):
    login_as("np")
    infusion = in_recovery()
    response = post(
        client,
        f"/infusions/{infusion.id}/discharge",
        version=infusion.version,
        escort="Sam",
        **{**GOOD_ALDRETE, "activity": 0},
    )
    assert response.status_code == 422
    assert "The score is 8 of 10" in response.get_data(as_text=True)


def test_discharge_page_on_a_planned_session_goes_back(client, login_as, new_infusion):
    login_as("np")
    infusion = new_infusion()
    response = client.get(f"/infusions/{infusion.id}/discharge")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/infusions/{infusion.id}"
    response = post(
        client,
        f"/infusions/{infusion.id}/discharge",
        version=infusion.version,
        escort="Sam",
        **GOOD_ALDRETE,
    )
    assert response.status_code == 409
    assert "Discharge is not possible while the session is planned" in response.get_data(
        as_text=True
    )


def test_signed_session_refuses_edits_and_discharge(client, login_as, new_infusion, make_staff):
    login_as("np")
    infusion = new_infusion(physician=make_staff("physician"))
    run_session(infusion, "signed", started_minutes_ago=180)
    response = post(
        client,
        f"/infusions/{infusion.id}/edit",
        **{"details-version": infusion.version, "details-notes": "late"},
    )
    assert response.status_code == 409
    assert "signed and is locked" in response.get_data(as_text=True)
    assert client.get(f"/infusions/{infusion.id}/discharge").status_code == 409
    assert infusion.notes == ""


def test_admin_cannot_open_or_act_on_sessions(client, login_as, new_infusion):
    login_as("admin")
    infusion = new_infusion()
    assert client.get(f"/infusions/{infusion.id}").status_code == 403
    assert (
        client.post(
            f"/infusions/{infusion.id}/check-in", data={"checkin-version": infusion.version}
        ).status_code
        == 403
    )
    assert infusion.status == "planned"


def test_start_event_rows_are_shown(client, login_as, checked_in):
    staff = login_as("np")
    started(checked_in, staff, 5)
    events = db.session.scalars(sa.select(InfusionEvent)).all()
    assert len(events) == 1
    html = client.get(f"/infusions/{checked_in.id}").get_data(as_text=True)
    assert "Infusion started" in html
    assert "52.5" in html
