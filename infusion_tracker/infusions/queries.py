"""Reading a session and its rows: the fetch helpers every view and service shares, and the
pump's account of what was given. Nothing here writes."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from flask import abort
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from .. import clinical
from ..extensions import db
from ..models import (
    Addendum,
    AdverseEvent,
    Assessment,
    InfusionEvent,
    InfusionSession,
    Reading,
    with_staff,
)

# Sessions that occupy a room on the suite board.
ACTIVE_STATUSES = ("checked_in", "infusing", "paused", "recovery", "stopped_early")
NOT_STARTED_STATUSES = ("planned", "checked_in")
RUNNING_STATUSES = ("infusing", "paused")  # the pump is on (or paused): its amount still grows
OBSERVED_STATUSES = ("recovery", "stopped_early")  # after the pump, before discharge
DOSE_FIELDS = ("weight_kg", "dose_mg_per_kg", "duration_min", "concentration_mg_per_ml")


def session_options(full: bool = False) -> list:
    """Loader options for a session with its patient, protocol and staff; `full` adds the
    staff its page names (its charted rows come with _load_collections)."""
    options = [
        joinedload(InfusionSession.patient),
        joinedload(InfusionSession.protocol),
        with_staff(InfusionSession.clinician),
        with_staff(InfusionSession.physician),
        with_staff(InfusionSession.updated_by),
    ]
    if full:
        options += [
            with_staff(InfusionSession.signed_by),
            with_staff(InfusionSession.start_override_by),
            with_staff(InfusionSession.dose_override_by),
            with_staff(InfusionSession.discharged_by),
        ]
    return options


# Every charted row of a session, with the staff each row names: (collection, staff).
COLLECTIONS = (
    (
        InfusionSession.readings,
        (Reading.recorded_by, Reading.voided_by, Reading.critical_action_by),
    ),
    (InfusionSession.events, (InfusionEvent.recorded_by,)),
    (InfusionSession.adverse_events, (AdverseEvent.recorded_by, AdverseEvent.voided_by)),
    (InfusionSession.assessments, (Assessment.recorded_by, Assessment.voided_by)),
    (InfusionSession.addenda, (Addendum.author,)),
)


@cache
def _session_statement(full: bool) -> sa.Select:
    """Built once: building the loader options and the statement's cache key cost about a
    millisecond per page (bench/RESULTS.md, "Stop 15"); the id is a parameter."""
    return (
        sa.select(InfusionSession)
        .where(InfusionSession.id == sa.bindparam("infusion_id"))
        .options(*session_options(full))
    )


@cache
def _collection_statements() -> list[tuple[str, sa.Select]]:
    """One statement per collection, in the relationship's order: what selectinload would
    send, built once (selectinload builds its statements and their cache keys on every load,
    a quarter of the session page's loading time)."""
    statements = []
    for collection, staff in COLLECTIONS:
        relationship = collection.property
        model = relationship.mapper.class_
        statement = (
            sa.select(model)
            .where(model.infusion_id == sa.bindparam("infusion_id"))
            .order_by(*relationship.order_by)
            .options(*map(with_staff, staff))
        )
        statements.append((relationship.key, statement))
    return statements


def _load_collections(infusion: InfusionSession, empty: Container[str]) -> None:
    """Every charted row of the session, one query per collection (so a page costs the same
    with 3 readings or 300); a collection already loaded in this transaction is kept, and one
    named in `empty` is empty without a query."""
    unloaded = sa.inspect(infusion).unloaded
    for key, statement in _collection_statements():
        if key not in unloaded:
            continue
        if key in empty:
            rows = []
        else:
            rows = db.session.scalars(statement, {"infusion_id": infusion.id}).all()
        set_committed_value(infusion, key, rows)


def get_infusion_or_404(
    infusion_id: int, *, full: bool = False, empty: Container[str] = ()
) -> InfusionSession:
    """The session for reading (a page); writes go through guards.infusion_for_write.
    `full`: with every charted row and the staff the page names; `empty`: the collections
    this transaction has already found empty (infusions/drawn.py: its fingerprint)."""
    infusion = db.session.scalar(_session_statement(full), {"infusion_id": infusion_id})
    if infusion is None:
        abort(404)
    if full:
        _load_collections(infusion, empty)
    return infusion


def get_reading_or_404(reading_id: int) -> Reading:
    return db.get_or_404(Reading, reading_id)


def get_adverse_event_or_404(ae_id: int) -> AdverseEvent:
    return db.get_or_404(AdverseEvent, ae_id)


def reading_values(reading: Reading | None) -> dict[str, Any] | None:
    """A reading as the clinical rules take it: {Reading attribute: value}."""
    if reading is None:
        return None
    return {name: getattr(reading, name) for name in clinical.VITAL_FIELDS}


def newest_first(reading=Reading) -> tuple:
    """A session's readings newest first: the order that picks "the latest reading"
    everywhere (latest_reading, latest_of, the board's last reading, the patient page's
    baselines); `reading`: Reading or an alias of it."""
    return (reading.taken_at.desc(), reading.id.desc())


NEWEST_FIRST = newest_first()


def latest_reading(
    infusion: InfusionSession, phase: str | None = None, until: datetime | None = None
) -> Reading | None:
    """The most recent reading that was not voided (of one phase, taken by `until`, if given)."""
    query = sa.select(Reading).where(
        Reading.infusion_id == infusion.id, Reading.voided_at.is_(None)
    )
    if phase is not None:
        query = query.where(Reading.phase == phase)
    if until is not None:
        query = query.where(Reading.taken_at <= until)
    return db.session.scalar(query.order_by(*NEWEST_FIRST).limit(1))


def latest_of(readings: list[Reading], phase: str | None = None) -> Reading | None:
    """latest_reading() over rows already loaded (the session page), without a query."""
    chosen = None
    for reading in readings:
        if reading.is_voided or (phase is not None and reading.phase != phase):
            continue
        if chosen is None or (reading.taken_at, reading.id) > (chosen.taken_at, chosen.id):
            chosen = reading
    return chosen


def is_open_critical(reading: Reading) -> bool:
    """A critical reading nobody has answered yet (adverse event or "reviewed, no action")."""
    return reading.severity == "critical" and not reading.is_voided and not reading.critical_action


def dose_for(
    weight_kg: float | None,
    dose_mg_per_kg: float | None,
    duration_min: int | None,
    concentration_mg_per_ml: float | None,
) -> clinical.Dose | None:
    """clinical.dose once every number is known (the weight often comes only at check-in)."""
    values = (weight_kg, dose_mg_per_kg, duration_min, concentration_mg_per_ml)
    if any(value is None or value <= 0 for value in values):
        return None
    return clinical.dose(*values)


def compute_dose(infusion: InfusionSession) -> clinical.Dose | None:
    """The session's dose by SPEC §3: total = weight × mg/kg, rate = total / duration."""
    return dose_for(*(getattr(infusion, name) for name in DOSE_FIELDS))


def dose_problem(infusion: InfusionSession) -> str | None:
    dose = compute_dose(infusion)
    if dose is None:
        return None
    return clinical.dose_problem(dose.total_mg, infusion.protocol.max_total_mg)


def pump_events(infusion: InfusionSession) -> list[clinical.PumpEvent]:
    """The session's infusion events as the pump arithmetic needs them (loaded events)."""
    return [
        clinical.PumpEvent(event.kind, event.occurred_at, event.rate_mg_per_h)
        for event in infusion.events
    ]


def pump_run(infusion: InfusionSession, now: datetime) -> clinical.PumpRun:
    """What the pump did and gave, from the session's infusion events (to the stop, or now)."""
    return clinical.pump_run(pump_events(infusion), infusion.ended_at or now, infusion.total_mg)


def run_on_events(infusion: InfusionSession) -> list[InfusionEvent]:
    """Why the infusion runs on past its planned minutes, oldest first (loaded events)."""
    return [event for event in infusion.events if event.kind == "run_on"]


def rate_limit(infusion: InfusionSession) -> float | None:
    """The fastest rate this session may run without a physician (clinical.protocol_rate_limit)."""
    dose = compute_dose(infusion)
    if dose is None:
        return None
    protocol = infusion.protocol
    return clinical.protocol_rate_limit(
        infusion.weight_kg, protocol.dose_mg_per_kg, protocol.infusion_minutes, dose.mg_per_h
    )


def reading_interval(infusion: InfusionSession) -> int | None:
    """The protocol's reading interval for the session's phase (None when none is due)."""
    if infusion.status in RUNNING_STATUSES:
        return infusion.protocol.reading_interval_infusion_min
    if infusion.status in OBSERVED_STATUSES:
        return infusion.protocol.reading_interval_recovery_min
    return None
