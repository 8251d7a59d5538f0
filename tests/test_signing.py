"""Signing and addenda (SPEC §3 "Signing locks"): only a physician signs, only a discharged
session, once, from the current version, with a recent login; a signed session refuses every
change on every endpoint; addenda are the only addition and are never changed."""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.errors import RuleError
from infusion_tracker.extensions import db
from infusion_tracker.models import (
    Addendum,
    AdverseEvent,
    Assessment,
    InfusionEvent,
    InfusionSession,
    Protocol,
    Reading,
)
from infusion_tracker.review import services
from infusion_tracker.timeutil import to_clinic, utcnow
from tests.conftest import PASSWORD, audit_rows, login

# --- Builders shared by the review tests -------------------------------------------------------


def discharged_session(make_infusion, hours_ago: float = 3, **fields) -> InfusionSession:
    """A session that ran its course: checked in, infused 40 minutes, recovered, discharged."""
    start = utcnow() - timedelta(hours=hours_ago)
    values = {
        "status": "discharged",
        "scheduled_for": start - timedelta(minutes=30),
        "checked_in_at": start - timedelta(minutes=20),
        "started_at": start,
        "ended_at": start + timedelta(minutes=40),
        "discharged_at": start + timedelta(minutes=100),
        "consent_on_file": True,
        "npo_confirmed": True,
        "escort_name": "Sam Escort",
        "pregnancy_status": "not_applicable",
        "med_allergy_review_done": True,
        "aldrete": {
            "activity": 2,
            "respiration": 2,
            "circulation": 2,
            "consciousness": 2,
            "spo2": 2,
        },
        "aldrete_total": 10,
        "discharge_escort": "Sam Escort",
    }
    values.update(fields)
    # Protocol names are unique per version: share the test's protocol between sessions.
    values.setdefault("protocol", db.session.scalar(sa.select(Protocol).limit(1)))
    return make_infusion(**values)


def add_reading(infusion, by, minutes=0, severity="normal", **values) -> Reading:
    vitals = {
        "systolic": 128,
        "diastolic": 78,
        "heart_rate": 72,
        "resp_rate": 14,
        "spo2": 98,
        "rhythm": "nsr",
        "avpu": "A",
        "moaas": 5,
    }
    vitals.update(values)
    reading = Reading(
        infusion=infusion,
        taken_at=infusion.started_at + timedelta(minutes=minutes),
        phase="infusion" if 0 <= minutes <= 40 else ("baseline" if minutes < 0 else "recovery"),
        severity=severity,
        flags=vitals.pop("flags", []),
        news2=vitals.pop("news2", 0),
        recorded_by=by,
        **vitals,
    )
    db.session.add(reading)
    db.session.commit()
    return reading


def add_adverse_event(infusion, by, minutes=10, **fields) -> AdverseEvent:
    values = {
        "event_type": "nausea",
        "severity": "mild",
        "intervention": "Ondansetron 4 mg IV",
        "outcome": "Resolved",
        "physician_notified": True,
    }
    values.update(fields)
    event = AdverseEvent(
        infusion=infusion,
        onset_at=infusion.started_at + timedelta(minutes=minutes),
        recorded_by=by,
        **values,
    )
    db.session.add(event)
    db.session.commit()
    return event


def add_assessment(infusion, by, **fields) -> Assessment:
    values = {"instrument": "phq9", "score": 12, "items": [2, 1, 2, 1, 2, 1, 1, 2, 0]}
    values.update(fields)
    assessment = Assessment(
        patient_id=infusion.patient_id,
        infusion=infusion,
        taken_at=infusion.started_at - timedelta(minutes=15),
        recorded_by=by,
        **values,
    )
    db.session.add(assessment)
    db.session.commit()
    return assessment


def add_event(infusion, by, kind="start", minutes=0, **fields) -> InfusionEvent:
    event = InfusionEvent(
        infusion=infusion,
        kind=kind,
        occurred_at=infusion.started_at + timedelta(minutes=minutes),
        recorded_by=by,
        **fields,
    )
    db.session.add(event)
    db.session.commit()
    return event


def sign_directly(infusion, physician, attestation="Reviewed.") -> InfusionSession:
    infusion.signed_by = physician
    infusion.signed_at = utcnow()
    infusion.attestation = attestation
    db.session.commit()
    return infusion


def sign_form(infusion, **extra) -> dict:
    data = {"attestation": "I have reviewed this record.", "version": str(infusion.version)}
    data.update(extra)
    return data


def set_auth_age(client, minutes: float) -> None:
    with client.session_transaction() as flask_session:
        flask_session["auth_at"] = time.time() - minutes * 60


# --- Signing -----------------------------------------------------------------------------------


def test_physician_signs_a_discharged_session(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = discharged_session(make_infusion)
    version = infusion.version
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/infusions/{infusion.id}#signature")
    assert infusion.signed_by_id == physician.id
    assert infusion.signed_at is not None
    assert infusion.attestation == "I have reviewed this record."
    assert infusion.version == version + 1
    (event,) = audit_rows("session.signed")
    assert event.entity_id == infusion.id and event.patient_id == infusion.patient_id
    assert event.actor_id == physician.id
    assert event.details["attestation"] == "I have reviewed this record."


@pytest.mark.parametrize("role", ["np", "pa", "admin"])
def test_only_a_physician_can_sign_whatever_they_post(client, login_as, make_infusion, role):
    login_as(role)
    infusion = discharged_session(make_infusion)
    response = client.post(
        f"/infusions/{infusion.id}/sign",
        data=sign_form(infusion, signed_by_id="1", role="physician"),
    )
    assert response.status_code == 403
    assert infusion.signed_at is None
    assert not audit_rows("session.signed")


@pytest.mark.parametrize("role", ["np", "pa"])
def test_the_service_refuses_a_non_physician_too(app, make_staff, make_infusion, role):
    infusion = discharged_session(make_infusion)
    with pytest.raises(RuleError, match="Only a physician"):
        services.sign_infusion(
            infusion, make_staff(role), "Reviewed.", infusion.version, password=PASSWORD
        )
    with pytest.raises(RuleError, match="Only a physician"):
        services.add_addendum(infusion, make_staff(role), "Later fact.")


@pytest.mark.parametrize(
    "status",
    ["planned", "checked_in", "infusing", "paused", "recovery", "stopped_early", "cancelled"],
)
def test_only_a_discharged_session_can_be_signed(client, login_as, make_infusion, status):
    login_as("physician")
    infusion = discharged_session(make_infusion, status=status)
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 409
    assert "Only a discharged session can be signed" in response.get_data(as_text=True)
    assert infusion.signed_at is None


def test_second_signature_is_refused_with_who_and_when(client, login_as, make_staff, make_infusion):
    first = make_staff("physician", full_name="Ada First")
    infusion = discharged_session(make_infusion)
    services.sign_infusion(
        infusion, first, "Reviewed by the first.", infusion.version, password=PASSWORD
    )
    db.session.commit()
    signed_at = infusion.signed_at
    login_as("physician")
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "already signed by Ada First, MD" in html
    assert to_clinic(signed_at).strftime("%d %b %Y %H:%M") in html
    assert infusion.signed_by_id == first.id
    assert infusion.attestation == "Reviewed by the first."


def test_stale_sign_attempt_is_refused(client, login_as, make_staff, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    drawn_from = infusion.version
    nurse = make_staff("np", full_name="Nell Nurse")
    # Someone changes the session after the physician opened the page.
    infusion.discharge_note = "Escort arrived late."
    infusion.updated_by = nurse
    infusion.updated_at = utcnow()
    db.session.commit()
    response = client.post(
        f"/infusions/{infusion.id}/sign",
        data={"attestation": "Reviewed.", "version": str(drawn_from)},
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Nell Nurse, APRN" in html and "not</strong> saved" in html
    assert infusion.signed_at is None


def test_sign_form_errors_come_back_with_what_was_typed(client, login_as, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    too_long = "x" * (services.ATTESTATION_MAX + 1)
    response = client.post(
        f"/infusions/{infusion.id}/sign", data=sign_form(infusion, attestation=too_long)
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html and f"At most {services.ATTESTATION_MAX}" in html
    assert too_long in html
    response = client.post(f"/infusions/{infusion.id}/sign", data={"attestation": "Reviewed."})
    assert response.status_code == 422
    assert "reload the page" in response.get_data(as_text=True)
    assert infusion.signed_at is None


# --- Re-authentication ---------------------------------------------------------------------------


def test_recent_login_signs_without_password(client, login_as, make_infusion):
    login_as("physician")
    set_auth_age(client, 14)
    infusion = discharged_session(make_infusion)
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 302
    assert infusion.is_signed


def test_old_login_needs_the_password_again(client, login_as, make_infusion):
    physician = login_as("physician")
    set_auth_age(client, 16)
    infusion = discharged_session(make_infusion)

    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Enter your password" in html and 'name="password"' in html
    assert "I have reviewed this record." in html  # the typed attestation is kept
    assert not infusion.is_signed

    response = client.post(
        f"/infusions/{infusion.id}/sign", data=sign_form(infusion, password="wrong password 1")
    )
    assert response.status_code == 422
    assert "Password: not correct." in response.get_data(as_text=True)
    assert not infusion.is_signed
    assert physician.failed_logins == 1
    (failure,) = audit_rows("auth.reauth_failed")
    assert failure.actor_id == physician.id

    before = time.time()
    response = client.post(
        f"/infusions/{infusion.id}/sign", data=sign_form(infusion, password=PASSWORD)
    )
    assert response.status_code == 302
    assert infusion.is_signed and infusion.signed_by_id == physician.id
    assert physician.failed_logins == 0
    with client.session_transaction() as flask_session:
        assert flask_session["auth_at"] >= before


def test_reauth_minutes_is_a_setting(app, client, login_as, make_infusion):
    app.config["REAUTH_MINUTES"] = 5
    login_as("physician")
    set_auth_age(client, 6)
    infusion = discharged_session(make_infusion)
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 422
    assert "more than 5 minutes ago" in response.get_data(as_text=True)
    assert not infusion.is_signed


def test_repeated_wrong_passwords_lock_the_account_and_end_the_session(
    app, client, login_as, make_infusion
):
    physician = login_as("physician")
    set_auth_age(client, 30)
    infusion = discharged_session(make_infusion)
    for _ in range(app.config["LOCKOUT_THRESHOLD"]):
        client.post(
            f"/infusions/{infusion.id}/sign", data=sign_form(infusion, password="wrong password 1")
        )
    assert physician.is_locked()
    assert audit_rows("auth.locked_out")
    response = client.get("/review/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert not infusion.is_signed


# --- Addenda -----------------------------------------------------------------------------------


def test_physician_adds_an_addendum_to_a_signed_session(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = sign_directly(discharged_session(make_infusion), physician)
    version = infusion.version
    response = client.post(
        f"/infusions/{infusion.id}/addenda", data={"text": "  Patient phoned next day: well.  "}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/infusions/{infusion.id}#addenda")
    (addendum,) = db.session.scalars(sa.select(Addendum)).all()
    assert addendum.text == "Patient phoned next day: well."
    assert addendum.author_id == physician.id and addendum.created_at is not None
    assert infusion.version == version  # the signed session itself did not change
    (event,) = audit_rows("session.addendum_added")
    assert event.entity_type == "addendum" and event.entity_id == addendum.id
    assert event.patient_id == infusion.patient_id
    assert event.details == {"infusion_id": infusion.id, "text": addendum.text}


def test_addendum_only_on_a_signed_session(client, login_as, make_infusion):
    login_as("physician")
    infusion = discharged_session(make_infusion)
    response = client.post(f"/infusions/{infusion.id}/addenda", data={"text": "Too early."})
    assert response.status_code == 409
    assert "not signed yet" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Addendum.id))) == 0


@pytest.mark.parametrize("role", ["np", "pa"])
def test_np_and_pa_cannot_add_addenda(client, login_as, make_staff, make_infusion, role):
    login_as(role)
    infusion = sign_directly(discharged_session(make_infusion), make_staff("physician"))
    response = client.post(f"/infusions/{infusion.id}/addenda", data={"text": "From a nurse."})
    assert response.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count(Addendum.id))) == 0


def test_addendum_text_is_required_and_bounded(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = sign_directly(discharged_session(make_infusion), physician)
    response = client.post(f"/infusions/{infusion.id}/addenda", data={"text": "   "})
    assert response.status_code == 422
    assert "Enter the text of the addendum." in response.get_data(as_text=True)
    too_long = "y" * (services.ADDENDUM_MAX + 1)
    response = client.post(f"/infusions/{infusion.id}/addenda", data={"text": too_long})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f"At most {services.ADDENDUM_MAX} characters." in html and too_long in html
    assert db.session.scalar(sa.select(sa.func.count(Addendum.id))) == 0


def test_no_endpoint_can_change_an_addendum(app):
    for rule in app.url_map.iter_rules():
        assert not any("addend" in arg for arg in rule.arguments), rule
        assert not rule.methods & {"PUT", "PATCH", "DELETE"}, rule
    (rule,) = [r for r in app.url_map.iter_rules() if r.endpoint == "review.add_addendum"]
    assert rule.methods - {"HEAD", "OPTIONS"} == {"POST"}


def test_addenda_stay_as_written(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = sign_directly(discharged_session(make_infusion), physician)
    client.post(f"/infusions/{infusion.id}/addenda", data={"text": "First fact."})
    client.post(f"/infusions/{infusion.id}/addenda", data={"text": "Second fact."})
    rows = db.session.execute(
        sa.select(Addendum.id, Addendum.text, Addendum.author_id, Addendum.created_at).order_by(
            Addendum.id
        )
    ).all()
    assert [row.text for row in rows] == ["First fact.", "Second fact."]

    first = db.session.get(Addendum, rows[0].id)
    first.text = "Rewritten."
    with pytest.raises(RuleError, match="cannot be changed"):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(Addendum, rows[1].id))
    with pytest.raises(RuleError, match="cannot be changed"):
        db.session.flush()
    db.session.rollback()

    assert (
        db.session.execute(
            sa.select(Addendum.id, Addendum.text, Addendum.author_id, Addendum.created_at).order_by(
                Addendum.id
            )
        ).all()
        == rows
    )


# --- The signed lock on every endpoint ------------------------------------------------------------


# What a plausible submission to any session form might carry, so that an endpoint that only
# looked at the lock after validating its form would be caught accepting it.
def plausible_form(infusion) -> dict:
    now = to_clinic(utcnow())
    return {
        "version": str(infusion.version),
        "taken_at": now.strftime("%Y-%m-%dT%H:%M"),
        "occurred_at": now.strftime("%Y-%m-%dT%H:%M"),
        "onset_at": now.strftime("%Y-%m-%dT%H:%M"),
        "phase": "recovery",
        "systolic": "124",
        "diastolic": "80",
        "heart_rate": "72",
        "resp_rate": "14",
        "spo2": "98",
        "o2_flow_lpm": "",
        "temperature": "36.8",
        "rhythm": "nsr",
        "avpu": "A",
        "moaas": "5",
        "pain": "1",
        "note": "Late entry.",
        "reason": "Entered in error",
        "void_reason": "Entered in error",
        "event_type": "nausea",
        "severity": "mild",
        "infusion_action": "none",
        "intervention": "None",
        "outcome": "Resolved",
        "physician_notified": "y",
        "instrument": "phq9",
        "score": "5",
        "critical_action": "reviewed",
        "critical_action_note": "Reviewed.",
        "action": "reviewed",
        "rate_mg_per_h": "30",
        "weight": "70",
        "weight_kg": "70",
        "dose_mg_per_kg": "0.5",
        "duration_min": "40",
        "concentration_mg_per_ml": "1",
        "room": "Room 2",
        "escort_name": "Sam",
        "consent_on_file": "y",
        "npo_confirmed": "y",
        "pregnancy_status": "not_applicable",
        "med_allergy_review_done": "y",
        "discharge_escort": "Sam",
        "discharge_note": "Well.",
        "notes": "Changed.",
        "activity": "2",
        "respiration": "2",
        "circulation": "2",
        "consciousness": "2",
        "override_reason": "Physician override.",
        "cancel_reason": "Changed mind.",
        "attestation": "Signed again.",
        "password": PASSWORD,
        "text": "An edit.",
    }


# An endpoint belongs to a session when its URL names the session or one of its rows.
ROW_ARGS = {
    "infusion_id": "infusion",
    "reading_id": "reading",
    "ae_id": "adverse_event",
    "adverse_event_id": "adverse_event",
    "assessment_id": "assessment",
    "event_id": "event",
}
# Allowed on a signed session by design: an addendum is how later facts are added (SPEC §3).
LOCK_EXEMPT = {"review.add_addendum"}


def session_snapshot(infusion_id: int) -> dict:
    """Every column of the session and of every row hanging off it."""
    db.session.expire_all()
    tables = {
        "session": sa.select(InfusionSession.__table__).where(InfusionSession.id == infusion_id),
        "readings": sa.select(Reading.__table__).where(Reading.infusion_id == infusion_id),
        "events": sa.select(InfusionEvent.__table__).where(
            InfusionEvent.infusion_id == infusion_id
        ),
        "adverse_events": sa.select(AdverseEvent.__table__).where(
            AdverseEvent.infusion_id == infusion_id
        ),
        "assessments": sa.select(Assessment.__table__).where(Assessment.infusion_id == infusion_id),
        "addenda": sa.select(Addendum.__table__).where(Addendum.infusion_id == infusion_id),
    }
    snapshot = {
        name: sorted(map(tuple, db.session.execute(stmt).all()), key=lambda r: r[0])
        for name, stmt in tables.items()
    }
    for model in (Reading, InfusionEvent, AdverseEvent, Assessment, Addendum):
        snapshot[f"count:{model.__tablename__}"] = db.session.scalar(
            sa.select(sa.func.count()).select_from(model)
        )
    return snapshot


def session_endpoints(app) -> list:
    rules = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint in LOCK_EXEMPT:
            continue
        if set(rule.arguments) & set(ROW_ARGS):
            rules.append(rule)
    return sorted(rules, key=lambda r: r.rule)


@pytest.fixture
def signed_world(make_staff, make_infusion):
    np_ = make_staff("np", username="lock-np")
    physician = make_staff("physician", username="lock-physician")
    infusion = discharged_session(make_infusion, clinician=np_, physician=physician)
    rows = {
        "infusion": infusion,
        "reading": add_reading(
            infusion,
            np_,
            minutes=10,
            severity="critical",
            systolic=186,
            flags=[{"field": "systolic", "level": "critical", "message": "SBP 186 ≥ 180"}],
        ),
        "adverse_event": add_adverse_event(infusion, np_),
        "assessment": add_assessment(infusion, np_),
        "event": add_event(infusion, np_),
    }
    add_reading(infusion, np_, minutes=20)
    services.sign_infusion(infusion, physician, "Reviewed.", infusion.version, password=PASSWORD)
    db.session.commit()
    db.session.add(
        Addendum(infusion=infusion, text="Called next day.", author=physician, created_at=utcnow())
    )
    db.session.commit()
    return {
        "staff": {"np": np_, "physician": physician},
        "ids": {name: row.id for name, row in rows.items()},
        "infusion": infusion,
    }


@pytest.mark.parametrize("role", ["physician", "np"])
def test_every_mutating_endpoint_refuses_a_signed_session(app, signed_world, role):
    infusion = signed_world["infusion"]
    ids = signed_world["ids"]
    rules = session_endpoints(app)
    assert "review.sign" in {rule.endpoint for rule in rules}  # the sweep is never empty
    client = app.test_client()
    assert login(client, f"lock-{role}").status_code == 302
    before = session_snapshot(infusion.id)
    accepted = []
    for rule in rules:
        values = {}
        for arg in rule.arguments:
            if arg in ROW_ARGS:
                values[arg] = ids[ROW_ARGS[arg]]
            elif arg == "patient_id":
                values[arg] = infusion.patient_id
            else:
                pytest.fail(f"{rule.endpoint}: the lock sweep does not know URL argument {arg}")
        path = rule.build(values, append_unknown=False)[1]
        response = client.post(path, data=plausible_form(infusion))
        if response.status_code not in (403, 409):
            accepted.append((rule.endpoint, path, response.status_code))
        after = session_snapshot(infusion.id)
        assert after == before, f"{rule.endpoint} changed a signed session ({path})"
    assert not accepted, f"endpoints that did not refuse a signed session: {accepted}"


def test_signed_session_refusal_says_why(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = sign_directly(discharged_session(make_infusion), physician)
    response = client.post(f"/infusions/{infusion.id}/sign", data=sign_form(infusion))
    assert response.status_code == 409
    assert "Later facts go in an addendum" in response.get_data(as_text=True)


def test_the_sweep_knows_every_session_row_argument(app):
    """Guards the sweep itself: a route naming a session row by an argument the sweep does not
    know would silently escape it."""
    hints = ("infusion", "session", "reading", "adverse", "ae_", "assessment", "event", "addend")
    unknown = {
        (rule.endpoint, arg)
        for rule in app.url_map.iter_rules()
        for arg in rule.arguments
        if arg not in ROW_ARGS and any(hint in arg for hint in hints)
    }
    assert not unknown, f"URL arguments the lock sweep cannot fill: {unknown}"
