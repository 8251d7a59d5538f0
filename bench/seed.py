"""The benchmark's dataset: a clinic's (or a chain's) years of charting, built through the app's
own models with bulk inserts, and an audit trail whose hash chain `verify-audit` accepts.

Everything is deterministic for a scale (one random seed), ids are assigned here in time order,
and each day's audit rows are chained in time order, as the app would have written them.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from infusion_tracker import audit, clinical
from infusion_tracker.auth.services import STAFF_AUDIT_FIELDS
from infusion_tracker.extensions import db
from infusion_tracker.infusions.readings import ENTRY_FIELDS
from infusion_tracker.ledger import services as ledger
from infusion_tracker.models import (
    Assessment,
    AuditEvent,
    InfusionEvent,
    InfusionSession,
    LedgerEntry,
    LedgerVial,
    Patient,
    Protocol,
    Reading,
    Staff,
)
from infusion_tracker.passwords import hash_password
from infusion_tracker.patients.services import MRN_DIGITS, MRN_PREFIX
from infusion_tracker.protocols.services import ensure_default_protocol
from infusion_tracker.timeutil import clinic_today, from_clinic, utcnow

PASSWORD = "bench clinic tablet 2026"  # noqa: S105 (a throwaway benchmark login)
STAFF = [  # username, full name, credentials, role
    ("office", "Olive Martinez", "MBA", "admin"),
    ("drpatel", "Anita Patel", "MD", "physician"),
    ("drokafor", "Daniel Okafor", "DO", "physician"),
    ("jroe", "Jane Roe", "APRN", "np"),
    ("lnguyen", "Linh Nguyen", "FNP-C", "np"),
    ("mchen", "Marcus Chen", "PA-C", "pa"),
]
CLINICIANS = ("jroe", "lnguyen", "mchen")
PHYSICIANS = ("drpatel", "drokafor")
FIRST = [
    "Avery",
    "Jordan",
    "Morgan",
    "Riley",
    "Casey",
    "Taylor",
    "Quinn",
    "Harper",
    "Elena",
    "Marcus",
    "Priya",
    "Samuel",
    "Grace",
    "Omar",
    "Hannah",
    "Luis",
    "Mei",
    "Noah",
    "Zoe",
    "Isaac",
    "Fatima",
    "Dmitri",
    "Leah",
    "Carlos",
    "Aisha",
    "Ben",
    "Chloe",
    "Diego",
    "Erin",
    "Felix",
    "Gina",
    "Hugo",
    "Ivy",
    "Jamal",
    "Kira",
    "Liam",
    "Maya",
    "Nina",
]
LAST = [
    "Bennett",
    "Castillo",
    "Delgado",
    "Ellison",
    "Fischer",
    "Garrison",
    "Holloway",
    "Ibarra",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreno",
    "Nakamura",
    "Okonkwo",
    "Petrov",
    "Quintero",
    "Rasmussen",
    "Sandoval",
    "Thibodeaux",
    "Underwood",
    "Valdez",
    "Whitaker",
    "Yamamoto",
    "Zielinski",
    "Abernathy",
    "Brennan",
    "Carvalho",
    "Dubois",
    "Eriksen",
    "Ferreira",
    "Gallagher",
    "Hartmann",
    "Iverson",
    "Jovanovic",
    "Kaplan",
    "Lachance",
    "Mbeki",
    "Novak",
    "Oyelaran",
    "Pacheco",
    "Rinaldi",
    "Salazar",
    "Takahashi",
    "Vasquez",
    "Wong",
]
INDICATIONS = ["depression", "trd", "depression", "trd", "ptsd", "ocd", "depression_si"]
ROOMS = [f"Room {n}" for n in range(1, 7)]
# Today's board: one session per room, in the chartable states the board draws.
ACTIVE = [
    ("infusing", 10),
    ("infusing", 14),
    ("recovery", 16),
    ("infusing", 6),
    ("stopped_early", 12),
    ("checked_in", 2),
]
HEAVY_SESSIONS = 30  # the "patient with ~30 sessions" of the patient page and the exports
HEAVY_READINGS = 40  # the "session with 40 readings" of the session page
UNSIGNED_DAYS = 3  # sessions of the last days still wait for the physician's signature
BATCH = 20_000

DEFAULT_ATTESTATION = (
    "I have reviewed this infusion record and attest that it is accurate and complete."
)


@dataclass(frozen=True)
class Scale:
    patients: int
    sessions: int
    readings: int
    audit: int
    clinics: int  # sessions a day grow with the clinics of a chain; the years stay the same


SCALES = {
    "tiny": Scale(30, 250, 7_000, 12_000, 1),
    "clinic": Scale(2_000, 20_000, 600_000, 1_000_000, 1),
    "chain": Scale(20_000, 200_000, 6_000_000, 10_000_000, 10),
}


@dataclass
class Planned:
    day: int  # days from the first clinic day; `days` is today
    minute: int  # clinic wall-clock minute of the day
    patient: int  # patient id
    series: int
    readings: int
    kind: str  # signed, awaiting (discharged, not signed), active, planned
    status: str = "discharged"
    id: int = 0
    room: str = ""  # today's board: one active session per room


@dataclass
class Plan:
    days: int
    patients: int
    heavy: list[int]
    sessions: list[Planned] = field(default_factory=list)


def _series_days(count: int, rng: random.Random) -> list[int]:
    """Twice a week for the first six infusions, then maintenance every two or three weeks."""
    days, day = [], 0
    for number in range(count):
        days.append(day)
        day += rng.randint(3, 4) if number < 6 else rng.randint(10, 21)
    return days


def _spread(total: int, count: int, low: int, high: int, rng: random.Random) -> list[int]:
    """`count` whole numbers in [low, high] around their mean, summing to `total` exactly."""
    mean = total / count
    width = min(mean - low, high - mean)
    values = [max(low, min(high, round(mean + rng.uniform(-width, width)))) for _ in range(count)]
    step = 1 if sum(values) < total else -1
    while sum(values) != total:
        index = rng.randrange(count)
        if low <= values[index] + step <= high:
            values[index] += step
    return values


def make_plan(scale: Scale, rng: random.Random) -> Plan:
    """Who comes when, how many readings each session has, and which sessions are open."""
    per_day = 12 * scale.clinics
    days = max(400, math.ceil(scale.sessions / per_day))
    heavy_count = max(3, scale.patients // 20)
    heavy = sorted({1 + round(k * scale.patients / heavy_count) for k in range(heavy_count)})
    others = [p for p in range(1, scale.patients + 1) if p not in set(heavy)]
    active = others[: len(ACTIVE)]
    counts = dict.fromkeys(heavy, HEAVY_SESSIONS)
    spare = scale.sessions - HEAVY_SESSIONS * len(heavy)
    counts.update(zip(others, _spread(spare, len(others), 1, HEAVY_SESSIONS - 2, rng), strict=True))
    plan = Plan(days, scale.patients, heavy)
    for patient, count in counts.items():
        offsets = _series_days(count, rng)
        span = offsets[-1]
        if patient in active:
            start = days - span  # the last one is on the board today
        elif patient in heavy:
            start = days - span - rng.randint(1, 20)  # the last one awaits signature
        else:
            start = rng.randint(0, max(0, days - 1 - span))
        for series, offset in enumerate(offsets, 1):
            plan.sessions.append(
                Planned(
                    start + offset, rng.randrange(8 * 60, 15 * 60), patient, series, 0, "signed"
                )
            )
    heavy_set, active_slots = set(heavy), dict(zip(active, ACTIVE, strict=True))
    fixed = 0
    for session in plan.sessions:
        last = session.series == counts[session.patient]
        if session.patient in active_slots and last:
            session.kind = "active"
            session.status, session.readings = active_slots[session.patient]
        elif session.patient in heavy_set:
            session.readings = HEAVY_READINGS
            session.kind = "awaiting" if last else "signed"
        elif session.day >= days - UNSIGNED_DAYS:
            session.kind = "awaiting"
        fixed += session.readings
    rest = [s for s in plan.sessions if not s.readings]
    for session, count in zip(
        rest, _spread(scale.readings - fixed, len(rest), 6, 2 * HEAVY_READINGS, rng), strict=True
    ):
        session.readings = count
    # Tomorrow's first infusions of a few series: the board's planned list for today.
    for patient in others[len(ACTIVE) : len(ACTIVE) + 3]:
        plan.sessions.append(
            Planned(days, 0, patient, counts[patient] + 1, 0, "planned", "planned")
        )
    plan.sessions.sort(key=lambda s: (s.day, s.minute, s.patient))
    for number, session in enumerate(plan.sessions, 1):
        session.id = number
    return plan


class Chain:
    """Audit rows hashed into the chain in the order they are handed over."""

    def __init__(self, prev_hash: str, next_id: int):
        self.prev = prev_hash
        self.next_id = next_id
        self.rows: list[dict] = []

    def add(
        self,
        at: datetime,
        actor: Staff | None,
        action: str,
        entity_type: str = "",
        entity_id: int | None = None,
        patient_id: int | None = None,
        details: dict | None = None,
    ) -> None:
        row = {
            "id": self.next_id,
            "occurred_at": at,
            "actor_id": actor.id if actor else None,
            "actor_name": actor.username if actor else "anonymous",
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "patient_id": patient_id,
            "details": audit._jsonable(details or {}),
            "remote_addr": "10.0.0.21",
            "prev_hash": self.prev,
            "created_at": at,
        }
        row["hash"] = self.prev = audit.row_hash(self.prev, SimpleNamespace(**row))
        self.next_id += 1
        self.rows.append(row)


class Writer:
    """Buffers rows per model and writes them in foreign-key order with executemany."""

    ORDER = (
        Patient,
        InfusionSession,
        InfusionEvent,
        Reading,
        Assessment,
        LedgerVial,
        LedgerEntry,
        AuditEvent,
    )

    def __init__(self):
        self.buffers = {model: [] for model in self.ORDER}
        self.counts = dict.fromkeys(self.ORDER, 0)

    def add(self, model, row: dict) -> None:
        self.buffers[model].append(row)

    def flush(self, force: bool = False) -> None:
        if not force and sum(map(len, self.buffers.values())) < BATCH:
            return
        for model in self.ORDER:
            rows = self.buffers[model]
            if rows:
                # The model's table through Core: one executemany per batch (the ORM's bulk
                # path spends as long again sorting rows by which columns are None).
                db.session.execute(model.__table__.insert(), rows)
                self.counts[model] += len(rows)
                rows.clear()


def _at(day: date, minute: float) -> datetime:
    return from_clinic(datetime(day.year, day.month, day.day) + timedelta(minutes=minute))


class Safe:
    """The controlled-substance ledger beside the charting, as the clinic keeps it: boxes of
    ten 500 mg ketamine vials received when the open ones run out, a draw for every started
    session, the pump's dose given and the rest wasted with a witness after the stop, and a
    vial's dregs wasted whole before the next is opened. Balances never go below zero."""

    STRENGTH, VOLUME, BOX = 50.0, 10.0, 10

    def __init__(self, writer: Writer, receiver: Staff):
        self.writer = writer
        self.receiver = receiver
        self.next_vial = self.next_entry = 1
        self.shelf: list[int] = []  # open vial first
        self.left: dict[int, int] = {}

    def entry(
        self,
        events: list,
        at,
        actor: Staff,
        kind: str,
        vial: int,
        amount: int,
        infusion=None,
        witness: Staff | None = None,
        action: str = "",
        **extra,
    ) -> None:
        """One ledger row and its audit row (ledger.services.audit_details, as the app writes)."""
        entry_id, self.next_entry = self.next_entry, self.next_entry + 1
        infusion_id, patient_id = infusion or (None, None)
        row = {
            "id": entry_id,
            "vial_id": vial,
            "infusion_id": infusion_id,
            "kind": kind,
            "amount_mcg": amount,
            "diluted_volume_ml": 100.0 if kind == "draw" else None,
            "waste_reason": extra.pop("waste_reason", ""),
            "note": extra.pop("note", ""),
            "witness_id": witness.id if witness else None,
            "corrects_id": None,
            "occurred_at": at,
            "recorded_by_id": actor.id,
            "created_at": at,
        }
        self.writer.add(LedgerEntry, row)
        details = ledger.audit_details(SimpleNamespace(**row), **extra)
        events.append((at, actor, action, "ledger_entry", entry_id, patient_id, details))

    def receive(self, events: list, at) -> None:
        invoice = f"DEA222-{100000 + self.next_vial}"
        lot = f"KET{10000 + self.next_vial // self.BOX}"
        content = ledger.mcg(self.STRENGTH * self.VOLUME)
        for _ in range(self.BOX):
            vial, self.next_vial = self.next_vial, self.next_vial + 1
            self.writer.add(
                LedgerVial,
                {
                    "id": vial,
                    "drug": "ketamine",
                    "strength_mg_per_ml": self.STRENGTH,
                    "volume_ml": self.VOLUME,
                    "lot": lot,
                    "expiry": (at + timedelta(days=540)).date(),
                    "supplier": "Hikma Pharmaceuticals",
                    "invoice_number": invoice,
                    "received_by_id": self.receiver.id,
                    "received_at": at,
                    "created_at": at,
                },
            )
            self.entry(
                events,
                at,
                self.receiver,
                "receipt",
                vial,
                content,
                action="ledger.received",
                note=f"Invoice/form {invoice}",
                lot=lot,
                invoice=invoice,
            )
            self.shelf.append(vial)
            self.left[vial] = content

    def draw(
        self, events: list, at, nurse: Staff, witness: Staff, infusion: tuple, amount: int
    ) -> int:
        """The vial drawn from, after wasting the open vial's dregs or receiving a box."""
        while not self.shelf or self.left[self.shelf[0]] < amount:
            if self.shelf:
                dregs = self.shelf.pop(0)
                self.entry(
                    events,
                    at - timedelta(minutes=2),
                    nurse,
                    "vial_waste",
                    dregs,
                    self.left.pop(dregs),
                    witness=witness,
                    action="ledger.vial_wasted",
                    waste_reason="other",
                    note="Too little left for a dose",
                )
            if not self.shelf:
                self.receive(events, at - timedelta(minutes=30))
        vial = self.shelf[0]
        self.left[vial] -= amount
        self.entry(events, at, nurse, "draw", vial, amount, infusion, action="ledger.drawn")
        return vial


class Builder:
    def __init__(self, scale: Scale, seed: int):
        self.scale = scale
        self.rng = random.Random(seed)
        self.plan = make_plan(scale, self.rng)
        self.today = clinic_today()
        self.now = utcnow().replace(second=0, microsecond=0)
        self.first_day = self.today - timedelta(days=self.plan.days)
        self.writer = Writer()
        self.assess_cache: dict = {}

    def day(self, index: int) -> date:
        return self.first_day + timedelta(days=index)

    # --- the fixed rows: staff and the protocol, through the app's models -----------------

    def bootstrap(self) -> None:
        t0 = _at(self.day(0), 7 * 60)
        password_hash = hash_password(PASSWORD)  # hashed once: scrypt is slow on purpose
        self.staff = {}
        for username, name, credentials, role in STAFF:
            self.staff[username] = Staff(
                username=username,
                full_name=name,
                credentials=credentials,
                role=role,
                password_hash=password_hash,
                password_changed_at=t0,
                created_at=t0,
            )
            db.session.add(self.staff[username])
        db.session.flush()
        # The migration adds the default protocol (without an audit row); this returns it.
        self.protocol = ensure_default_protocol()
        self.limits = clinical.Limits.from_dict(self.protocol.limits)
        self.chain = Chain(audit.GENESIS, 1)
        self.safe = Safe(self.writer, self.staff["jroe"])
        for staff in self.staff.values():
            self.chain.add(
                t0,
                self.staff["office"],
                "staff.created",
                "staff",
                staff.id,
                details={"after": audit.snapshot(staff, STAFF_AUDIT_FIELDS)},
            )

    # --- patients ---------------------------------------------------------------------------

    def patients(self) -> dict[int, dict]:
        first_day = {}
        for session in self.plan.sessions:
            first_day.setdefault(session.patient, session.day)
        rng, rows = self.rng, {}
        for number in range(1, self.plan.patients + 1):
            created = _at(self.day(max(0, first_day[number] - 7)), 9 * 60 + number % 300)
            rows[number] = {
                "id": number,
                "mrn": f"{MRN_PREFIX}{number:0{MRN_DIGITS}d}",
                "first_name": FIRST[number % len(FIRST)],
                "last_name": LAST[(number * 7 + number // len(LAST)) % len(LAST)],
                "date_of_birth": date(
                    1950 + rng.randrange(55), 1 + rng.randrange(12), 1 + rng.randrange(28)
                ),
                "sex": ("female", "male")[number % 2],
                "indication": INDICATIONS[number % len(INDICATIONS)],
                "indication_other": "",
                "allergies": rng.choice(["", "", "", "Penicillin (rash)", "Latex", "Sulfa"]),
                "medications": rng.choice(
                    ["Sertraline 100 mg daily", "Bupropion XL 300 mg", "Duloxetine 60 mg daily", ""]
                ),
                "emergency_contact": f"{rng.choice(FIRST)} {rng.choice(LAST)}, (555) 0100",
                "notes": "",
                "active": True,
                "created_at": created,
                "created_by_id": self.staff["jroe"].id,
                "updated_at": None,
                "updated_by_id": None,
                "version": 1,
            }
            self.writer.add(Patient, rows[number])
        return rows

    # --- one session ------------------------------------------------------------------------

    def _vitals(self, base: dict, rise: float, hr_rise: float, phase: str) -> dict:
        rng = self.rng
        return {
            "systolic": round(base["systolic"] + rise + rng.uniform(-4, 4)),
            "diastolic": round(base["diastolic"] + rise * 0.45 + rng.uniform(-3, 3)),
            "heart_rate": round(base["heart_rate"] + hr_rise + rng.uniform(-4, 4)),
            "resp_rate": rng.choice((12, 14, 14, 16, 18)),
            "spo2": rng.choice((95, 96, 97, 97, 98, 98, 98, 99, 99)) if rng.random() > 0.01 else 93,
            "o2_flow_lpm": None,
            "temperature_c": round(rng.uniform(36.3, 37.2), 1) if phase == "baseline" else None,
            "rhythm": "nsr" if rng.random() > 0.02 else "sinus_tach",
            "avpu": "A",
            "moaas": 5 if phase != "infusion" else rng.choice((3, 4, 4, 5)),
            "pain": rng.choice((None, None, 0, 2)),
        }

    def _assess(self, values: dict, baseline: dict | None) -> tuple:
        key = (tuple(values.values()), tuple(baseline.values()) if baseline else None)
        found = self.assess_cache.get(key)
        if found is None:
            result = clinical.assess_reading(
                values,
                self.limits,
                baseline=baseline,
                baseline_rhythm=baseline["rhythm"] if baseline else None,
            )
            found = (
                result.severity,
                [flag.to_dict() for flag in result.flags],
                clinical.news2(values),
            )
            if len(self.assess_cache) < 500_000:
                self.assess_cache[key] = found
        return found

    def _reading_times(
        self,
        planned: Planned,
        checked_in: datetime,
        start: datetime,
        stop: datetime | None,
        limit: datetime | None,
    ) -> list[tuple[datetime, str]]:
        """Two baselines, the infusion charted evenly over 40 minutes, then recovery."""
        count = planned.readings
        baseline = min(2, count)
        recovery = 0 if planned.status in ("infusing", "checked_in") else max(2, count // 6)
        infusing = max(0, count - baseline - recovery)
        times = [(checked_in + timedelta(minutes=3 + 3 * n), "baseline") for n in range(baseline)]
        times += [
            (start + timedelta(minutes=max(1, round(40 * (n + 1) / infusing))), "infusion")
            for n in range(infusing)
        ]
        stop = stop or start + timedelta(minutes=40)
        times += [
            (stop + timedelta(minutes=max(1, round(30 * (n + 1) / recovery))), "recovery")
            for n in range(recovery)
        ]
        if limit is not None:  # sessions on today's board: nothing charted in the future
            times = [(at, phase) for at, phase in times if at <= limit]
        return times

    def session(self, planned: Planned, patient: dict, day_events: dict[int, list]) -> None:
        rng, staff = self.rng, self.staff
        nurse = staff[rng.choice(CLINICIANS)]
        physician = staff[rng.choice(PHYSICIANS)]
        if planned.kind == "active":
            minutes_ago = {"checked_in": 10, "infusing": 30, "stopped_early": 55, "recovery": 70}[
                planned.status
            ] + planned.patient % 7
            checked_in = self.now - timedelta(minutes=minutes_ago + 15)
        elif planned.kind == "planned":
            checked_in = None
        else:
            checked_in = _at(self.day(planned.day), planned.minute)
        scheduled = checked_in or self.now + timedelta(hours=1 + planned.patient % 3)
        weight = round(rng.uniform(52, 105), 1)
        total_mg = round(min(weight * self.protocol.dose_mg_per_kg, self.protocol.max_total_mg), 1)
        started = checked_in + timedelta(minutes=15) if checked_in else None
        ended = discharged = signed = None
        if planned.status in ("recovery", "stopped_early", "discharged"):
            ended = started + timedelta(minutes=40 if planned.status != "stopped_early" else 25)
        if planned.status == "checked_in":
            started = None
        if planned.status == "discharged":
            discharged = ended + timedelta(minutes=32)
        if planned.kind == "signed":
            signed = discharged + timedelta(hours=20, minutes=rng.randrange(120))
        row = {
            "id": planned.id,
            "patient_id": planned.patient,
            "series_number": planned.series,
            "protocol_id": self.protocol.id,
            "room": rng.choice(ROOMS),
            "status": planned.status,
            "scheduled_for": scheduled,
            "clinician_id": nurse.id,
            "physician_id": physician.id,
            "indication": patient["indication"],
            "weight_kg": weight,
            "drug": "ketamine",
            "concentration_mg_per_ml": self.protocol.concentration_mg_per_ml,
            "dose_mg_per_kg": self.protocol.dose_mg_per_kg,
            "total_mg": total_mg,
            "duration_min": self.protocol.infusion_minutes,
            "dose_override_reason": "",
            "iv_site": "Left antecubital" if checked_in else "",
            "iv_gauge": "22" if checked_in else "",
            "lot_number": f"KET{rng.randrange(10000, 99999)}" if checked_in else "",
            "consent_on_file": bool(checked_in),
            "npo_confirmed": bool(checked_in),
            "escort_name": "Spouse" if checked_in else "",
            "pregnancy_status": ("negative" if patient["sex"] == "female" else "not_applicable")
            if checked_in
            else "",
            "med_allergy_review_done": bool(checked_in),
            "start_override_reason": "",
            "checked_in_at": checked_in,
            "started_at": started,
            "ended_at": ended,
            "cancelled_at": None,
            "cancel_reason": "",
            "discharged_at": discharged,
            "discharged_by_id": nurse.id if discharged else None,
            "aldrete": dict.fromkeys(clinical.ALDRETE_ITEMS, 2) if discharged else None,
            "aldrete_total": 10 if discharged else None,
            "discharge_override_reason": "",
            "discharge_escort": "Spouse" if discharged else "",
            "discharge_note": "Tolerated well; oriented, steady gait." if discharged else "",
            "signed_by_id": physician.id if signed else None,
            "signed_at": signed,
            "attestation": DEFAULT_ATTESTATION if signed else "",
            "notes": "",
            "created_at": scheduled - timedelta(days=2),
            "created_by_id": nurse.id,
            "updated_at": signed or discharged or ended or started or checked_in,
            "updated_by_id": (physician if signed else nurse).id if checked_in else None,
            "version": 1
            + sum(x is not None for x in (checked_in, started, ended, discharged, signed)),
        }
        if planned.room:
            row["room"] = planned.room
        self.writer.add(InfusionSession, row)
        if checked_in is None:
            return
        events = day_events.setdefault(planned.day, [])

        def audit_row(at, action, details=None, entity=("infusion_session", planned.id)):
            events.append((at, nurse, action, *entity, planned.patient, details))

        audit_row(
            checked_in - timedelta(minutes=30),
            "session.planned",
            details={
                "after": {"room": row["room"], "weight_kg": weight, "total_mg": total_mg},
                "protocol": self.protocol.label,
            },
        )
        audit_row(checked_in, "session.checked_in")
        audit_row(
            checked_in + timedelta(minutes=2),
            "session.updated",
            details={"consent_on_file": [False, True], "npo_confirmed": [False, True]},
        )
        score = rng.randrange(6, 24)
        self.next_assessment += 1
        self.writer.add(
            Assessment,
            {
                "id": self.next_assessment,
                "patient_id": planned.patient,
                "infusion_id": planned.id,
                "instrument": "phq9",
                "score": score,
                "items": None,
                "flag_physician": False,
                "taken_at": checked_in + timedelta(minutes=1),
                "corrects_id": None,
                "recorded_by_id": nurse.id,
                "created_at": checked_in + timedelta(minutes=1),
                "voided_at": None,
                "voided_by_id": None,
                "void_reason": "",
            },
        )
        audit_row(
            checked_in + timedelta(minutes=1),
            "assessment.recorded",
            {"instrument": "phq9", "score": score},
            ("assessment", self.next_assessment),
        )
        rate = round(total_mg * 60 / self.protocol.infusion_minutes, 2)  # the pump's, set at start
        for kind, at in (("start", started), ("stop", ended)):
            if at is None:
                continue
            self.writer.add(
                InfusionEvent,
                {
                    "infusion_id": planned.id,
                    "kind": kind,
                    "occurred_at": at,
                    "reason": "Hypertension"
                    if planned.status == "stopped_early" and kind == "stop"
                    else "",
                    "rate_mg_per_h": rate if kind == "start" else None,
                    "recorded_by_id": nurse.id,
                    "created_at": at,
                },
            )
            audit_row(
                at, "session.started" if kind == "start" else "session.stopped", details={"at": at}
            )
        if started:
            self.ledger(planned, nurse, started, ended, total_mg, rate, events)
        base = {
            "systolic": rng.randrange(110, 136),
            "diastolic": rng.randrange(68, 86),
            "heart_rate": rng.randrange(60, 86),
        }
        peak = rng.uniform(8, 45)
        hr_peak = rng.uniform(4, 18)
        baseline_values = None
        limit = self.now if planned.kind == "active" else None
        for at, phase in self._reading_times(
            planned, checked_in, started or checked_in, ended, limit
        ):
            if phase == "infusion":
                shape = math.sin(math.pi / 2 * min((at - started).total_seconds() / 2400, 1))
                values = self._vitals(base, peak * shape, hr_peak * shape, phase)
            elif phase == "recovery":
                fade = max(0.0, 1 - (at - ended).total_seconds() / 1800)
                values = self._vitals(base, peak * fade * 0.6, hr_peak * fade * 0.5, phase)
            else:
                values = self._vitals(base, 0, 0, phase)
            severity, flags, news2 = self._assess(
                values, None if phase == "baseline" else baseline_values
            )
            if phase == "baseline":
                baseline_values = values
            answered = severity == "critical" and planned.kind != "active"
            reading = {
                "id": self.next_reading,
                "infusion_id": planned.id,
                "taken_at": at,
                "phase": phase,
                **values,
                "rhythm_other": "",
                "note": "",
                "severity": severity,
                "flags": flags,
                "news2": news2,
                "critical_action": "reviewed" if answered else "",
                "critical_action_note": "Rechecked in 5 minutes; settled." if answered else "",
                "critical_action_by_id": nurse.id if answered else None,
                "critical_action_at": at + timedelta(minutes=3) if answered else None,
                "corrects_id": None,
                "recorded_by_id": nurse.id,
                "created_at": at,
                "voided_at": None,
                "voided_by_id": None,
                "void_reason": "",
            }
            self.next_reading += 1
            self.writer.add(Reading, reading)
            summary = {name: reading[name] for name in ENTRY_FIELDS}
            audit_row(
                at,
                "reading.recorded",
                {**summary, "severity": severity, "flags": flags, "news2": news2},
                ("reading", reading["id"]),
            )
        if discharged:
            audit_row(
                discharged, "session.discharged", details={"aldrete_total": 10, "escort": "Spouse"}
            )
        if signed:
            sign_day = (signed.astimezone(self.zone).date() - self.first_day).days
            day_events.setdefault(sign_day, []).append(
                (
                    signed,
                    physician,
                    "session.signed",
                    "infusion_session",
                    planned.id,
                    planned.patient,
                    {"attestation": DEFAULT_ATTESTATION},
                )
            )

    def ledger(
        self,
        planned: Planned,
        nurse: Staff,
        started: datetime,
        ended: datetime | None,
        total_mg: float,
        rate: float,
        events: list,
    ) -> None:
        """The session's draw (whole milligrams, never less than the order), and once it
        stopped the pump's dose given and the rest wasted in front of a second clinician."""
        witness = self.staff[next(u for u in CLINICIANS if self.staff[u] is not nurse)]
        infusion = (planned.id, planned.patient)
        drawn = ledger.mcg(math.ceil(total_mg))
        vial = self.safe.draw(
            events, started - timedelta(minutes=12), nurse, witness, infusion, drawn
        )
        if ended is None:
            return  # still running: given and wasted once it stops
        pump = [clinical.PumpEvent("start", started, rate), clinical.PumpEvent("stop", ended)]
        given = ledger.mcg(clinical.pump_run(pump, ended, total_mg).given_mg)
        self.safe.entry(
            events,
            ended,
            nurse,
            "give",
            vial,
            given,
            infusion,
            action="ledger.given",
            note="From the pump's events and rates",
        )
        if drawn > given:
            self.safe.entry(
                events,
                ended + timedelta(minutes=4),
                nurse,
                "waste",
                vial,
                drawn - given,
                infusion,
                witness,
                action="ledger.wasted",
            )

    # --- the whole history, day by day --------------------------------------------------------

    def filler(self, index: int, count: int, seen: list[int], events: list) -> None:
        """Chart views and sign-ins: the rest of a clinic day's audit trail."""
        rng = self.rng
        for _ in range(count):
            at = _at(self.day(index), rng.uniform(7.5 * 60, 17.5 * 60))
            if index == self.plan.days and at > self.now:
                at = self.now - timedelta(minutes=rng.uniform(1, 60))
            actor = self.staff[rng.choice(CLINICIANS + PHYSICIANS)]
            if rng.random() < 0.1 or not seen:
                events.append((at, actor, "auth.login", "staff", actor.id, None, {}))
            else:
                patient = rng.choice(seen)
                events.append((at, actor, "patient.viewed", "patient", patient, patient, {}))

    def build(self, progress) -> dict[str, int]:
        from infusion_tracker.timeutil import clinic_zone

        self.zone = clinic_zone()
        self.next_reading = 1
        self.next_assessment = 0
        self.bootstrap()
        patients = self.patients()
        by_day: dict[int, list[Planned]] = {}
        for planned in self.plan.sessions:
            by_day.setdefault(planned.day, []).append(planned)
        for number, planned in enumerate(p for p in self.plan.sessions if p.kind == "active"):
            planned.room = ROOMS[number]
        known = (
            len(STAFF)
            + 1
            + self.plan.patients
            + sum(8 + p.readings for p in self.plan.sessions if p.kind != "planned")
            + 3 * len(self.plan.sessions)  # about the ledger's rows a session
        )
        filler_per_day = max(0, self.scale.audit - known) / (self.plan.days + 1)
        day_events: dict[int, list] = {}
        seen: list[int] = []
        carry = 0.0
        first_seen = {}
        for planned in self.plan.sessions:
            first_seen.setdefault(planned.patient, planned.day)
        created_on: dict[int, list[int]] = {}
        for patient, day in first_seen.items():
            created_on.setdefault(max(0, day - 7), []).append(patient)
        last_report = time.monotonic()
        for index in range(self.plan.days + 1):
            events = day_events.setdefault(index, [])
            for patient in created_on.get(index, []):
                row = patients[patient]
                events.append(
                    (
                        row["created_at"],
                        self.staff["jroe"],
                        "patient.created",
                        "patient",
                        patient,
                        patient,
                        {"after": {"mrn": row["mrn"], "last_name": row["last_name"]}},
                    )
                )
            todays = by_day.get(index, [])
            for planned in todays:
                self.session(planned, patients[planned.patient], day_events)
            seen = [p.patient for p in todays] or seen
            carry += filler_per_day
            self.filler(index, int(carry), seen, events)
            carry -= int(carry)
            events.sort(key=lambda e: e[0])
            for at, actor, action, entity_type, entity_id, patient_id, details in events:
                self.chain.add(at, actor, action, entity_type, entity_id, patient_id, details)
            for row in self.chain.rows:
                self.writer.add(AuditEvent, row)
            self.chain.rows = []
            del day_events[index]
            self.writer.flush()
            if time.monotonic() - last_report > 10:
                progress(
                    f"  day {index}/{self.plan.days}: {self.writer.counts[Reading]:,} readings, "
                    f"{self.writer.counts[AuditEvent]:,} audit rows"
                )
                last_report = time.monotonic()
        self.writer.flush(force=True)
        return {model.__tablename__: count for model, count in self.writer.counts.items()}


def reset_sequences() -> None:
    """Ids were assigned here; PostgreSQL's sequences must continue after them."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    for model in (*Writer.ORDER, Staff, Protocol):
        table = model.__tablename__
        db.session.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        )


def seed(scale_name: str, progress=print, seed_value: int = 8) -> dict:
    """Fill an empty, migrated database; returns the counts and the ids the load test uses."""
    builder = Builder(SCALES[scale_name], seed_value)
    counts = builder.build(progress)
    reset_sequences()
    db.session.commit()
    plan = builder.plan
    heavy = set(plan.heavy)
    return {
        "counts": counts,
        "heavy_patients": plan.heavy,
        "heavy_sessions": [
            s.id for s in plan.sessions if s.patient in heavy and s.kind == "awaiting"
        ],
        "active_sessions": [s.id for s in plan.sessions if s.kind == "active"],
        "seeded_on": builder.today.isoformat(),
        "first_day": builder.first_day.isoformat(),
    }
