"""Exports: readings CSV and FHIR R4 Bundle — content, codes and units, status mapping,
voided rows, audit, permissions, and a query count that does not grow with the data."""

import csv
import gc
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle

from infusion_tracker.exports import fhir, routes
from infusion_tracker.extensions import db
from infusion_tracker.models import (
    Assessment,
    AuditEvent,
    InfusionEvent,
    InfusionSession,
    Patient,
    Reading,
)

DATA = Path(__file__).parent / "data"
T = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST)


def add_reading(infusion, staff, at, phase="infusion", **values):
    reading = Reading(
        infusion=infusion, taken_at=at, phase=phase, recorded_by_id=staff.id, **values
    )
    db.session.add(reading)
    db.session.commit()
    return reading


def add_event(infusion, staff, kind, at, reason="", rate=None):
    event = InfusionEvent(
        infusion=infusion,
        kind=kind,
        occurred_at=at,
        reason=reason,
        rate_mg_per_h=rate,
        recorded_by_id=staff.id,
    )
    db.session.add(event)
    db.session.commit()
    return event


def add_score(patient, staff, instrument, score, at, infusion=None, **extra):
    assessment = Assessment(
        patient_id=patient.id,
        infusion_id=infusion.id if infusion else None,
        instrument=instrument,
        score=score,
        taken_at=at,
        recorded_by_id=staff.id,
        **extra,
    )
    db.session.add(assessment)
    db.session.commit()
    return assessment


@pytest.fixture
def record(make_staff, make_patient, make_protocol, make_infusion):
    """A patient with a completed session (a voided reading and a correction), a session
    stopped early, a paused one, a cancelled one, a planned one, and outcome scores."""
    protocol = make_protocol()
    np_ = make_staff("np", full_name="Nora Practitioner", credentials="APRN")
    doc = make_staff("physician", full_name="Dana Doctor", credentials="MD")
    patient = make_patient(
        mrn="MRN-77", first_name="Ada", last_name="Lovelace", emergency_contact="Sam (brother)"
    )
    one = make_infusion(
        patient=patient,
        protocol=protocol,
        clinician=np_,
        physician=doc,
        status="discharged",
        checked_in_at=T - timedelta(minutes=20),
        started_at=T,
        ended_at=T + timedelta(minutes=40),
        discharged_at=T + timedelta(minutes=90),
    )
    add_event(one, np_, "start", T, rate=52.5)
    add_event(one, np_, "stop", T + timedelta(minutes=40))
    add_reading(
        one, np_, T - timedelta(minutes=10), phase="baseline", systolic=128, diastolic=82,
        heart_rate=72, resp_rate=14, spo2=98, temperature_c=36.6, rhythm="nsr", avpu="A",
        news2=0,
    )  # fmt: skip
    wrong = add_reading(
        one, np_, T + timedelta(minutes=10), systolic=210, diastolic=85, heart_rate=80,
        severity="critical",
        flags=[{"field": "systolic", "level": "critical", "message": "SBP 210 ≥ 180"}],
        voided_at=T + timedelta(minutes=12), voided_by_id=np_.id, void_reason="Cuff slipped",
    )  # fmt: skip
    add_reading(
        one, np_, T + timedelta(minutes=10), systolic=185, heart_rate=124, spo2=93,
        o2_flow_lpm=2.0, corrects_id=wrong.id, severity="critical", pain=3,
        rhythm="other", rhythm_other="Bigeminy",
        flags=[
            {"field": "systolic", "level": "critical", "message": "SBP 185 ≥ 180"},
            {"field": "heart_rate", "level": "critical", "message": "HR 124 ≥ 120"},
            {"field": "spo2", "level": "abnormal", "message": "SpO2 93 < 95"},
        ],
        note="=HYPERLINK(\"http://evil\")",
    )  # fmt: skip
    two = make_infusion(
        patient=patient,
        protocol=protocol,
        clinician=np_,
        physician=doc,
        status="stopped_early",
        checked_in_at=T + timedelta(days=7, minutes=-20),
        started_at=T + timedelta(days=7),
        ended_at=T + timedelta(days=7, minutes=15),
    )
    add_event(two, np_, "start", T + timedelta(days=7), rate=52.5)
    add_event(two, np_, "stop", T + timedelta(days=7, minutes=15), reason="Emergence reaction")
    add_reading(two, np_, T + timedelta(days=7, minutes=5), heart_rate=88, spo2=97)
    three = make_infusion(
        patient=patient,
        protocol=protocol,
        clinician=np_,
        physician=doc,
        status="paused",
        checked_in_at=T + timedelta(days=14, minutes=-20),
        started_at=T + timedelta(days=14),
    )
    add_event(three, np_, "start", T + timedelta(days=14), rate=52.5)
    add_event(three, np_, "pause", T + timedelta(days=14, minutes=10), reason="Nausea")
    make_infusion(
        patient=patient, protocol=protocol, clinician=np_, physician=doc, status="cancelled",
        cancelled_at=T + timedelta(days=20), cancel_reason="Patient unwell",
    )  # fmt: skip
    make_infusion(patient=patient, protocol=protocol, clinician=np_, physician=doc)  # planned
    add_score(patient, np_, "phq9", 21, T - timedelta(days=1))
    add_score(patient, np_, "gad7", 15, T - timedelta(days=1))
    add_score(patient, np_, "pain_nrs", 6, T, infusion=one)
    add_score(patient, np_, "madrs", 30, T)
    add_score(
        patient, np_, "phq9", 2, T + timedelta(days=2), voided_at=T + timedelta(days=2, hours=1),
        voided_by_id=np_.id, void_reason="Wrong patient",
    )  # fmt: skip
    return {
        "patient": patient,
        "protocol": protocol,
        "one": one,
        "two": two,
        "three": three,
        "wrong": wrong,
    }


def resources(bundle, resource_type):
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def by_id(bundle, ident):
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == ident)


def codes(resource):
    return [c["code"] for c in resource["code"]["coding"]]


# --- CSV ---------------------------------------------------------------------------------------


def test_readings_csv(client, login_as, record):
    login_as("np")
    response = client.get(f"/patients/{record['patient'].id}/readings.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="patient-MRN-77-'
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert header[:8] == [
        "MRN", "Session number", "Session ID", "Reading ID",
        "Taken at (clinic time, America/New_York)", "Taken at (UTC, ISO 8601)", "Phase",
        "Systolic BP (mmHg)",
    ]  # fmt: skip
    for unit in (
        "Heart rate (bpm)",
        "SpO2 (%)",
        "Temperature (°C)",
        "Pain (0-10)",
        "O2 flow (L/min; blank = room air)",
        "Respiratory rate (breaths/min)",
    ):
        assert unit in header
    assert len(body) == 4  # three in session 1 (one voided), one in session 2
    rows_by_id = {int(row[3]): dict(zip(header, row, strict=True)) for row in body}
    baseline = rows_by_id[min(rows_by_id)]
    assert baseline["Taken at (clinic time, America/New_York)"] == "2026-01-15 09:50"
    assert baseline["Taken at (UTC, ISO 8601)"] == "2026-01-15T14:50:00Z"
    assert baseline["Phase"] == "Baseline"
    assert baseline["Temperature (°C)"] == "36.6"
    assert baseline["Rhythm"] == "Normal sinus rhythm"
    assert baseline["AVPU"] == "A (Alert)"
    assert baseline["Status (VOIDED or valid)"] == "valid"
    assert baseline["Session number"] == "1"
    voided = rows_by_id[record["wrong"].id]
    assert voided["Status (VOIDED or valid)"] == "VOIDED"
    assert voided["Void reason"] == "Cuff slipped"
    assert voided["Voided by"] == "Nora Practitioner, APRN"
    assert voided["Voided at (UTC, ISO 8601)"] == "2026-01-15T15:12:00Z"
    correction = next(r for r in rows_by_id.values() if r["Corrects reading ID"])
    assert correction["Corrects reading ID"] == str(record["wrong"].id)
    assert correction["O2 flow (L/min; blank = room air)"] == "2"
    assert correction["Rhythm"] == "Other: Bigeminy"
    assert correction["Flags"] == "SBP 185 ≥ 180; HR 124 ≥ 120; SpO2 93 < 95"
    assert correction["Note"] == '\'=HYPERLINK("http://evil")'  # defused for spreadsheets
    assert correction["Recorded by"] == "Nora Practitioner, APRN"
    assert [row[1] for row in body] == ["1", "1", "1", "2"]


def test_readings_csv_is_audited(client, login_as, record):
    staff = login_as("pa")
    client.get(f"/patients/{record['patient'].id}/readings.csv")
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "export.readings_csv")
    ).one()
    assert event.actor_id == staff.id
    assert event.patient_id == record["patient"].id
    assert (event.entity_type, event.entity_id) == ("patient", record["patient"].id)
    assert event.details == {"rows": 4, "sessions": 5}


def test_readings_csv_for_a_patient_without_sessions(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    rows = list(csv.reader(io.StringIO(client.get(f"/patients/{patient.id}/readings.csv").text)))
    assert len(rows) == 1 and rows[0][0] == "MRN"


# --- FHIR --------------------------------------------------------------------------------------


@pytest.fixture
def bundle(client, login_as, record):
    login_as("physician")
    response = client.get(f"/patients/{record['patient'].id}/fhir")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    assert response.headers["Content-Disposition"].endswith('.fhir.json"')
    return json.loads(response.get_data(as_text=True))


def test_bundle_validates_as_fhir_r4(bundle):
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    assert len(parsed.entry) == len(bundle["entry"])
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert kinds == {"Patient", "Encounter", "Observation", "MedicationAdministration"}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == (
            f"http://localhost/fhir/{resource['resourceType']}/{resource['id']}"
        )


def test_patient_resource(bundle, record):
    (patient,) = resources(bundle, "Patient")
    assert patient["identifier"][0]["value"] == "MRN-77"
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert patient["name"][0] == {
        "use": "official",
        "family": "Lovelace",
        "given": ["Ada"],
        "text": "Ada Lovelace",
    }
    assert patient["birthDate"] == "1980-05-17"
    assert patient["gender"] == "female"


def test_one_encounter_per_session_with_status(bundle, record):
    encounters = resources(bundle, "Encounter")
    assert [e["status"] for e in encounters] == [
        "finished",
        "in-progress",
        "in-progress",
        "cancelled",
        "planned",
    ]
    first = next(e for e in encounters if e["id"] == str(record["one"].id))
    assert first["subject"] == {"reference": f"Patient/{record['patient'].id}"}
    assert first["period"] == {"start": "2026-01-15T14:40:00Z", "end": "2026-01-15T16:30:00Z"}
    assert first["class"]["code"] == "AMB"
    assert first["reasonCode"] == [{"text": "Treatment-resistant depression"}]


def test_vital_sign_codes_and_units(bundle, record):
    one = record["one"]
    baseline_id = min(r.id for r in one.readings)
    bp = by_id(bundle, f"reading-{baseline_id}-bp")
    assert codes(bp) == ["85354-9"]
    assert PROFILE_BP in bp["meta"]["profile"]
    assert bp["category"][0]["coding"][0]["code"] == "vital-signs"
    systolic, diastolic = bp["component"]
    assert codes(systolic) == ["8480-6"] and codes(diastolic) == ["8462-4"]
    assert systolic["valueQuantity"] == {
        "value": 128,
        "unit": "mmHg",
        "system": "http://unitsofmeasure.org",
        "code": "mm[Hg]",
    }
    assert diastolic["valueQuantity"]["value"] == 82
    assert bp["encounter"] == {"reference": f"Encounter/{one.id}"}
    assert bp["effectiveDateTime"] == "2026-01-15T14:50:00Z"
    assert bp["performer"] == [{"display": "Nora Practitioner, APRN"}]
    expected = {
        "hr": ("8867-4", "/min", 72),
        "rr": ("9279-1", "/min", 14),
        "spo2": ("2708-6", "%", 98),
        "temp": ("8310-5", "Cel", 36.6),
    }
    for key, (code, unit, value) in expected.items():
        observation = by_id(bundle, f"reading-{baseline_id}-{key}")
        assert code in codes(observation), key
        assert observation["valueQuantity"]["code"] == unit, key
        assert observation["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        assert observation["valueQuantity"]["value"] == value, key
        assert observation["status"] == "final"
    assert "59408-5" in codes(by_id(bundle, f"reading-{baseline_id}-spo2"))
    weight = by_id(bundle, f"infusion-{one.id}-weight")
    assert codes(weight) == ["29463-7"]
    assert weight["valueQuantity"]["code"] == "kg" and weight["valueQuantity"]["value"] == 70.0


PROFILE_BP = "http://hl7.org/fhir/StructureDefinition/bp"


def test_flags_oxygen_and_missing_diastolic(bundle, record):
    correction = max(r.id for r in record["one"].readings)
    bp = by_id(bundle, f"reading-{correction}-bp")
    systolic, diastolic = bp["component"]
    assert systolic["interpretation"][0]["coding"][0]["code"] == "AA"
    assert "valueQuantity" not in diastolic
    assert diastolic["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    spo2 = by_id(bundle, f"reading-{correction}-spo2")
    assert spo2["interpretation"][0]["coding"][0]["code"] == "A"
    assert spo2["component"][0]["valueQuantity"] == {
        "value": 2.0,
        "unit": "L/min",
        "system": "http://unitsofmeasure.org",
        "code": "L/min",
    }
    assert by_id(bundle, f"reading-{correction}-rhythm")["valueCodeableConcept"] == {
        "text": "Other: Bigeminy"
    }
    assert codes(by_id(bundle, f"reading-{correction}-pain")) == ["72514-3"]
    assert bp["note"] == [{"text": f"Corrects reading {record['wrong'].id}."}]


def test_voided_entries_are_entered_in_error(bundle, record):
    wrong = record["wrong"].id
    voided = [
        r for r in resources(bundle, "Observation") if r["id"].startswith(f"reading-{wrong}-")
    ]
    assert {r["id"] for r in voided} == {f"reading-{wrong}-bp", f"reading-{wrong}-hr"}
    for observation in voided:
        assert observation["status"] == "entered-in-error"
        assert "Cuff slipped" in observation["note"][0]["text"]
    scores = resources(bundle, "Observation")
    voided_scores = [
        s for s in scores if s["status"] == "entered-in-error" and s["id"].startswith("assessment-")
    ]
    assert len(voided_scores) == 1
    assert "Wrong patient" in voided_scores[0]["note"][0]["text"]


def test_score_observations(bundle):
    scores = [r for r in resources(bundle, "Observation") if r["id"].startswith("assessment-")]
    by_code = {r["code"]["text"]: r for r in scores if r["status"] == "final"}
    assert codes(by_code["PHQ-9"]) == ["44261-6"]
    assert codes(by_code["GAD-7"]) == ["70274-6"]
    assert codes(by_code["Pain NRS"]) == ["72514-3"]
    assert by_code["Pain NRS"]["encounter"]["reference"].startswith("Encounter/")
    assert by_code["MADRS"]["code"]["coding"][0]["system"] == (
        "http://localhost/fhir/CodeSystem/instrument"
    )
    assert by_code["PHQ-9"]["valueQuantity"] == {
        "value": 21,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    assert by_code["PHQ-9"]["category"][0]["coding"][0]["code"] == "survey"


def test_medication_administrations_and_status_mapping(bundle, record):
    administrations = {r["id"]: r for r in resources(bundle, "MedicationAdministration")}
    one, two, three = record["one"], record["two"], record["three"]
    # One per infusion that was given or cancelled; the planned session gave nothing yet.
    assert len(administrations) == 4
    done = administrations[f"infusion-{one.id}"]
    assert done["status"] == "completed"
    assert done["medicationCodeableConcept"]["coding"][0]["code"] == "6130"
    assert done["context"] == {"reference": f"Encounter/{one.id}"}
    assert done["effectivePeriod"] == {
        "start": "2026-01-15T15:00:00Z",
        "end": "2026-01-15T15:40:00Z",
    }
    assert done["dosage"]["dose"] == {
        "value": 35.0,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert done["dosage"]["rateQuantity"]["value"] == 52.5
    assert done["dosage"]["rateQuantity"]["code"] == "mg/h"
    assert done["dosage"]["route"]["coding"][0]["code"] == "47625008"
    assert "52.50 mL/h" in done["dosage"]["text"]
    stopped = administrations[f"infusion-{two.id}"]
    assert stopped["status"] == "stopped"
    assert stopped["statusReason"] == [{"text": "Emergence reaction"}]
    assert stopped["dosage"]["dose"]["value"] == 13.1  # 15 min at 52.5 mg/h
    paused = administrations[f"infusion-{three.id}"]
    assert paused["status"] == "on-hold"
    assert paused["statusReason"] == [{"text": "Nausea"}]
    assert "end" not in paused["effectivePeriod"]
    cancelled = next(a for a in administrations.values() if a["status"] == "not-done")
    assert cancelled["statusReason"] == [{"text": "Patient unwell"}]


def test_a_discharged_session_that_ran_short_is_stopped(make_infusion, make_staff):
    from infusion_tracker.exports import fhir

    np_ = make_staff("np")
    infusion = make_infusion(
        clinician=np_, status="discharged", started_at=T, ended_at=T + timedelta(minutes=20)
    )
    add_event(infusion, np_, "start", T, rate=52.5)
    add_event(infusion, np_, "pause", T + timedelta(minutes=5))
    add_event(infusion, np_, "resume", T + timedelta(minutes=10))
    add_event(infusion, np_, "rate_change", T + timedelta(minutes=12), rate=30.0)
    add_event(infusion, np_, "stop", T + timedelta(minutes=20), reason="Patient asked to stop")
    resource = fhir.medication_administration(infusion, T + timedelta(hours=1))
    assert resource["status"] == "stopped"
    # 7 min at 52.5 mg/h and 8 at 30 mg/h (clinical.pump_run), to 0.1 mg (clinical.round_mg).
    assert resource["dosage"]["dose"]["value"] == round(52.5 * 7 / 60 + 30.0 * 8 / 60, 1)
    assert "pump ran 15 min" in resource["dosage"]["text"]
    assert resource["statusReason"] == [{"text": "Patient asked to stop"}]


def test_fhir_export_is_audited(client, login_as, record):
    staff = login_as("np")
    response = client.get(f"/patients/{record['patient'].id}/fhir")
    entries = len(response.json["entry"])
    event = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "export.fhir")
    ).one()
    assert (event.actor_id, event.patient_id) == (staff.id, record["patient"].id)
    assert event.details["entries"] == entries


def test_fhir_export_resumes_the_garbage_collector(client, login_as, record, monkeypatch):
    """The bundle is built with the cyclic GC paused (speed); it must run again afterwards, also
    when building the bundle fails."""
    login_as("np")
    assert client.get(f"/patients/{record['patient'].id}/fhir").status_code == 200
    assert gc.isenabled()

    def broken(*args):
        raise RuntimeError("bundle failed")

    monkeypatch.setattr(fhir, "patient_bundle", broken)
    client.application.testing = False  # answer 500 instead of raising into the test
    assert client.get(f"/patients/{record['patient'].id}/fhir").status_code == 500
    assert gc.isenabled()


def fixed_record(record):
    """The record with its remaining clock-dependent times (entered at, scheduled for) fixed."""
    db.session.execute(sa.update(Reading).values(created_at=T + timedelta(hours=2)))
    db.session.execute(sa.update(Assessment).values(created_at=T + timedelta(hours=3)))
    db.session.execute(sa.update(InfusionSession).values(scheduled_for=T - timedelta(hours=1)))
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Patient, record["patient"].id)


def test_bundle_is_byte_for_byte_the_one_built_from_orm_objects(app, record):
    """Issue 8: the readings' observations are built from plain rows, with only the keys that
    have a value. tests/data/fhir_record_bundle.json is this record's bundle as the earlier
    builder (Reading objects, then a pass dropping empty keys) wrote it with json.dumps: the
    bytes the route sends (fhir.bundle_json, orjson since Stop 31) are the same."""
    patient = fixed_record(record)
    with app.test_request_context():
        bundle = routes.build_bundle(patient, "http://clinic.test/fhir", T + timedelta(days=30))
    expected = (DATA / "fhir_record_bundle.json").read_bytes().strip()
    assert fhir.bundle_json(bundle) == expected
    assert json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode() == expected


# --- permissions and errors --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["readings.csv", "fhir"])
def test_admin_is_refused_and_nothing_is_audited(client, login_as, make_patient, path):
    login_as("admin")
    patient = make_patient()
    assert client.get(f"/patients/{patient.id}/{path}").status_code == 403
    actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert not [a for a in actions if a.startswith("export.")]


@pytest.mark.parametrize("path", ["readings.csv", "fhir"])
def test_missing_patient_is_404(client, login_as, path):
    login_as("np")
    assert client.get(f"/patients/999/{path}").status_code == 404


@pytest.mark.parametrize("path", ["readings.csv", "fhir"])
def test_anonymous_is_sent_to_login(client, make_patient, path):
    patient = make_patient()
    response = client.get(f"/patients/{patient.id}/{path}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


# --- query count -------------------------------------------------------------------------------


def more_data(record, make_infusion, sessions=3, readings=10):
    patient, one = record["patient"], record["one"]
    np_ = one.clinician
    for _ in range(sessions):
        infusion = make_infusion(
            patient=patient, protocol=record["protocol"], clinician=np_,
            physician=one.physician, status="discharged",
            started_at=T, ended_at=T + timedelta(minutes=40),
        )  # fmt: skip
        add_event(infusion, np_, "start", T, rate=52.5)
        for i in range(readings):
            add_reading(infusion, np_, T + timedelta(minutes=i), systolic=120 + i, diastolic=80)
        add_score(patient, np_, "phq9", 10, T, infusion=infusion)


# The write lock (SQLite BEGIN IMMEDIATE / PostgreSQL's audit advisory lock), the signed-in
# user, the patient, and the audit row (last hash, insert) — whatever the amount of data. FHIR:
# sessions and their events (selectin), the readings as rows with their staff names (as the
# CSV's, issue 8) and the assessments. CSV (was 7, issue 8):
# all readings with their staff names in one query, and the number of sessions.
PINNED_QUERIES = {"readings.csv": 6, "fhir": 8}


@pytest.mark.parametrize("path", ["readings.csv", "fhir"])
def test_query_count_does_not_grow_with_readings(
    client, login_as, record, make_infusion, count_queries, path
):
    login_as("np")
    url = f"/patients/{record['patient'].id}/{path}"
    with count_queries() as small:
        assert client.get(url).status_code == 200
    more_data(record, make_infusion)
    with count_queries() as large:
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.data) > 0
    assert large.count == small.count, large.statements
    assert small.count == PINNED_QUERIES[path], (small.count, small.statements)
