"""Typed SQLAlchemy 2.0 models. Clinical rows are never deleted or overwritten (SPEC §3)."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

from .extensions import db
from .timeutil import utcnow

# The vocabularies live in vocab.py; many callers still import them from here.
from .vocab import (
    ADVERSE_EVENT_TYPES,
    AE_SEVERITIES,
    ALDRETE_TOTAL_RANGE,
    AVPU,
    CLINICAL_ROLES,
    CRITICAL_ACTIONS,
    CSSRS_RESULTS,  # noqa: F401 (re-export)
    FLAG_LEVELS,
    INDICATIONS,
    INFUSION_ACTIONS,
    INFUSION_EVENT_KINDS,
    INSTRUMENTS,
    MOAAS_RANGE,
    PAIN_RANGE,
    PHASES,
    PREGNANCY_STATUSES,
    RHYTHMS,
    ROLE_ADMIN,  # noqa: F401 (re-export)
    ROLE_NP,  # noqa: F401 (re-export)
    ROLE_PA,  # noqa: F401 (re-export)
    ROLE_PHYSICIAN,
    ROLES,
    SEXES,
    STATUSES,
    sql_between,
    sql_in,
    sql_score_range,
)


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


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def display_name(full_name: str, credentials: str) -> str:
    """A clinician as every page names them: "Jane Roe, APRN"."""
    return f"{full_name}, {credentials}" if credentials else full_name


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
    # confirmed; it is stored sealed with TOTP_KEY (sealing.py), never in clear; the last
    # accepted time-step refuses a replayed code; recovery codes are stored as SHA-256
    # digests and removed when used.
    totp_sealed: Mapped[str | None] = mapped_column(sa.String(255))
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    recovery_codes: Mapped[list | None] = mapped_column(sa.JSON)

    __table_args__ = (sa.CheckConstraint(sql_in("role", ROLES), name="role"),)

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def display_name(self) -> str:
        return display_name(self.full_name, self.credentials)

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


# What a page shows of the staff a row names (its recorder, signer, witness): a name and a
# role. with_staff() loads a row's staff with only these, leaving the sign-in columns (hashes,
# the sealed TOTP key, recovery codes, their dates) that no such page reads: each of a
# session's readings names three staff, and every column is work per row (issue 8).
STAFF_SHOWN = (
    Staff.id,
    Staff.username,
    Staff.full_name,
    Staff.credentials,
    Staff.role,
    Staff.active,
)


def partial_index(name: str, *columns: str, where: str) -> sa.Index:
    """An index of the rows matching `where`, the same condition on SQLite and PostgreSQL."""
    return sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def with_staff(relationship, **kw):
    """Joined eager loading of a row's staff member (STAFF_SHOWN); a column left out is
    loaded if something reads it (one query), so nothing breaks, it only costs."""
    return joinedload(relationship, **kw).load_only(*STAFF_SHOWN)


# --- Patients ---------------------------------------------------------------


NAME_KEY_LENGTH = 80


def name_key(name: str | None) -> str:
    """A name as patient search compares it: accents dropped, case folded, letters and digits
    only ("López-Grant" → "lopezgrant"), so "starts with" is a range an index answers."""
    folded = unicodedata.normalize("NFKD", name or "").casefold()
    return "".join(char for char in folded if char.isalnum())[:NAME_KEY_LENGTH]


# After a name search's two keys, what its indexes also hold: whether the patient is
# archived, and the names and id a page of matches is sorted by.
_NAME_SEARCH_HELD = ("last_name", "first_name", "active", "id")


def _name_key_default(column: str):
    """The key as an insert's default, for inserts that bypass the ORM (bulk loads)."""
    return lambda context: name_key(context.get_current_parameters().get(column))


class Patient(db.Model):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(sa.String(20), unique=True)
    first_name: Mapped[str] = mapped_column(sa.String(80))
    last_name: Mapped[str] = mapped_column(sa.String(80))
    # name_key(first_name), name_key(last_name): what search matches, kept by set_name_key.
    first_name_key: Mapped[str] = mapped_column(
        sa.String(NAME_KEY_LENGTH),
        default=_name_key_default("first_name"),
        server_default="",
    )
    last_name_key: Mapped[str] = mapped_column(
        sa.String(NAME_KEY_LENGTH),
        default=_name_key_default("last_name"),
        server_default="",
    )
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

    __table_args__ = (
        sa.CheckConstraint(sql_in("sex", SEXES), name="sex"),
        sa.CheckConstraint(sql_in("indication", INDICATIONS), name="indication"),
        # The list's order (and a name search's), read from the index rather than sorted.
        sa.Index("ix_patient_name_order", "last_name", "first_name", "id"),
        # A name search's two ranges, each with what it checks (both keys, active) and sorts
        # by (the names, id): a page of the matches is chosen from the index alone, their rows
        # not read (patients/services._name_search).
        sa.Index(
            "ix_patient_first_name_search", "first_name_key", "last_name_key", *_NAME_SEARCH_HELD
        ),
        sa.Index(
            "ix_patient_last_name_search", "last_name_key", "first_name_key", *_NAME_SEARCH_HELD
        ),
    )
    __mapper_args__ = {"version_id_col": version}

    @validates("first_name", "last_name")
    def set_name_key(self, field: str, value: str) -> str:
        setattr(self, f"{field}_key", name_key(value))
        return value

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def indication_label(self) -> str:
        return indication_label(self.indication, self.indication_other)


def indication_label(indication: str, other: str | None) -> str:
    """An indication in words: its label, or for "other" what was written."""
    if indication == "other" and other:
        return other
    return INDICATIONS.get(indication, indication)


class PatientListVersion(db.Model):
    """One row: a number the database itself moves on every write to `patient` (triggers:
    PATIENT_LIST_TRIGGERS), under which a worker keeps pages of search results
    (patients/services.search_page). It moves to the time of the write in microseconds when
    that is later than one more, so it never repeats, even after a restore from a backup."""

    __tablename__ = "patient_list_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=0)


# Written out as SQL, for the migration too (0018).
_NEXT_SQLITE = (
    "UPDATE patient_list_version SET version = max(version + 1, "
    "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
)
PATIENT_LIST_TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER patient_list_{event.lower()} AFTER {event} ON patient "
        f"BEGIN {_NEXT_SQLITE}; END"
        for event in ("INSERT", "UPDATE", "DELETE")
    ],
    "postgresql": [
        """CREATE OR REPLACE FUNCTION patient_list_changed() RETURNS trigger AS $$
           BEGIN
             UPDATE patient_list_version SET version = greatest(version + 1,
               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
             RETURN NULL;
           END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER patient_list_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
           ON patient FOR EACH STATEMENT EXECUTE FUNCTION patient_list_changed()""",
    ],
}


@sa.event.listens_for(db.metadata, "after_create")
def _patient_list_triggers(target, connection, tables=(), **kw):
    """For a schema built with create_all (the tests); the migration runs the same."""
    if PatientListVersion.__table__ not in tables:
        return  # built before: its row and triggers are there
    connection.execute(sa.insert(PatientListVersion.__table__).values(id=1, version=0))
    for statement in PATIENT_LIST_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


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

    __table_args__ = (
        sa.UniqueConstraint("name", "version", name="name_version"),
        sa.CheckConstraint(sql_in("indication", INDICATIONS), name="indication"),
    )

    @property
    def label(self) -> str:
        return protocol_label(self.name, self.version)


def protocol_label(name: str, version: int) -> str:
    """A protocol as every page names it: "Ketamine 0.5 mg/kg over 40 min (v2)"."""
    return f"{name} (v{version})"


# --- Infusion sessions -----------------------------------------------------------


# Partial-index conditions on sessions, and the same for queries (as literals, so that the
# planners match them: review/services.py).
AWAITING = "status = 'discharged' AND signed_at IS NULL"
OWN_OVERRIDE = (
    "start_override_reason <> '' OR dose_override_reason <> '' OR discharge_override_reason <> ''"
)
SESSION_OVERRIDDEN = sa.text(
    "(infusion_session.start_override_reason <> '' OR infusion_session.dose_override_reason <> ''"
    " OR infusion_session.discharge_override_reason <> '')"
)


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
    # Indexed, as is discharged_at: the suite board finds the day's finished sessions by range.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    cancel_reason: Mapped[str] = mapped_column(sa.Text, default="")

    # Discharge: modified Aldrete items (0-2 each), total, and who let the patient go.
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
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

    __table_args__ = (
        sa.UniqueConstraint("patient_id", "series_number", name="patient_series"),
        sa.CheckConstraint(sql_in("status", STATUSES), name="status"),
        sa.CheckConstraint(sql_in("indication", INDICATIONS), name="indication"),
        sa.CheckConstraint(
            sql_in("pregnancy_status", PREGNANCY_STATUSES, blank=True), name="pregnancy_status"
        ),
        sa.CheckConstraint(sql_between("aldrete_total", ALDRETE_TOTAL_RANGE), name="aldrete_total"),
        # "Awaiting signature" (the review queue and its nav badge) without visiting every
        # discharged session.
        sa.Index("ix_infusion_session_status_signed", "status", "signed_at"),
        # The review queue's page in its order, and its oldest session (PostgreSQL's min(id)
        # would otherwise walk the primary key from the first session ever): partial, so
        # they hold the backlog only. `status` leads: without it SQLite (no statistics)
        # takes ix_infusion_session_status_signed and sorts the whole backlog.
        partial_index(
            "ix_infusion_session_awaiting", "status", "discharged_at", "id", where=AWAITING
        ),
        partial_index("ix_infusion_session_awaiting_id", "status", "id", where=AWAITING),
        # The review queue's "override" on the session itself: a few sessions among many.
        partial_index("ix_infusion_session_override", "id", where=OWN_OVERRIDE),
        # The quality report's period: sessions by when their infusion started.
        sa.Index("ix_infusion_session_started_at", "started_at"),
    )
    __mapper_args__ = {"version_id_col": version}

    @property
    def status_label(self) -> str:
        return status_label(self.status)

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None


def status_label(status: str) -> str:
    """A session's status in words: "Infusing", "Discharged"."""
    return STATUSES.get(status, status)


# --- Clinical rows: appended, voided, corrected; never edited ------------------


class VoidableMixin:
    """Entered-in-error handling: void with a reason; a correction points at what it replaces."""

    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    void_reason: Mapped[str] = mapped_column(sa.Text, default="")

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


# Partial-index conditions, and the same conditions for queries (qualified, as literals).
OVERRIDDEN = "override_reason <> ''"
REASONED_STOP = "kind = 'stop' AND reason <> ''"
EVENT_OVERRIDDEN = sa.text("infusion_event.override_reason <> ''")
EVENT_REASONED_STOP = sa.text("infusion_event.kind = 'stop' AND infusion_event.reason <> ''")
CRITICAL = "severity = 'critical'"
# A session's baselines still standing (readings.latest_baseline; its partial index).
BASELINE = "phase = 'baseline' AND voided_at IS NULL"
# Readings that stand (not voided).
STANDING = "voided_at IS NULL"
READING_CRITICAL = sa.text("reading.severity = 'critical'")


class InfusionEvent(db.Model):
    __tablename__ = "infusion_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    rate_mg_per_h: Mapped[float | None] = mapped_column(sa.Float)
    # A rate above the protocol's limit: the physician who allowed it, and why.
    override_reason: Mapped[str] = mapped_column(sa.Text, default="")
    override_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship(back_populates="events")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])

    __table_args__ = (
        sa.CheckConstraint(sql_in("kind", INFUSION_EVENT_KINDS), name="kind"),
        # The review queue's and the quality report's "overridden" and "stopped early": a few
        # events among hundreds of thousands (queries write these conditions with literals so
        # the planner can match them: review/services.py, quality/services.py).
        partial_index("ix_infusion_event_override", "infusion_id", where=OVERRIDDEN),
        partial_index("ix_infusion_event_reasoned_stop", "infusion_id", where=REASONED_STOP),
    )

    @property
    def kind_label(self) -> str:
        return INFUSION_EVENT_KINDS.get(self.kind, self.kind)


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
    # The random key the form was drawn with: the same form posted twice stores once.
    submission_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True, index=True)

    infusion: Mapped[InfusionSession] = relationship(back_populates="readings")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])
    voided_by: Mapped[Staff | None] = relationship(foreign_keys="Reading.voided_by_id")
    critical_action_by: Mapped[Staff | None] = relationship(foreign_keys=[critical_action_by_id])

    __table_args__ = (
        # Ends with the id: the newest reading (queries.NEWEST_FIRST) from the index alone.
        sa.Index("ix_reading_infusion_taken", "infusion_id", "taken_at", "id"),
        # The newest standing baseline of a session, however many readings followed it.
        partial_index("ix_reading_baseline", "infusion_id", "taken_at", "id", where=BASELINE),
        # Each session's worst flag and peaks (the patient page's history) read from the index
        # alone: a 30-session patient's 1,200 readings lie scattered over the table (its
        # sessions were charted among everyone else's), together in the index
        # (bench/RESULTS.md, Stop 31). voided_at is a column too, as SQLite covers a query
        # only with every column it names. Severity before phase: with phase second, SQLite's
        # planner (without statistics) chose ix_reading_infusion_taken over
        # ix_reading_baseline for latest_baseline in some orders of creating the indexes.
        partial_index(
            "ix_reading_figures",
            "infusion_id", "severity", "phase", "systolic", "heart_rate", "voided_at",
            where=STANDING,
        ),
        # The critical readings (a handful among millions) of the review queue's backlog and
        # of the quality report's period. Severity first: an equality before the range on
        # the session, so SQLite's planner (without statistics) takes it over
        # ix_reading_figures, which it had read every standing reading of the backlog from
        # (bench/RESULTS.md, Stop 32); voided_at, so it covers the queue's statement.
        partial_index(
            "ix_reading_critical", "severity", "infusion_id", "voided_at", where=CRITICAL
        ),
        sa.CheckConstraint(sql_in("phase", PHASES), name="phase"),
        sa.CheckConstraint(sql_in("rhythm", RHYTHMS, blank=True), name="rhythm"),
        sa.CheckConstraint(sql_in("avpu", AVPU, blank=True), name="avpu"),
        sa.CheckConstraint(sql_in("severity", FLAG_LEVELS), name="severity"),
        sa.CheckConstraint(
            sql_in("critical_action", CRITICAL_ACTIONS, blank=True), name="critical_action"
        ),
        sa.CheckConstraint(sql_between("moaas", MOAAS_RANGE), name="moaas"),
        sa.CheckConstraint(sql_between("pain", PAIN_RANGE), name="pain"),
    )


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
    # As Reading.submission_key: the same form posted twice stores once.
    submission_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True, index=True)

    infusion: Mapped[InfusionSession] = relationship(back_populates="adverse_events")
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])
    voided_by: Mapped[Staff | None] = relationship(foreign_keys="AdverseEvent.voided_by_id")

    __table_args__ = (
        sa.CheckConstraint(sql_in("event_type", ADVERSE_EVENT_TYPES), name="event_type"),
        sa.CheckConstraint(sql_in("severity", AE_SEVERITIES), name="severity"),
        sa.CheckConstraint(sql_in("infusion_action", INFUSION_ACTIONS), name="infusion_action"),
    )

    @property
    def type_label(self) -> str:
        if self.event_type == "other" and self.type_other:
            return self.type_other
        return ADVERSE_EVENT_TYPES.get(self.event_type, self.event_type)


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

    __table_args__ = (
        sa.Index("ix_assessment_patient_taken", "patient_id", "taken_at"),
        # The review queue's "PHQ-9 item 9 above 0": a few among every score.
        sa.Index("ix_assessment_physician_flag", "infusion_id",
                 sqlite_where=sa.text("flag_physician IS 1"),
                 postgresql_where=sa.text("flag_physician IS TRUE")),
        sa.CheckConstraint(sql_in("instrument", INSTRUMENTS), name="instrument"),
        sa.CheckConstraint(sql_score_range(), name="score"),
    )

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


class SessionFigures(db.Model):
    """The quality report's per-session figures from the session's readings (quality/figures.py):
    derived, never entered. Valid only for the session `version` they were computed from:
    every change to a session's readings makes a new version, so a stored row that no longer
    matches is ignored and computed again."""

    __tablename__ = "session_figures"

    infusion_id: Mapped[int] = mapped_column(
        sa.ForeignKey("infusion_session.id"), primary_key=True
    )
    version: Mapped[int]
    peak_systolic: Mapped[int | None]  # highest systolic during infusion and recovery
    baseline_systolic: Mapped[int | None]  # the last baseline systolic
    intervals: Mapped[int]  # between consecutive infusion-phase readings
    overdue: Mapped[int]  # of them, later than the protocol's interval plus the grace
    interval_seconds: Mapped[float]


# --- Audit ----------------------------------------------------------------------


class AuditEvent(db.Model):
    """Append-only, hash-chained (see audit.py); the database refuses UPDATE and DELETE."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"), index=True)
    actor_name: Mapped[str] = mapped_column(sa.String(120))
    action: Mapped[str] = mapped_column(sa.String(60), index=True)
    entity_type: Mapped[str] = mapped_column(sa.String(40), default="")
    entity_id: Mapped[int | None]
    patient_id: Mapped[int | None] = mapped_column(sa.ForeignKey("patient.id"))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    remote_addr: Mapped[str] = mapped_column(sa.String(64), default="")
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[Staff | None] = relationship()

    # A patient's rows newest first without sorting them (the audit log's patient filter).
    __table_args__ = (
        sa.Index("ix_audit_event_patient", "patient_id", "id"),
        # A date-filtered page reads the range in (occurred_at, id) order from here.
        sa.Index("ix_audit_event_occurred", "occurred_at", "id"),
    )


# --- Monitor devices and proposed readings ---------------------------------------------------

MESSAGE_OUTCOMES = {"AA": "Accepted", "AE": "Refused (error)", "AR": "Rejected"}
PROPOSED_STATUSES = {"proposed": "Proposed", "accepted": "Accepted", "dismissed": "Dismissed"}
# The reading fields a monitor can fill (the rest of a vital set is the clinician's).
DEVICE_VALUE_FIELDS = (
    "systolic",
    "diastolic",
    "mean_arterial",
    "heart_rate",
    "resp_rate",
    "spo2",
    "temperature_c",
)


class Device(db.Model):
    """A bedside monitor (or an interface engine speaking for one) that belongs to a room.

    Only the SHA-256 of its bearer token is stored; the token is shown once when registered.
    """

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    room: Mapped[str] = mapped_column(sa.String(40))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # MSH-3 (or OBX-18) identifier: how the device is known on MLLP, where there is no token.
    identifier: Mapped[str] = mapped_column(sa.String(120), default="", index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))

    created_by: Mapped[Staff | None] = relationship(foreign_keys=[created_by_id])
    revoked_by: Mapped[Staff | None] = relationship(foreign_keys=[revoked_by_id])


class DeviceMessage(db.Model):
    """Every message an authenticated device sent, raw, with the answer it got (kept for audit)."""

    __tablename__ = "device_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("device.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    via: Mapped[str] = mapped_column(sa.String(10))  # "http" or "mllp"
    control_id: Mapped[str] = mapped_column(sa.String(64), default="")
    raw: Mapped[str] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(2))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    # The session the values were proposed to; None when nobody was in the room.
    infusion_id: Mapped[int | None] = mapped_column(sa.ForeignKey("infusion_session.id"))

    device: Mapped[Device] = relationship()

    __table_args__ = (
        sa.CheckConstraint("outcome IN ('AA','AE','AR')", name="outcome"),
        # The per-device rate limit counts a device's recent messages.
        sa.Index("ix_device_message_device_received", "device_id", "received_at"),
    )


class ProposedReading(db.Model):
    """Values from a monitor at one observation time, waiting for a clinician to accept them
    into the chart (as a Reading) or dismiss them. Nothing from a device is charted unaccepted."""

    __tablename__ = "proposed_reading"

    id: Mapped[int] = mapped_column(primary_key=True)
    infusion_id: Mapped[int] = mapped_column(sa.ForeignKey("infusion_session.id"), index=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("device.id"))
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("device_message.id"))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    phase: Mapped[str] = mapped_column(sa.String(20))
    # As sent (floats): a fractional SpO2 is the clinician's to see and fix, not ours to round.
    systolic: Mapped[float | None] = mapped_column(sa.Float)
    diastolic: Mapped[float | None] = mapped_column(sa.Float)
    mean_arterial: Mapped[float | None] = mapped_column(sa.Float)  # shown, not charted
    heart_rate: Mapped[float | None] = mapped_column(sa.Float)
    resp_rate: Mapped[float | None] = mapped_column(sa.Float)
    spo2: Mapped[float | None] = mapped_column(sa.Float)
    temperature_c: Mapped[float | None] = mapped_column(sa.Float)
    # Observations we do not map, as received (OBX segments in ER7), for the record.
    unknown: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    status: Mapped[str] = mapped_column(sa.String(10), default="proposed")
    reading_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reading.id"), unique=True)
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    infusion: Mapped[InfusionSession] = relationship()
    device: Mapped[Device] = relationship()
    reading: Mapped[Reading | None] = relationship()
    decided_by: Mapped[Staff | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint("status IN ('proposed','accepted','dismissed')", name="status"),
    )

    def values(self) -> dict[str, float]:
        """The measured values only, {field: value}."""
        return {
            name: getattr(self, name)
            for name in DEVICE_VALUE_FIELDS
            if getattr(self, name) is not None
        }


# --- Controlled-substance ledger -------------------------------------------------
# Amounts are whole micrograms so sums are exact; balances are never stored, they are
# derived from the entries (ledger/services.py). An entry is never edited: a correction is
# a new entry of the same kind with `corrects_id`, and the corrected entry stops counting.

LEDGER_KINDS = {
    "receipt": "Received",
    "draw": "Drawn for a session",
    "give": "Given (pump)",
    "waste": "Remainder wasted",
    "vial_waste": "Vial wasted",
}
VIAL_WASTE_REASONS = {"expired": "Expired", "broken": "Broken or contaminated", "other": "Other"}


class LedgerVial(db.Model):
    __tablename__ = "ledger_vial"

    id: Mapped[int] = mapped_column(primary_key=True)
    drug: Mapped[str] = mapped_column(sa.String(60), default="ketamine")
    strength_mg_per_ml: Mapped[float] = mapped_column(sa.Float)
    volume_ml: Mapped[float] = mapped_column(sa.Float)
    lot: Mapped[str] = mapped_column(sa.String(40))
    expiry: Mapped[date] = mapped_column(sa.Date)
    supplier: Mapped[str] = mapped_column(sa.String(120))
    invoice_number: Mapped[str] = mapped_column(sa.String(60))
    received_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    received_by: Mapped[Staff] = relationship()

    __table_args__ = (
        sa.CheckConstraint("strength_mg_per_ml > 0 AND volume_ml > 0", name="vial_positive"),
    )

    @property
    def label(self) -> str:
        return vial_label(self.id)

    @property
    def content_mcg(self) -> int:
        return round(self.strength_mg_per_ml * self.volume_ml * 1000)


def vial_label(vial_id: int) -> str:
    """A vial as the ledger names it: "V-00042"."""
    return f"V-{vial_id:05d}"


class LedgerEntry(db.Model):
    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    vial_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_vial.id"), index=True)
    infusion_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("infusion_session.id"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(20))
    amount_mcg: Mapped[int]
    # A draw's diluted product, e.g. 35 mg into 100 mL (the concentration follows).
    diluted_volume_ml: Mapped[float | None] = mapped_column(sa.Float)
    waste_reason: Mapped[str] = mapped_column(sa.String(20), default="")
    note: Mapped[str] = mapped_column(sa.Text, default="")
    witness_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    corrects_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ledger_entry.id"), unique=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    vial: Mapped[LedgerVial] = relationship()
    infusion: Mapped[InfusionSession | None] = relationship()
    witness: Mapped[Staff | None] = relationship(foreign_keys=[witness_id])
    recorded_by: Mapped[Staff] = relationship(foreign_keys=[recorded_by_id])

    __table_args__ = (
        sa.CheckConstraint("amount_mcg >= 0", name="amount_not_negative"),
        sa.CheckConstraint(
            "kind IN ('receipt','draw','give','waste','vial_waste')", name="ledger_kind"
        ),
    )

    @property
    def kind_label(self) -> str:
        return LEDGER_KINDS.get(self.kind, self.kind)

    @property
    def amount_mg(self) -> float:
        return self.amount_mcg / 1000


class LedgerCount(db.Model):
    """A count of the safe by two staff; one line per vial with a balance."""

    __tablename__ = "ledger_count"

    id: Mapped[int] = mapped_column(primary_key=True)
    counted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    counted_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    second_counter_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    counted_by: Mapped[Staff] = relationship(foreign_keys=[counted_by_id])
    second_counter: Mapped[Staff] = relationship(foreign_keys=[second_counter_id])
    lines: Mapped[list[LedgerCountLine]] = relationship(
        back_populates="count", order_by="LedgerCountLine.vial_id"
    )


class LedgerCountLine(db.Model):
    __tablename__ = "ledger_count_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    count_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_count.id"), index=True)
    vial_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_vial.id"), index=True)
    expected_mcg: Mapped[int]
    counted_mcg: Mapped[int]

    count: Mapped[LedgerCount] = relationship(back_populates="lines")
    vial: Mapped[LedgerVial] = relationship()

    @property
    def matches(self) -> bool:
        return self.expected_mcg == self.counted_mcg


class LedgerDiscrepancy(db.Model):
    """A count that did not match, or a session that does not balance, until someone with
    the authority (physician or admin) records why. Only the resolution columns are ever set
    after the row is written."""

    __tablename__ = "ledger_discrepancy"

    id: Mapped[int] = mapped_column(primary_key=True)
    vial_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_vial.id"), index=True)
    infusion_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("infusion_session.id"), index=True
    )
    count_line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_count_line.id"))
    expected_mcg: Mapped[int]
    found_mcg: Mapped[int]
    description: Mapped[str] = mapped_column(sa.Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    opened_by_id: Mapped[int] = mapped_column(sa.ForeignKey("staff.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"))
    resolution: Mapped[str] = mapped_column(sa.Text, default="")

    vial: Mapped[LedgerVial | None] = relationship()
    infusion: Mapped[InfusionSession | None] = relationship()
    opened_by: Mapped[Staff] = relationship(foreign_keys=[opened_by_id])
    resolved_by: Mapped[Staff | None] = relationship(foreign_keys=[resolved_by_id])

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def difference_mcg(self) -> int:
        return self.found_mcg - self.expected_mcg
