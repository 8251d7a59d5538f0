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
from typing import Any

from .. import clinical
from ..infusions import queries
from ..models import Assessment, InfusionSession, Patient, Reading
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


def _void_note(row) -> list[dict[str, str]]:
    who = f" by {row.voided_by.display_name}" if row.voided_by is not None else ""
    text = f"Entered in error; voided{who} at {instant(row.voided_at)}: {row.void_reason}"
    return [{"text": text}]


def _entry(base_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR forbids empty elements: drop None, empty lists and empty dicts."""
    return {k: v for k, v in resource.items() if v is not None and v != [] and v != {}}


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


def _reading_levels(reading: Reading) -> dict[str, str]:
    levels: dict[str, str] = {}
    for flag in reading.flags or []:
        name, level = flag.get("field"), flag.get("level")
        if name and level:
            levels[name] = clinical.worst([levels.get(name, "normal"), level])
    return levels


def reading_observations(reading: Reading, patient_id: int) -> list[dict[str, Any]]:
    """One Observation per measurement in the reading (the BP pair as one panel)."""
    status = "entered-in-error" if reading.is_voided else "final"
    levels = _reading_levels(reading)
    notes = _void_note(reading) if reading.is_voided else []
    if reading.corrects_id:
        notes.append({"text": f"Corrects reading {reading.corrects_id}."})
    common = {
        "encounter_id": reading.infusion_id,
        "patient_id": patient_id,
        "effective": reading.taken_at,
        "status": status,
        "performer": reading.recorded_by,
        "issued": reading.created_at,
        "note": notes or None,
    }
    vital_signs = _category("vital-signs", "Vital Signs")
    out = []
    if reading.systolic is not None or reading.diastolic is not None:
        components = []
        for name, code, display in (
            ("systolic", "8480-6", "Systolic blood pressure"),
            ("diastolic", "8462-4", "Diastolic blood pressure"),
        ):
            value = getattr(reading, name)
            component: dict[str, Any] = {"code": _concept([(code, display)], display)}
            if value is None:
                component["dataAbsentReason"] = {
                    "coding": [_coding(DATA_ABSENT, "not-performed", "Not Performed")]
                }
            else:
                component["valueQuantity"] = _quantity(value, "mm[Hg]")
            component = _clean({**component, "interpretation": _interpretation(levels.get(name))})
            components.append(component)
        out.append(
            _observation(
                f"reading-{reading.id}-bp",
                profile="bp",
                category=vital_signs,
                code=_concept(
                    [("85354-9", "Blood pressure panel with all children optional")],
                    "Blood pressure",
                ),
                component=components,
                **common,
            )
        )
    for key, (codings, text, profile, ucum, name) in VITALS.items():
        value = getattr(reading, name)
        if value is None:
            continue
        extra: dict[str, Any] = {}
        if key == "spo2" and reading.o2_flow_lpm:
            extra["component"] = [
                {
                    "code": _concept([("3151-8", "Inhaled oxygen flow rate")], "O2 flow"),
                    "valueQuantity": _quantity(reading.o2_flow_lpm, "L/min"),
                }
            ]
        interpretation = _interpretation(levels.get(name))
        if interpretation:
            extra["interpretation"] = interpretation
        out.append(
            _observation(
                f"reading-{reading.id}-{key}",
                profile=profile,
                category=vital_signs,
                code=_concept(codings, text),
                valueQuantity=_quantity(value, ucum),
                **extra,
                **common,
            )
        )
    if reading.rhythm:
        label = RHYTHMS.get(reading.rhythm, reading.rhythm)
        if reading.rhythm == "other" and reading.rhythm_other:
            label = f"Other: {reading.rhythm_other}"
        out.append(
            _observation(
                f"reading-{reading.id}-rhythm",
                profile=None,
                category=_category("exam", "Exam"),
                code=_concept([("8884-9", "Heart rate rhythm")], "Cardiac rhythm"),
                valueCodeableConcept={"text": label},
                interpretation=_interpretation(levels.get("rhythm")),
                **common,
            )
        )
    if reading.pain is not None:
        code, display = SCORE_LOINC["pain_nrs"]
        out.append(
            _observation(
                f"reading-{reading.id}-pain",
                profile=None,
                category=_category("survey", "Survey"),
                code=_concept([(code, display)], "Pain (0-10)"),
                valueQuantity=_quantity(reading.pain, "{score}"),
                **common,
            )
        )
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
    assessments: list[Assessment],
    base_url: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The patient's record as a FHIR R4 collection Bundle (a dict ready for json.dumps).

    `base_url` is this record's FHIR base: entries are `{base_url}/{type}/{id}`.
    """
    now = now or utcnow()
    base_url = base_url.rstrip("/")
    resources: list[dict[str, Any]] = [patient_resource(patient, base_url)]
    for infusion in infusions:
        resources.append(encounter_resource(infusion))
        weight = weight_observation(infusion)
        if weight:
            resources.append(weight)
        administration = medication_administration(infusion, now)
        if administration:
            resources.append(administration)
        for reading in infusion.readings:
            resources.extend(reading_observations(reading, patient.id))
    resources.extend(score_observation(a, base_url) for a in assessments)
    return {
        "resourceType": "Bundle",
        "id": f"patient-{patient.id}-{now.strftime('%Y%m%d%H%M%S')}",
        "meta": {"lastUpdated": instant(now)},
        "type": "collection",
        "timestamp": instant(now),
        "entry": [_entry(base_url, resource) for resource in resources],
    }


def export_filename(patient: Patient, today: date, suffix: str) -> str:
    """A safe attachment name: letters, digits and dashes from the MRN, then the date."""
    mrn = "".join(c for c in patient.mrn if c.isalnum() or c == "-") or str(patient.id)
    return f"patient-{mrn}-{today.isoformat()}{suffix}"
