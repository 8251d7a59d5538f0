"""Typed SQLAlchemy 2.0 models. Clinical rows are never deleted or overwritten (SPEC §3)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .extensions import db
from .timeutil import utcnow


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite forgets the zone, so store naive UTC there)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- Staff -----------------------------------------------------------------

ROLE_ADMIN = "admin"
ROLE_PHYSICIAN = "physician"
ROLE_NP = "np"
ROLE_PA = "pa"
ROLES = {
    ROLE_ADMIN: "Administrator",
    ROLE_PHYSICIAN: "Physician",
    ROLE_NP: "Nurse practitioner",
    ROLE_PA: "Physician assistant",
}
CLINICAL_ROLES = (ROLE_PHYSICIAN, ROLE_NP, ROLE_PA)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


class Staff(UserMixin, db.Model):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-case so uniqueness is case-insensitive on every backend.
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(120))
    credentials: Mapped[str] = mapped_column(sa.String(60), default="")
    role: Mapped[str] = mapped_column(sa.String(20))
    active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Flask-Login identifies a browser session by this token, not by id; changing it
    # (logout, password change, deactivation) ends every copy of the cookie.
    session_token: Mapped[str] = mapped_column(
        sa.String(64), unique=True, default=new_session_token
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Second factor (TOTP, auth/two_factor.py): the key is set at enrolment and in use once
    # confirmed; the last accepted time-step refuses a replayed code; recovery codes are
    # stored as SHA-256 digests and removed when used.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    recovery_codes: Mapped[list | None] = mapped_column(sa.JSON)

    __table_args__ = (sa.CheckConstraint("role IN ('admin','physician','np','pa')", name="role"),)

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def display_name(self) -> str:
        return f"{self.full_name}, {self.credentials}" if self.credentials else self.full_name

    @property
    def role_label(self) -> str:
        return ROLES.get(self.role, self.role)

    @property
    def is_clinician(self) -> bool:
        return self.role in CLINICAL_ROLES

    @property
    def is_physician(self) -> bool:
        return self.role == ROLE_PHYSICIAN

    @property
    def has_two_factor(self) -> bool:
        return self.totp_confirmed_at is not None

    def is_locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def __repr__(self) -> str:
        return f"<Staff {self.username} {self.role}>"


# --- Patients ---------------------------------------------------------------

INDICATIONS = {
    "depression": "Depression",
    "trd": "Treatment-resistant depression",
    "depression_si": "Depression with suicidal ideation",
    "ptsd": "PTSD",
    "ocd": "OCD",
    "fibromyalgia": "Fibromyalgia",
    "crps": "CRPS / RSD",
    "sfn": "Small-fiber neuropathy",
    "other": "Other",
}
SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


class Patient(db.Model):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(sa.String(20), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(80))
    last_name: Mapped[str] = mapped_column(sa.String(80), index=True)
    date_of_birth: Mapped[date] = mapped_column(sa.Date, index=True)
    sex: Mapped[str] = mapped_column(sa.String(10))
    indication: Mapped[str] = mapped_column(sa.String(20))
    indication_other: Mapped[str] = mapped_column(sa.String(120), default="")
    allergies: Mapped[str] = mapped_column(sa.Text, default="")
    medications: Mapped[str] = mapped_column(sa.Text, default="")
    emergency_contact: Mapped[str] = mapped_column(sa.String(200), default="")
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    version: Mapped[int] = mapped_column(default=1)

    updated_by: Mapped[Staff | None] = relationship(foreign_keys=[updated_by_id])
    infusions: Mapped[list[InfusionSession]] = relationship(
        back_populates="patient", order_by="InfusionSession.series_number"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def indication_label(self) -> str:
        if self.indication == "other" and self.indication_other:
            return self.indication_other
        return INDICATIONS.get(self.indication, self.indication)


# --- Protocols ----------------------------------------------------------------


class Protocol(db.Model):
    """One version of an infusion protocol. Rows are never edited: an edit adds a version."""

    __tablename__ = "protocol"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    version: Mapped[int] = mapped_column(default=1)
    previous_version_id: Mapped[int | None] = mapped_column(sa.ForeignKey("protocol.id"))
    is_current: Mapped[bool] = mapped_column(default=True)
    drug: Mapped[str] = mapped_column(sa.String(60), default="ketamine")
    indication: Mapped[str] = mapped_column(sa.String(20), default="depression")
    dose_mg_per_kg: Mapped[float] = mapped_column(sa.Float)  # total ordered dose per kg
    infusion_minutes: Mapped[int]
    max_total_mg: Mapped[float] = mapped_column(sa.Float)
    concentration_mg_per_ml: Mapped[float] = mapped_column(sa.Float, default=1.0)
    reading_interval_infusion_min: Mapped[int] = mapped_column(default=5)
    reading_interval_recovery_min: Mapped[int] = mapped_column(default=15)
    min_observation_min: Mapped[int] = mapped_column(default=30)
    # Start limits, normal (abnormal) limits and critical thresholds; see clinical.Limits.
    limits: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    # Why this version was made; every version after the first gives one.
    change_reason: Mapped[str] = mapped_column(sa.String(500), default="", server_default="")

    created_by: Mapped[Staff | None] = relationship()

    __table_args__ = (sa.UniqueConstraint("name", "version", name="name_version"),)

    @property
    def label(self) -> str:
        return f"{self.name} (v{self.version})"


# --- Infusion sessions -----------------------------------------------------------

# SPEC §3 state machine; the transitions themselves live in clinical.TRANSITIONS.
STATUSES = {
    "planned": "Planned",
    "checked_in": "Checked in",
    "infusing": "Infusing",
    "paused": "Paused",
    "recovery": "Recovery",
    "stopped_early": "Stopped early",
    "discharged": "Discharged",
    "cancelled": "Cancelled",
}
PREGNANCY_STATUSES = {
    "negative": "Negative test",
    "not_pregnant_reported": "Not pregnant (patient report)",
    "not_applicable": "Not applicable",
    "positive": "Positive",
}


class InfusionSession(db.Model):
    """One infusion of one patient (never called `Session`: flask and SQLAlchemy use that word)."""

    __tablename__ = "infusion_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patient.id"), index=True)
    series_number: Mapped[int]
    protocol_id: Mapped[int] = mapped_column(sa.ForeignKey("protocol.id"))
    room: Mapped[str] = mapped_column(sa.String(40), default="")
    status: Mapped[str] = mapped_column(sa.String(20), default="planned", index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    clinician_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    physician_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    indication: Mapped[str] = mapped_column(sa.String(20))

    # Dosing (SPEC §3 dose safety); rates are computed by clinical.dose().
    weight_kg: Mapped[float | None] = mapped_column(sa.Float)
    drug: Mapped[str] = mapped_column(sa.String(60), default="ketamine")
    concentration_mg_per_ml: Mapped[float] = mapped_column(sa.Float)
    dose_mg_per_kg: Mapped[float] = mapped_column(sa.Float)
    total_mg: Mapped[float | None] = mapped_column(sa.Float)
    duration_min: Mapped[int]
    dose_override_reason: Mapped[str] = mapped_column(sa.Text, default="")
    dose_override_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    iv_site: Mapped[str] = mapped_column(sa.String(60), default="")
    iv_gauge: Mapped[str] = mapped_column(sa.String(10), default="")
    lot_number: Mapped[str] = mapped_column(sa.String(40), default="")

    # Pre-infusion checklist (the start gate).
    consent_on_file: Mapped[bool] = mapped_column(default=False)
    npo_confirmed: Mapped[bool] = mapped_column(default=False)
    escort_name: Mapped[str] = mapped_column(sa.String(120), default="")
    pregnancy_status: Mapped[str] = mapped_column(sa.String(30), default="")
    med_allergy_review_done: Mapped[bool] = mapped_column(default=False)
    start_override_reason: Mapped[str] = mapped_column(sa.Text, default="")
    start_override_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))

    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # infusion stopped
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="")

    # Discharge: modified Aldrete items (0-2 each), total, and who let the patient go.
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    discharged_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    aldrete: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    aldrete_total: Mapped[int | None]
    discharge_override_reason: Mapped[str] = mapped_column(sa.Text, default="")
    discharge_escort: Mapped[str] = mapped_column(sa.String(120), default="")
    discharge_note: Mapped[str] = mapped_column(sa.Text, default="")

    # Physician signature locks the record (SPEC §3).
    signed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attestation: Mapped[str] = mapped_column(sa.Text, default="")

    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    # Optimistic locking: forms carry the version they were drawn from.
    version: Mapped[int] = mapped_column(default=1)

    patient: Mapped[Patient] = relationship(back_populates="infusions")
    protocol: Mapped[Protocol] = relationship()
    clinician: Mapped[Staff] = relationship(foreign_keys=[clinician_id])
    physician: Mapped[Staff] = relationship(foreign_keys=[physician_id])
    signed_by: Mapped[Staff | None] = relationship(foreign_keys=[signed_by_id])
    updated_by: Mapped[Staff | None] = relationship(foreign_keys=[updated_by_id])
    start_override_by: Mapped[Staff | None] = relationship(foreign_keys=[start_override_by_id])
    dose_override_by: Mapped[Staff | None] = relationship(foreign_keys=[dose_override_by_id])
    discharged_by: Mapped[Staff | None] = relationship(foreign_keys=[discharged_by_id])
    readings: Mapped[list[Reading]] = relationship(
        back_populates="infusion", order_by="(Reading.taken_at, Reading.id)"
    )
    events: Mapped[list[InfusionEvent]] = relationship(
        back_populates="infusion", order_by="(InfusionEvent.occurred_at, InfusionEvent.id)"
    )
    adverse_events: Mapped[list[AdverseEvent]] = relationship(
        back_populates="infusion", order_by="(AdverseEvent.onset_at, AdverseEvent.id)"
    )
    assessments: Mapped[list[Assessment]] = relationship(
        back_populates="infusion", order_by="(Assessment.taken_at, Assessment.id)"
    )
    addenda: Mapped[list[Addendum]] = relationship(
        back_populates="infusion", order_by="Addendum.created_at"
    )

    __table_args__ = (sa.UniqueConstraint("patient_id", "series_number", name="patient_series"),)
    __mapper_args__ = {"version_id_col": version}

    @property
    def status_label(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None


# --- Clinical rows: appended, voided, corrected; never edited ------------------


class VoidableMixin:
    """Entered-in-error handling: void with a reason; a correction points at what it replaces."""

    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    void_reason: Mapped[str] = mapped_column(sa.Text, default="")

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


INFUSION_EVENT_KINDS = {
    "start": "Infusion started",
    "pause": "Paused",
    "resume": "Resumed",
    "rate_change": "Rate changed",
    "stop": "Infusion stopped",
}


class InfusionEvent(db.Model):
    __tablename__ = "infusion_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    rate_mg_per_h: Mapped[float | None] = mapped_column(sa.Float)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship(back_populates="events")
    recorded_by: Mapped[Staff] = relationship()

    @property
    def kind_label(self) -> str:
        return INFUSION_EVENT_KINDS.get(self.kind, self.kind)


PHASES = {
    "baseline": "Baseline",
    "infusion": "Infusion",
    "recovery": "Recovery",
    "discharge": "Discharge",
}
RHYTHMS = {
    "nsr": "Normal sinus rhythm",
    "sinus_tach": "Sinus tachycardia",
    "sinus_brady": "Sinus bradycardia",
    "sinus_arrhythmia": "Sinus arrhythmia",
    "af": "Atrial fibrillation",
    "flutter": "Atrial flutter",
    "svt": "SVT",
    "pacs": "PACs",
    "pvcs": "PVCs",
    "junctional": "Junctional",
    "paced": "Paced",
    "vt": "Ventricular tachycardia",
    "artifact": "Artifact / unable to assess",
    "other": "Other",
}
AVPU = {"A": "Alert", "V": "Responds to voice", "P": "Responds to pain", "U": "Unresponsive"}
SEVERITY_LEVELS = ("normal", "abnormal", "critical")


class Reading(VoidableMixin, db.Model):
    """One set of observations at one clinical moment (SPEC §2)."""

    __tablename__ = "reading"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    phase: Mapped[str] = mapped_column(sa.String(20))
    systolic: Mapped[int | None]
    diastolic: Mapped[int | None]
    heart_rate: Mapped[int | None]
    resp_rate: Mapped[int | None]
    spo2: Mapped[int | None]
    o2_flow_lpm: Mapped[float | None] = mapped_column(sa.Float)  # None or 0 = room air
    temperature_c: Mapped[float | None] = mapped_column(sa.Float)
    rhythm: Mapped[str] = mapped_column(sa.String(20), default="")
    rhythm_other: Mapped[str] = mapped_column(sa.String(120), default="")
    avpu: Mapped[str] = mapped_column(sa.String(1), default="")
    moaas: Mapped[int | None]
    pain: Mapped[int | None]
    note: Mapped[str] = mapped_column(sa.Text, default="")
    # Flags as assessed against the protocol when the reading was charted: the board and
    # review queue find critical sessions without re-deriving every reading.
    severity: Mapped[str] = mapped_column(sa.String(10), default="normal")
    flags: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    news2: Mapped[int | None]
    # The clinician's answer to a critical reading: an adverse event or "reviewed, no action".
    critical_action: Mapped[str] = mapped_column(sa.String(20), default="")
    critical_action_note: Mapped[str] = mapped_column(sa.Text, default="")
    critical_action_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    critical_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    corrects_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reading.id"))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship(back_populates="readings")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])
    voided_by: Mapped[Staff | None] = relationship(foreign_keys="Reading.voided_by_id")
    critical_action_by: Mapped[Staff | None] = relationship(foreign_keys=[critical_action_by_id])

    __table_args__ = (sa.Index("ix_reading_infusion_taken", "infusion_id", "taken_at"),)


ADVERSE_EVENT_TYPES = {
    "hypertension": "Hypertension",
    "tachycardia": "Tachycardia",
    "bradycardia": "Bradycardia",
    "hypotension": "Hypotension",
    "arrhythmia": "Arrhythmia",
    "desaturation": "Desaturation",
    "respiratory_depression": "Respiratory depression",
    "excessive_sedation": "Excessive sedation",
    "emergence_reaction": "Emergence reaction / dissociation distress",
    "anxiety": "Anxiety",
    "agitation": "Agitation",
    "nausea": "Nausea",
    "vomiting": "Vomiting",
    "dizziness": "Dizziness",
    "headache": "Headache",
    "allergic_reaction": "Allergic reaction",
    "iv_infiltration": "IV infiltration",
    "fall": "Fall",
    "suicidal_ideation": "Emergent suicidal ideation",
    "other": "Other",
}
AE_SEVERITIES = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
INFUSION_ACTIONS = {"none": "None", "slowed": "Slowed", "paused": "Paused", "stopped": "Stopped"}


class AdverseEvent(VoidableMixin, db.Model):
    __tablename__ = "adverse_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    onset_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_type: Mapped[str] = mapped_column(sa.String(30))
    type_other: Mapped[str] = mapped_column(sa.String(120), default="")
    severity: Mapped[str] = mapped_column(sa.String(10))
    serious: Mapped[bool] = mapped_column(default=False)
    intervention: Mapped[str] = mapped_column(sa.Text, default="")
    intervention_drug: Mapped[str] = mapped_column(sa.String(60), default="")
    intervention_dose: Mapped[str] = mapped_column(sa.String(60), default="")
    infusion_action: Mapped[str] = mapped_column(sa.String(10), default="none")
    physician_notified: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(sa.Text, default="")
    reading_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reading.id"))
    corrects_id: Mapped[int | None] = mapped_column(sa.ForeignKey("adverse_event.id"))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship(back_populates="adverse_events")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])
    voided_by: Mapped[Staff | None] = relationship(foreign_keys="AdverseEvent.voided_by_id")

    @property
    def type_label(self) -> str:
        if self.event_type == "other" and self.type_other:
            return self.type_other
        return ADVERSE_EVENT_TYPES.get(self.event_type, self.event_type)


# Instrument -> (label, min, max). C-SSRS screen: 0 negative, 1 low, 2 moderate, 3 high risk.
INSTRUMENTS = {
    "phq9": ("PHQ-9", 0, 27),
    "gad7": ("GAD-7", 0, 21),
    "madrs": ("MADRS", 0, 60),
    "pain_nrs": ("Pain NRS", 0, 10),
    "cadss": ("CADSS", 0, 92),
    "cssrs": ("C-SSRS screen", 0, 3),
}
CSSRS_RESULTS = {0: "Negative", 1: "Low risk", 2: "Moderate risk", 3: "High risk"}


class Assessment(VoidableMixin, db.Model):
    """An outcome score (PHQ-9, GAD-7, …), optionally tied to a session."""

    __tablename__ = "assessment"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patient.id"), index=True)
    infusion_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("infusion_session.id"), index=True
    )
    instrument: Mapped[str] = mapped_column(sa.String(20))
    score: Mapped[int]
    items: Mapped[list[int] | None] = mapped_column(sa.JSON)  # PHQ-9 item answers, 0-3 each
    flag_physician: Mapped[bool] = mapped_column(default=False)  # PHQ-9 item 9 > 0
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    corrects_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assessment.id"))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession | None] = relationship(back_populates="assessments")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])
    voided_by: Mapped[Staff | None] = relationship(foreign_keys="Assessment.voided_by_id")

    __table_args__ = (sa.Index("ix_assessment_patient_taken", "patient_id", "taken_at"),)

    @property
    def instrument_label(self) -> str:
        return INSTRUMENTS[self.instrument][0]


class Addendum(db.Model):
    """A later fact added to a signed session; immutable once written."""

    __tablename__ = "addendum"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship(back_populates="addenda")
    author: Mapped[Staff] = relationship()


# --- Audit ----------------------------------------------------------------------


class AuditEvent(db.Model):
    """Append-only, hash-chained (see audit.py); the database refuses UPDATE and DELETE."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"), index=True)
    actor_name: Mapped[str] = mapped_column(sa.String(120))
    action: Mapped[str] = mapped_column(sa.String(60), index=True)
    entity_type: Mapped[str] = mapped_column(sa.String(40), default="")
    entity_id: Mapped[int | None]
    patient_id: Mapped[int | None] = mapped_column(sa.ForeignKey("patient.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    remote_addr: Mapped[str] = mapped_column(sa.String(64), default="")
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[Staff | None] = relationship()
