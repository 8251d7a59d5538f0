"""A patient's record as a FHIR R4 Bundle (type "collection"), built from loaded rows.

Vital signs follow the FHIR R4 vital-signs profiles (LOINC codes, UCUM units): BP panel
85354-9 with systolic 8480-6 and diastolic 8462-4, heart rate 8867-4, respiratory rate 9279-1,
SpO2 59408-5 + 2708-6, body temperature 8310-5, body weight 29463-7. Scores: PHQ-9 44261-6,
GAD-7 70274-6, pain 0–10 72514-3 (other instruments carry a local code). Each infusion that
started, or was cancelled, is a MedicationAdministration. Voided rows stay in the bundle as
"entered-in-error": the export hides nothing that the chart shows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import orjson

from .. import clinical
from ..infusions import queries
from ..models import Assessment, InfusionSession, Patient, Staff
from ..timeutil import utcnow
from ..vocab import INDICATIONS, INSTRUMENTS, RHYTHMS

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
PROFILE = "http://hl7.org/fhir/StructureDefinition/"

# Session status -> Encounter.status (R4).
ENCOUNTER_STATUS = {
    "planned": "planned",
    "checked_in": "arrived",
    "infusing": "in-progress",
    "paused": "in-progress",
    "recovery": "in-progress",
    "stopped_early": "in-progress",
    "discharged": "finished",
    "cancelled": "cancelled",
}
# Reading fields whose flags belong to each Observation.
VITALS = {
    # key: (LOINC codings, text, profile, UCUM unit, Reading attribute)
    "hr": ([("8867-4", "Heart rate")], "Heart rate", "heartrate", "/min", "heart_rate"),
    "rr": ([("9279-1", "Respiratory rate")], "Respiratory rate", "resprate", "/min", "resp_rate"),
    "spo2": (
        [
            ("2708-6", "Oxygen saturation in Arterial blood"),
            ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ],
        "SpO2",
        "oxygensat",
        "%",
        "spo2",
    ),
    "temp": (
        [("8310-5", "Body temperature")],
        "Body temperature",
        "bodytemp",
        "Cel",
        "temperature_c",
    ),
}
UNIT_WORDS = {"/min": "/min", "%": "%", "Cel": "°C", "mm[Hg]": "mmHg", "kg": "kg"}
# Outcome scores with a LOINC code; the rest are coded in the clinic's own system.
SCORE_LOINC = {
    "phq9": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
    "gad7": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
    "pain_nrs": ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
}


# A reading's times recur in each of its observations: format each once.
@lru_cache(maxsize=4096)
def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ref(resource_type: str, ident: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{ident}"}


def _quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": UNIT_WORDS.get(ucum, ucum), "system": UCUM, "code": ucum}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(codings: list[tuple[str, str]], text: str) -> dict[str, Any]:
    return {"coding": [_coding(LOINC, code, display) for code, display in codings], "text": text}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBSERVATION_CATEGORY, code, display)], "text": display}]


def _interpretation(level: str | None) -> list[dict[str, Any]] | None:
    if level == "critical":
        return [{"coding": [_coding(INTERPRETATION, "AA", "Critical abnormal")]}]
    if level == "abnormal":
        return [{"coding": [_coding(INTERPRETATION, "A", "Abnormal")]}]
    return None


def _display(staff) -> dict[str, str] | None:
    return {"display": staff.display_name} if staff is not None else None


@lru_cache(maxsize=1024)
def staff_name(full_name: str | None, credentials: str | None) -> str:
    """Staff.display_name from a row's two columns (a handful of names over thousands of rows)."""
    if full_name is None:
        return ""
    return Staff(full_name=full_name, credentials=credentials).display_name


def _void_text(voided_by: str | None, voided_at: datetime, reason: str) -> list[dict[str, str]]:
    who = f" by {voided_by}" if voided_by is not None else ""
    return [{"text": f"Entered in error; voided{who} at {instant(voided_at)}: {reason}"}]


def _void_note(row) -> list[dict[str, str]]:
    voided_by = row.voided_by.display_name if row.voided_by is not None else None
    return _void_text(voided_by, row.voided_at, row.void_reason)


def _entry(base_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }


_CONTAINERS = (list, dict)


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR forbids empty elements: drop None, empty lists and empty dicts."""
    # Truthy values are kept at once; only falsy ones need the (slower) container test.
    return {
        k: v for k, v in resource.items() if v is not None and (v or not isinstance(v, _CONTAINERS))
    }


# --- Patient and Encounter ---------------------------------------------------------------------


def patient_resource(patient: Patient, base_url: str) -> dict[str, Any]:
    contact = None
    if patient.emergency_contact:
        contact = [
            {
                "relationship": [
                    {
                        "coding": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/v2-0131",
                                "C",
                                "Emergency Contact",
                            )
                        ]
                    }
                ],
                "name": {"text": patient.emergency_contact},
            }
        ]
    return _clean(
        {
            "resourceType": "Patient",
            "id": str(patient.id),
            "identifier": [
                {
                    "use": "usual",
                    "type": {
                        "coding": [
                            _coding(
                                "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "MR",
                                "Medical record number",
                            )
                        ],
                        "text": "MRN",
                    },
                    "system": f"{base_url}/sid/mrn",
                    "value": patient.mrn,
                }
            ],
            "active": patient.active,
            "name": [
                {
                    "use": "official",
                    "family": patient.last_name,
                    "given": [patient.first_name],
                    "text": patient.full_name,
                }
            ],
            "gender": patient.sex if patient.sex in ("female", "male", "other") else "unknown",
            "birthDate": patient.date_of_birth.isoformat(),
            "contact": contact,
        }
    )


def _indication(infusion: InfusionSession) -> list[dict[str, str]]:
    return [{"text": INDICATIONS.get(infusion.indication, infusion.indication)}]


def encounter_resource(infusion: InfusionSession) -> dict[str, Any]:
    start = infusion.checked_in_at or infusion.started_at
    end = infusion.discharged_at or infusion.cancelled_at
    period = _clean({"start": start and instant(start), "end": end and instant(end)})
    return _clean(
        {
            "resourceType": "Encounter",
            "id": str(infusion.id),
            "identifier": [
                {
                    "system": "urn:infusion-tracker:session-number",
                    "value": f"{infusion.patient_id}-{infusion.series_number}",
                }
            ],
            "status": ENCOUNTER_STATUS.get(infusion.status, "unknown"),
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
                "display": "ambulatory",
            },
            "type": [{"text": f"IV {infusion.drug} infusion, session {infusion.series_number}"}],
            "subject": _ref("Patient", str(infusion.patient_id)),
            "participant": [
                {
                    "type": [{"text": "Overseeing clinician"}],
                    "individual": _display(infusion.clinician),
                },
                {
                    "type": [{"text": "Supervising physician"}],
                    "individual": _display(infusion.physician),
                },
            ],
            "period": period,
            "reasonCode": _indication(infusion),
        }
    )


# --- Observations ------------------------------------------------------------------------------


def _observation(
    ident: str,
    *,
    profile: str | None,
    category: list[dict[str, Any]],
    code: dict[str, Any],
    encounter_id: int | None,
    patient_id: int,
    effective: datetime,
    status: str,
    performer=None,
    issued: datetime | None = None,
    note: list[dict[str, str]] | None = None,
    **value: Any,
) -> dict[str, Any]:
    profiles = [PROFILE + "vitalsigns"] + ([PROFILE + profile] if profile else [])
    return _clean(
        {
            "resourceType": "Observation",
            "id": ident,
            "meta": {"profile": profiles} if category[0]["text"] == "Vital Signs" else None,
            "status": status,
            "category": category,
            "code": code,
            "subject": _ref("Patient", str(patient_id)),
            "encounter": _ref("Encounter", str(encounter_id)) if encounter_id is not None else None,
            "effectiveDateTime": instant(effective),
            "issued": issued and instant(issued),
            "performer": [_display(performer)] if performer is not None else None,
            "note": note,
            **value,
        }
    )


def _reading_levels(flags: list[dict[str, Any]] | None) -> dict[str, str]:
    levels: dict[str, str] = {}
    for flag in flags or []:
        name, level = flag.get("field"), flag.get("level")
        if name and level:
            levels[name] = clinical.worst([levels.get(name, "normal"), level])
    return levels


# A reading's observations, built key by key in the order _observation() gives them, with only
# the keys that have a value (no _clean pass over ~9,600 dicts) and the constant parts shared
# between observations (the bundle is read-only: it goes to json.dumps).
def _vital_meta(profile: str) -> dict[str, list[str]]:
    return {"profile": [PROFILE + "vitalsigns", PROFILE + profile]}


_VITAL_SIGNS = _category("vital-signs", "Vital Signs")
_BP_META = _vital_meta("bp")
_BP_CODE = _concept(
    [("85354-9", "Blood pressure panel with all children optional")], "Blood pressure"
)
_BP_PARTS = (
    ("systolic", _concept([("8480-6", "Systolic blood pressure")], "Systolic blood pressure")),
    ("diastolic", _concept([("8462-4", "Diastolic blood pressure")], "Diastolic blood pressure")),
)
_NOT_PERFORMED = {"coding": [_coding(DATA_ABSENT, "not-performed", "Not Performed")]}
# key -> (meta, code, UCUM unit, Reading column)
_VITALS = {
    key: (_vital_meta(profile), _concept(codings, text), ucum, name)
    for key, (codings, text, profile, ucum, name) in VITALS.items()
}
_O2_FLOW_CODE = _concept([("3151-8", "Inhaled oxygen flow rate")], "O2 flow")
_EXAM = _category("exam", "Exam")
_RHYTHM_CODE = _concept([("8884-9", "Heart rate rhythm")], "Cardiac rhythm")
_SURVEY = _category("survey", "Survey")
_PAIN_CODE = _concept([SCORE_LOINC["pain_nrs"]], "Pain (0-10)")


def _reading_tail(row, patient_id: int) -> dict[str, Any]:
    """The keys after "code" that every observation of a reading shares, in their order."""
    tail: dict[str, Any] = {
        "subject": _ref("Patient", str(patient_id)),
        "encounter": _ref("Encounter", str(row.infusion_id)),
        "effectiveDateTime": instant(row.taken_at),
    }
    if row.created_at:
        tail["issued"] = instant(row.created_at)
    tail["performer"] = [{"display": staff_name(row.recorded_by_name, row.recorded_by_credentials)}]
    notes = []
    if row.voided_at is not None:
        voided_by = row.voided_by_name
        if voided_by is not None:
            voided_by = staff_name(voided_by, row.voided_by_credentials)
        notes = _void_text(voided_by, row.voided_at, row.void_reason)
    if row.corrects_id:
        notes.append({"text": f"Corrects reading {row.corrects_id}."})
    if notes:
        tail["note"] = notes
    return tail


def _bp_components(row, levels: dict[str, str]) -> list[dict[str, Any]]:
    components = []
    for name, code in _BP_PARTS:
        value = getattr(row, name)
        component: dict[str, Any] = {"code": code}
        if value is None:
            component["dataAbsentReason"] = _NOT_PERFORMED
        else:
            component["valueQuantity"] = _quantity(value, "mm[Hg]")
        interpretation = _interpretation(levels.get(name))
        if interpretation:
            component["interpretation"] = interpretation
        components.append(component)
    return components


def reading_observations(row, patient_id: int) -> list[dict[str, Any]]:
    """One Observation per measurement in the reading (the BP pair as one panel).

    `row` is a row of csv_export.reading_rows(): the reading's columns and the names of who
    recorded and who voided it."""
    status = "entered-in-error" if row.voided_at is not None else "final"
    levels = _reading_levels(row.flags)
    tail = _reading_tail(row, patient_id)

    def observation(key: str, meta, category, code) -> dict[str, Any]:
        resource = {"resourceType": "Observation", "id": f"reading-{row.id}-{key}"}
        if meta is not None:
            resource["meta"] = meta
        resource["status"] = status
        resource["category"] = category
        resource["code"] = code
        resource.update(tail)
        return resource

    out = []
    if row.systolic is not None or row.diastolic is not None:
        resource = observation("bp", _BP_META, _VITAL_SIGNS, _BP_CODE)
        resource["component"] = _bp_components(row, levels)
        out.append(resource)
    for key, (meta, code, ucum, name) in _VITALS.items():
        value = getattr(row, name)
        if value is None:
            continue
        resource = observation(key, meta, _VITAL_SIGNS, code)
        resource["valueQuantity"] = _quantity(value, ucum)
        if key == "spo2" and row.o2_flow_lpm:
            resource["component"] = [
                {"code": _O2_FLOW_CODE, "valueQuantity": _quantity(row.o2_flow_lpm, "L/min")}
            ]
        interpretation = _interpretation(levels.get(name))
        if interpretation:
            resource["interpretation"] = interpretation
        out.append(resource)
    if row.rhythm:
        label = RHYTHMS.get(row.rhythm, row.rhythm)
        if row.rhythm == "other" and row.rhythm_other:
            label = f"Other: {row.rhythm_other}"
        resource = observation("rhythm", None, _EXAM, _RHYTHM_CODE)
        resource["valueCodeableConcept"] = {"text": label}
        interpretation = _interpretation(levels.get("rhythm"))
        if interpretation:
            resource["interpretation"] = interpretation
        out.append(resource)
    if row.pain is not None:
        resource = observation("pain", None, _SURVEY, _PAIN_CODE)
        resource["valueQuantity"] = _quantity(row.pain, "{score}")
        out.append(resource)
    return out


def weight_observation(infusion: InfusionSession) -> dict[str, Any] | None:
    if infusion.weight_kg is None:
        return None
    when = infusion.checked_in_at or infusion.started_at or infusion.scheduled_for
    return _observation(
        f"infusion-{infusion.id}-weight",
        profile="bodyweight",
        category=_category("vital-signs", "Vital Signs"),
        code=_concept([("29463-7", "Body weight")], "Body weight (dosing)"),
        encounter_id=infusion.id,
        patient_id=infusion.patient_id,
        effective=when,
        status="final",
        valueQuantity=_quantity(round(infusion.weight_kg, 1), "kg"),
    )


def score_observation(assessment: Assessment, base_url: str) -> dict[str, Any]:
    label = INSTRUMENTS[assessment.instrument][0]
    if assessment.instrument in SCORE_LOINC:
        code, display = SCORE_LOINC[assessment.instrument]
        concept = _concept([(code, display)], label)
    else:
        concept = {
            "coding": [_coding(f"{base_url}/CodeSystem/instrument", assessment.instrument, label)],
            "text": label,
        }
    return _observation(
        f"assessment-{assessment.id}",
        profile=None,
        category=_category("survey", "Survey"),
        code=concept,
        encounter_id=assessment.infusion_id,
        patient_id=assessment.patient_id,
        effective=assessment.taken_at,
        status="entered-in-error" if assessment.is_voided else "final",
        performer=assessment.recorded_by,
        issued=assessment.created_at,
        note=_void_note(assessment) if assessment.is_voided else None,
        valueQuantity=_quantity(assessment.score, "{score}"),
    )


# --- MedicationAdministration ------------------------------------------------------------------


def administration_status(infusion: InfusionSession, ran_minutes: float) -> str:
    """paused -> on-hold; stopped early (by status, or ended short of the plan) -> stopped."""
    if infusion.status == "cancelled":
        return "not-done"
    if infusion.status == "infusing":
        return "in-progress"
    if infusion.status == "paused":
        return "on-hold"
    if infusion.status == "stopped_early":
        return "stopped"
    if clinical.ended_short(ran_minutes, infusion.duration_min):
        return "stopped"
    return "completed"


def medication_administration(infusion: InfusionSession, now: datetime) -> dict[str, Any] | None:
    """The infusion as given; None while nothing has been given (planned, checked in)."""
    if infusion.started_at is None and infusion.status != "cancelled":
        return None
    # What the pump gave (clinical.pump_run, to the stop or now): the number the session page
    # and the printed record show.
    run = queries.pump_run(infusion, now)
    status = administration_status(infusion, run.minutes)
    drug = infusion.drug or "ketamine"
    medication: dict[str, Any] = {"text": drug}
    if drug.lower() == "ketamine":
        medication["coding"] = [_coding(RXNORM, "6130", "ketamine")]
    total = infusion.total_mg
    mg_per_h = total * 60 / infusion.duration_min if total and infusion.duration_min else None
    ml_per_h = mg_per_h / infusion.concentration_mg_per_ml if mg_per_h else None
    dosage: dict[str, Any] = {
        "route": {"coding": [_coding(SNOMED, "47625008", "Intravenous route")]},
    }
    if mg_per_h:
        dosage["rateQuantity"] = _quantity(round(mg_per_h, 2), "mg/h")
    if run.given_mg > 0:
        dosage["dose"] = _quantity(run.given_mg, "mg")
    if total:
        dosage["text"] = (
            f"{infusion.dose_mg_per_kg:g} mg/kg × {infusion.weight_kg or 0:g} kg = {total:g} mg "
            f"over {infusion.duration_min} min ({infusion.concentration_mg_per_ml:g} mg/mL"
            + (f", {ml_per_h:.2f} mL/h" if ml_per_h else "")
            + f"); pump ran {run.minutes:.0f} min"
        )
    stop_reasons = [e.reason for e in infusion.events if e.kind in ("stop", "pause") and e.reason]
    status_reason = None
    if status == "not-done":
        status_reason = [{"text": infusion.cancel_reason or "Session cancelled"}]
    elif status in ("stopped", "on-hold") and stop_reasons:
        status_reason = [{"text": stop_reasons[-1]}]
    if status == "not-done":
        effective = {"effectiveDateTime": instant(infusion.cancelled_at or infusion.scheduled_for)}
    else:
        effective = {
            "effectivePeriod": _clean(
                {
                    "start": instant(infusion.started_at),
                    "end": infusion.ended_at and instant(infusion.ended_at),
                }
            )
        }
    return _clean(
        {
            "resourceType": "MedicationAdministration",
            "id": f"infusion-{infusion.id}",
            "status": status,
            "statusReason": status_reason,
            "medicationCodeableConcept": medication,
            "subject": _ref("Patient", str(infusion.patient_id)),
            "context": _ref("Encounter", str(infusion.id)),
            **effective,
            "performer": [{"actor": _display(infusion.clinician)}],
            "reasonCode": _indication(infusion),
            "dosage": dosage if status != "not-done" else None,
        }
    )


# --- The bundle ----------------------------------------------------------------------------------


def patient_bundle(
    patient: Patient,
    infusions: list[InfusionSession],
    readings: list,
    assessments: list[Assessment],
    base_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The patient's record as a FHIR R4 collection Bundle (a dict ready for json.dumps).

    `readings` are the rows of csv_export.reading_rows() (each session's in time order);
    `base_url` is this record's FHIR base: entries are `{base_url}/{type}/{id}`.
    """
    now = now or utcnow()
    base_url = base_url.rstrip("/")
    by_session: dict[int, list] = {}
    for row in readings:
        by_session.setdefault(row.infusion_id, []).append(row)
    resources: list[dict[str, Any]] = [patient_resource(patient, base_url)]
    for infusion in infusions:
        resources.append(encounter_resource(infusion))
        weight = weight_observation(infusion)
        if weight:
            resources.append(weight)
        administration = medication_administration(infusion, now)
        if administration:
            resources.append(administration)
        for row in by_session.get(infusion.id, ()):
            resources.extend(reading_observations(row, patient.id))
    resources.extend(score_observation(a, base_url) for a in assessments)
    return {
        "resourceType": "Bundle",
        "id": f"patient-{patient.id}-{now.strftime('%Y%m%d%H%M%S')}",
        "meta": {"lastUpdated": instant(now)},
        "type": "collection",
        "timestamp": instant(now),
        "entry": [_entry(base_url, resource) for resource in resources],
    }


def bundle_json(bundle: dict) -> bytes:
    """The bundle as compact UTF-8 JSON, the bytes json.dumps(bundle, ensure_ascii=False,
    separators=(",", ":")) would give (tests/test_exports.py), written by orjson: 8 ms for a
    30-session record's 6 MB where the standard library's C encoder took 60, and its text
    still had to be encoded (bench/RESULTS.md, Stop 31)."""
    return orjson.dumps(bundle)


def export_filename(patient: Patient, today: date, suffix: str) -> str:
    """A safe attachment name: letters, digits and dashes from the MRN, then the date."""
    mrn = "".join(c for c in patient.mrn if c.isalnum() or c == "-") or str(patient.id)
    return f"patient-{mrn}-{today.isoformat()}{suffix}"
