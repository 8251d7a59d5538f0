"""A believable demo clinic for `flask seed-demo`, built through the same services the pages
use (so every row is validated, flagged and audited as if it had been charted)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from .auth.services import create_staff
from .extensions import db
from .infusions import adverse_events, lifecycle, readings
from .ledger.demo import seed_ledger
from .models import INDICATIONS, InfusionSession, Patient, Protocol, Staff
from .patients.assessments import record_assessment
from .patients.services import create_patient
from .protocols.services import PAIN_PROTOCOL, create_protocol, ensure_default_protocol
from .review.services import sign_infusion
from .timeutil import clinic_day_bounds, clinic_today, from_clinic, utcnow

DEMO_PASSWORD = "demo clinic tablet 2026"  # noqa: S105 (printed for the demo on purpose)
STAFF = [
    ("office", "Olive Martinez", "MBA", "admin"),
    ("drpatel", "Anita Patel", "MD", "physician"),
    ("drokafor", "Daniel Okafor", "DO", "physician"),
    ("jroe", "Jane Roe", "APRN", "np"),
    ("lnguyen", "Linh Nguyen", "FNP-C", "np"),
    ("mchen", "Marcus Chen", "PA-C", "pa"),
]
FIRST = ["Avery", "Jordan", "Morgan", "Riley", "Casey", "Taylor", "Quinn", "Harper", "Elena",
         "Marcus", "Priya", "Samuel", "Grace", "Omar", "Hannah", "Luis", "Mei", "Noah", "Zoe",
         "Isaac", "Fatima", "Dmitri", "Leah", "Carlos", "Aisha"]
LAST = ["Bennett", "Castillo", "Delgado", "Ellison", "Fischer", "Garrison", "Holloway", "Ibarra",
        "Jensen", "Kowalski", "Lindqvist", "Moreno", "Nakamura", "Okonkwo", "Petrov", "Quintero",
        "Rasmussen", "Sandoval", "Thibodeaux", "Underwood", "Valdez", "Whitaker", "Yamamoto",
        "Zielinski", "Abernathy"]
ALLERGIES = ["", "", "", "Penicillin (rash)", "Sulfa drugs (hives)", "Latex", "Codeine (nausea)"]
MEDICATIONS = ["Sertraline 100 mg daily", "Bupropion XL 300 mg daily",
               "Venlafaxine 150 mg daily; lamotrigine 100 mg", "Duloxetine 60 mg daily",
               "Gabapentin 300 mg TID", "Escitalopram 20 mg daily; trazodone 50 mg at night"]
PAIN_INDICATIONS = ("fibromyalgia", "crps", "sfn")
# A patient's weight moves by at most this much (kg) either side of their own across a series.
WEIGHT_DRIFT_KG = 0.8


@dataclass
class Demo:
    staff: dict[str, Staff]
    depression: Protocol
    pain: Protocol
    rng: random.Random
    to_sign: list[InfusionSession] = field(default_factory=list)
    weights: dict[int, float] = field(default_factory=dict)  # patient id: usual weight, kg

    def protocol_for(self, patient: Patient) -> Protocol:
        """Pain conditions run on the pain protocol; the rest on the (depression) default."""
        return self.pain if patient.indication in PAIN_INDICATIONS else self.depression

    def weight_of(self, patient: Patient) -> float:
        """The patient's weight on the day: their own, give or take WEIGHT_DRIFT_KG."""
        usual = self.weights.setdefault(patient.id, round(self.rng.uniform(52, 105), 1))
        return round(usual + self.rng.uniform(-WEIGHT_DRIFT_KG, WEIGHT_DRIFT_KG), 1)


def seed_demo(seed: int = 2026) -> dict[str, str]:
    """Build the demo clinic; returns {username: role} of the accounts created."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(Patient)):
        raise ValueError("The database already holds patients; seed the demo into an empty one.")
    rng = random.Random(seed)
    staff = {}
    for username, name, credentials, role in STAFF:
        existing = db.session.scalar(sa.select(Staff).where(Staff.username == username))
        staff[username] = existing or create_staff(
            username, name, role, DEMO_PASSWORD, credentials=credentials
        )
    physician = staff["drpatel"]
    demo = Demo(
        staff=staff,
        depression=ensure_default_protocol(physician),
        pain=create_protocol(PAIN_PROTOCOL, physician),
        rng=rng,
    )
    patients = [_patient(demo, number) for number in range(50)]
    today = clinic_today()
    for number, patient in enumerate(patients[:18]):
        # Completed series: 2–6 infusions, twice a week, ending before today.
        count = 2 + number % 5
        responder = number % 3 != 2
        _series(demo, patient, count, today, responder)
    _today(demo, patients[18:24], today)
    # The ledger is balanced first: the physician signs only reconciled sessions.
    seed_ledger(staff, rng, DEMO_PASSWORD)
    for infusion in demo.to_sign:
        sign_infusion(
            infusion, physician,
            "I have reviewed this infusion record and attest that it is accurate and complete.",
            infusion.version, password=DEMO_PASSWORD,
        )  # fmt: skip
    return {username: role for username, _, _, role in STAFF}


def _patient(demo: Demo, number: int) -> Patient:
    rng = demo.rng
    indication = list(INDICATIONS)[number % (len(INDICATIONS) - 1)]
    born = date(1955 + rng.randrange(45), 1 + rng.randrange(12), 1 + rng.randrange(28))
    return create_patient(
        {
            "mrn": "",
            "first_name": FIRST[number % len(FIRST)],
            "last_name": LAST[(number * 7) % len(LAST)],
            "date_of_birth": born,
            "sex": ("female", "male")[number % 2],
            "indication": indication,
            "indication_other": "",
            "allergies": rng.choice(ALLERGIES),
            "medications": rng.choice(MEDICATIONS),
            "emergency_contact": f"{rng.choice(FIRST)} {LAST[number % len(LAST)]}, "
            f"(555) 01{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
            "notes": "",
        },
        demo.staff["jroe"],
    )


def _clinic_time(day: date, hour: int, minute: int = 0) -> datetime:
    return from_clinic(datetime(day.year, day.month, day.day, hour, minute))


def _series(demo: Demo, patient: Patient, count: int, today: date, responder: bool) -> None:
    rng = demo.rng
    pain = patient.indication in PAIN_INDICATIONS
    first_day = today - timedelta(days=4 * count + 3)
    phq9 = rng.randrange(17, 24)
    record_assessment(
        patient, instrument="phq9", score=phq9, actor=demo.staff["jroe"],
        taken_at=_clinic_time(first_day - timedelta(days=7), 10),
    )
    for number in range(1, count + 1):
        day = first_day + timedelta(days=4 * (number - 1))
        clinician = demo.staff[rng.choice(["jroe", "lnguyen", "mchen"])]
        start = _clinic_time(day, 9 + number % 3, 0)
        infusion = _plan(demo, patient, clinician, start - timedelta(minutes=20))
        # PHQ-9 falls over the series for responders, and only a little for the rest.
        drop = (0.55 if responder else 0.12) * (number - 1) / max(count - 1, 1)
        score = max(1, round(phq9 * (1 - drop)) + rng.randrange(-1, 2))
        record_assessment(
            patient, instrument="phq9", score=score, actor=clinician, infusion=infusion,
            taken_at=start - timedelta(minutes=15),
        )
        if pain:
            record_assessment(
                patient, instrument="pain_nrs", score=max(0, 8 - number + rng.randrange(0, 2)),
                actor=clinician, infusion=infusion, taken_at=start - timedelta(minutes=14),
            )
        _run(demo, infusion, clinician, start, surge=number <= 2, finish=True)
        if number < count or rng.random() < 0.6:
            demo.to_sign.append(infusion)


def _plan(demo, patient, clinician, check_in_at, room="") -> InfusionSession:
    rng = demo.rng
    infusion = lifecycle.plan_infusion(
        patient,
        {
            "protocol_id": demo.protocol_for(patient).id,
            "clinician_id": clinician.id,
            "physician_id": demo.staff["drpatel"].id,
            "scheduled_for": check_in_at,
            "room": room or f"Room {rng.randrange(1, 7)}",
            "weight_kg": demo.weight_of(patient),
        },
        clinician,
    )
    return infusion


def _vitals(demo: Demo, base: dict, rise: float, hr_rise: float) -> dict:
    rng = demo.rng
    return {
        "systolic": round(base["systolic"] + rise + rng.uniform(-3, 3)),
        "diastolic": round(base["diastolic"] + rise * 0.45 + rng.uniform(-2, 2)),
        "heart_rate": round(base["heart_rate"] + hr_rise + rng.uniform(-3, 3)),
        "resp_rate": rng.choice([12, 14, 14, 16]),
        "spo2": rng.choice([96, 97, 98, 98, 99]),
        "o2_flow_lpm": None,
        "rhythm": "nsr",
        "avpu": "A",
    }


def _run(demo: Demo, infusion: InfusionSession, clinician: Staff, start: datetime, *,
         surge: bool, finish: bool, until: datetime | None = None) -> None:
    """Check in, chart a baseline, start, chart every interval; finish = stop and discharge."""
    rng = demo.rng
    checked_in = start - timedelta(minutes=20)
    lifecycle.check_in(infusion, clinician, at=checked_in)
    lifecycle.update_infusion(
        infusion,
        {"consent_on_file": True, "npo_confirmed": True, "escort_name": "Spouse",
         "pregnancy_status": "not_applicable" if infusion.patient.sex == "male" else "negative",
         "med_allergy_review_done": True, "iv_site": "Left antecubital", "iv_gauge": "22",
         "lot_number": f"KET{rng.randrange(10000, 99999)}"},
        clinician, infusion.version,
    )
    base = {"systolic": rng.randrange(112, 134), "diastolic": rng.randrange(70, 84),
            "heart_rate": rng.randrange(62, 82)}
    now = utcnow()
    readings.record_reading(
        infusion,
        {**_vitals(demo, base, 0, 0), "taken_at": start - timedelta(minutes=8),
         "phase": "baseline", "temperature_c": 36.7, "moaas": 5, "pain": None},
        clinician, now=now,
    )
    lifecycle.start_infusion(infusion, clinician, at=start)
    duration = infusion.duration_min
    interval = infusion.protocol.reading_interval_infusion_min
    # Ketamine's pressor effect: BP climbs toward the end of the infusion, more in the first ones.
    peak = rng.uniform(22, 42) if surge else rng.uniform(10, 26)
    hr_peak = rng.uniform(6, 16)
    end = until or now
    minute = interval
    while minute <= duration and start + timedelta(minutes=minute) <= end:
        shape = math.sin(math.pi / 2 * min(minute / min(duration, 45), 1))
        values = _vitals(demo, base, peak * shape, hr_peak * shape)
        values.update(moaas=rng.choice([3, 4, 4, 5]), taken_at=start + timedelta(minutes=minute),
                      phase="infusion")
        readings.record_reading(infusion, values, clinician, now=now)
        minute += interval
    if not finish:
        return
    stopped = start + timedelta(minutes=duration)
    if surge and rng.random() < 0.3:
        adverse_events.record_adverse_event(
            infusion,
            {"onset_at": start + timedelta(minutes=min(30, duration - 5)),
             "event_type": "hypertension", "severity": "moderate", "serious": False,
             "intervention": "Reassurance, dimmed lights; rechecked BP in 5 minutes",
             "infusion_action": "none", "physician_notified": True,
             "outcome": "Resolved by end of infusion"},
            clinician, now=now,
        )
    lifecycle.stop_infusion(infusion, clinician, at=stopped)
    recovery = infusion.protocol.min_observation_min
    for after in range(15, recovery + 1, 15):
        fade = max(0.0, 1 - after / 30)
        values = _vitals(demo, base, peak * fade * 0.6, hr_peak * fade * 0.5)
        values.update(moaas=5, taken_at=stopped + timedelta(minutes=after), phase="recovery")
        readings.record_reading(infusion, values, clinician, now=now)
    lifecycle.discharge(
        infusion,
        {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2,
         "escort": "Spouse", "at": stopped + timedelta(minutes=recovery + 2),
         "note": "Tolerated well; oriented, steady gait."},
        clinician,
    )


def _today(demo: Demo, patients: list[Patient], today: date) -> None:
    """Two sessions in progress, one finished this morning, and two still planned."""
    now = utcnow()
    day_start, _ = clinic_day_bounds(today)
    rng = demo.rng
    nurse, pa = demo.staff["jroe"], demo.staff["mchen"]
    # In progress: started 25 and 50 minutes ago (the second one is in recovery).
    running = _plan(demo, patients[0], nurse, now - timedelta(minutes=45),
                    room="Room 1")
    _run(demo, running, nurse, now - timedelta(minutes=25), surge=True, finish=False)
    recovering = _plan(demo, patients[1], pa, now - timedelta(minutes=80),
                       room="Room 2")
    _run(demo, recovering, pa, now - timedelta(minutes=60), surge=False, finish=False,
         until=now - timedelta(minutes=20))
    lifecycle.stop_infusion(recovering, pa, at=now - timedelta(minutes=19))
    # A session this morning that is finished and waiting for signature (only if the clinic
    # day is old enough to hold it).
    morning = now - timedelta(hours=3)
    if morning > day_start + timedelta(minutes=30):
        done = _plan(demo, patients[2], nurse, morning - timedelta(minutes=20),
                     room="Room 3")
        _run(demo, done, nurse, morning, surge=False, finish=True, until=now)
    for offset, patient in zip((60, 120), patients[3:5], strict=True):
        _plan(demo, patient, rng.choice([nurse, pa]),
              now + timedelta(minutes=offset), room=f"Room {offset // 60 + 3}")
