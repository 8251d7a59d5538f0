"""The session lifecycle (SPEC §3): plan, check in, start behind the gate, pause, resume,
change the rate, stop, discharge, cancel.

Every service locks the session row and checks the signature lock and the form's version
(guards), asks clinical.next_status whether the action is allowed now, changes the row,
writes its audit entry and flushes; the request's unit of work commits.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from .. import audit, clinical
from ..errors import RuleError
from ..extensions import db
from ..models import (
    CLINICAL_ROLES,
    ROLE_PHYSICIAN,
    InfusionEvent,
    InfusionSession,
    Patient,
    Protocol,
    Reading,
    Staff,
)
from ..timeutil import format_time, utcnow
from . import guards
from .queries import (
    ACTIVE_STATUSES,
    DOSE_FIELDS,
    NOT_STARTED_STATUSES,
    RUNNING_STATUSES,
    compute_dose,
    dose_for,
    latest_reading,
    pump_run,
    rate_limit,
    reading_values,
)

CLOCK_SKEW = clinical.CLOCK_SKEW
DETAIL_FIELDS = (
    "room",
    "consent_on_file",
    "npo_confirmed",
    "escort_name",
    "pregnancy_status",
    "med_allergy_review_done",
    "iv_site",
    "iv_gauge",
    "lot_number",
    "notes",
)
PLANNED_FIELDS = (
    "series_number",
    "protocol_id",
    "room",
    "scheduled_for",
    "clinician_id",
    "physician_id",
    "indication",
    *DOSE_FIELDS,
    "drug",
    "total_mg",
)


def start_problems(infusion: InfusionSession, baseline: Reading | None, now: datetime) -> list[str]:
    """Why the start gate is closed (SPEC §3): checklist, a recent baseline within limits."""
    checklist = {key: getattr(infusion, key) for key, _label in clinical.CHECKLIST_ITEMS}
    return clinical.start_gate_problems(
        checklist,
        reading_values(baseline),
        baseline.taken_at if baseline else None,
        now,
        clinical.Limits.from_dict(infusion.protocol.limits),
    )



# --- Shared steps of every action -------------------------------------------------------------


def _begin(infusion: InfusionSession, version: int | None) -> None:
    """Lock the row (re-read in place), then refuse a signed session or a stale form."""
    guards.lock(infusion.id)
    guards.ensure_editable(infusion)
    guards.check_version(infusion, version)


def ensure_allowed(infusion: InfusionSession, action: str) -> None:
    """Refuse (RuleError) an action — a clinical.TRANSITIONS key, "rate" or "run_on" — the
    state forbids."""
    if action == "run_on":
        if infusion.status not in RUNNING_STATUSES:
            raise RuleError(
                f"Only a running infusion can run on (the session is "
                f"{infusion.status_label.lower()})."
            )
        return
    if action == "rate":
        if infusion.status != "infusing":
            raise RuleError(
                f"The rate can change only while infusing (the session is "
                f"{infusion.status_label.lower()})."
            )
        return
    _transition(infusion, action)


def _transition(infusion: InfusionSession, action: str) -> str:
    try:
        return clinical.next_status(infusion.status, action)
    except clinical.TransitionRefused as refused:
        raise RuleError(str(refused)) from refused


def _when(at: datetime | None, not_before: datetime | None, what: str) -> datetime:
    """The clinical time of an action: now by default; never in the future, never out of order."""
    now = utcnow()
    at = at or now
    if at > now + CLOCK_SKEW:
        raise RuleError(f"{what} cannot be in the future.", field="at")
    if not_before is not None and at < not_before:
        raise RuleError(f"{what} cannot be before {format_time(not_before)}.", field="at")
    return at


def _apply(infusion: InfusionSession, actor: Staff, **values: Any) -> None:
    """Change the session in one step, stamped with who and when. Callers do every read first
    (a lazy load autoflushes), so one UPDATE — one new version — writes the whole action."""
    actor_id = actor.id  # may load the actor: before any change, so nothing flushes half-done
    for name, value in values.items():
        setattr(infusion, name, value)
    guards.touch(infusion, actor_id)


def _reason(reason: str | None) -> str:
    return (reason or "").strip()


def _last_event_at(infusion: InfusionSession) -> datetime | None:
    return max((event.occurred_at for event in infusion.events), default=None)


def _add_event(
    infusion: InfusionSession,
    actor: Staff,
    kind: str,
    at: datetime,
    reason: str = "",
    rate_mg_per_h: float | None = None,
) -> InfusionEvent:
    event = InfusionEvent(
        kind=kind,
        occurred_at=at,
        reason=reason,
        rate_mg_per_h=rate_mg_per_h,
        recorded_by_id=actor.id,
    )
    infusion.events.append(event)
    return event


def _record(action: str, infusion: InfusionSession, actor: Staff, **details: Any) -> None:
    audit.record(
        action, entity=infusion, patient_id=infusion.patient_id, actor=actor, details=details
    )


def _ensure_room_free(infusion: InfusionSession, room: str) -> None:
    """One patient per room: the board shows each room's one session."""
    if not room:
        raise RuleError(
            "Choose a room first: the suite board shows patients by room.", field="room"
        )
    other = db.session.scalar(
        sa.select(InfusionSession)
        .options(joinedload(InfusionSession.patient))
        .where(
            InfusionSession.room == room,
            InfusionSession.status.in_(ACTIVE_STATUSES),
            InfusionSession.id != infusion.id,
        )
        .limit(1)
    )
    if other is not None:
        raise RuleError(
            f"{room} is in use by {other.patient.full_name} ({other.status_label.lower()}). "
            "Choose another room.",
            field="room",
        )


def _active_staff(staff_id: int | None, roles: tuple[str, ...], label: str, field: str) -> Staff:
    staff = db.session.get(Staff, staff_id) if staff_id else None
    if staff is None or not staff.active or staff.role not in roles:
        raise RuleError(f"{label}: choose an active member of staff from the list.", field=field)
    return staff


def _total_mg(*values) -> float | None:
    dose = dose_for(*values)
    return dose.total_mg if dose else None


# --- Planning and details ---------------------------------------------------------------------


def plan_infusion(patient: Patient, data: dict[str, Any], actor: Staff) -> InfusionSession:
    """Plan the patient's next session in the series under the current protocol version.

    `data`: protocol_id, clinician_id, physician_id (required); scheduled_for (aware UTC,
    default now), room, weight_kg, indication, notes; dose_mg_per_kg, duration_min,
    concentration_mg_per_ml (None = the protocol's). total_mg follows from clinical.dose.
    """
    if not patient.active:
        raise RuleError("This patient's record is archived: restore it before planning.")
    protocol = db.session.get(Protocol, data.get("protocol_id") or 0)
    if protocol is None or not protocol.is_current:
        raise RuleError("Protocol: choose a current protocol from the list.", field="protocol_id")
    clinician = _active_staff(
        data.get("clinician_id"), CLINICAL_ROLES, "Overseeing clinician", "clinician_id"
    )
    physician = _active_staff(
        data.get("physician_id"), (ROLE_PHYSICIAN,), "Supervising physician", "physician_id"
    )
    last_number = db.session.scalar(
        sa.select(sa.func.max(InfusionSession.series_number)).where(
            InfusionSession.patient_id == patient.id
        )
    )

    def given(key: str, default):
        value = data.get(key)
        return default if value is None else value

    infusion = InfusionSession(
        patient=patient,
        series_number=(last_number or 0) + 1,
        protocol=protocol,
        room=data.get("room") or "",
        status="planned",
        scheduled_for=data.get("scheduled_for") or utcnow(),
        clinician_id=clinician.id,
        physician_id=physician.id,
        indication=data.get("indication") or patient.indication,
        weight_kg=data.get("weight_kg"),
        drug=protocol.drug,
        dose_mg_per_kg=given("dose_mg_per_kg", protocol.dose_mg_per_kg),
        duration_min=given("duration_min", protocol.infusion_minutes),
        concentration_mg_per_ml=given("concentration_mg_per_ml", protocol.concentration_mg_per_ml),
        notes=data.get("notes") or "",
        created_by_id=actor.id,
    )
    infusion.total_mg = _total_mg(
        infusion.weight_kg,
        infusion.dose_mg_per_kg,
        infusion.duration_min,
        infusion.concentration_mg_per_ml,
    )
    db.session.add(infusion)
    db.session.flush()
    _record(
        "session.planned",
        infusion,
        actor,
        after=audit.snapshot(infusion, PLANNED_FIELDS),
        protocol=protocol.label,
    )
    return infusion


def update_infusion(
    infusion: InfusionSession, data: dict[str, Any], actor: Staff, form_version: int | None
) -> dict[str, list]:
    """Checklist, room, IV site/gauge, lot, notes — and the dose fields until the infusion
    starts (after that the rate changes by event). Only keys present in `data` are applied.
    Returns the changes ({} when nothing changed: no audit row, no new version)."""
    _begin(infusion, form_version)
    fields = [name for name in (*DETAIL_FIELDS, *DOSE_FIELDS) if name in data]
    before = audit.snapshot(infusion, [*fields, "total_mg"])
    started = infusion.status not in NOT_STARTED_STATUSES
    new = dict(before)
    for name in fields:
        value = data[name]
        new[name] = value.strip() if isinstance(value, str) else value
        if name not in DOSE_FIELDS:
            continue
        if started and new[name] != before[name]:
            raise RuleError(
                "The weight and dose cannot change once the infusion has started; "
                "record a rate change instead.",
                field=name,
            )
        if name != "weight_kg" and (new[name] is None or new[name] <= 0):
            raise RuleError("Dose, duration and concentration are needed.", field=name)
    if not started:
        new["total_mg"] = _total_mg(
            *(new.get(name, getattr(infusion, name)) for name in DOSE_FIELDS)
        )
    changed = audit.changes(before, new)
    if not changed:
        return {}
    if "room" in changed and infusion.status in ACTIVE_STATUSES:
        _ensure_room_free(infusion, new["room"])
    _apply(infusion, actor, **{name: new[name] for name in changed})
    _record(
        "session.updated",
        infusion,
        actor,
        before={k: before[k] for k in changed},
        after={k: new[k] for k in changed},
    )
    return changed


# --- The state machine ------------------------------------------------------------------------


def check_in(
    infusion: InfusionSession,
    actor: Staff,
    at: datetime | None = None,
    *,
    version: int | None = None,
) -> None:
    """planned → checked_in: the patient is in a room (one patient per room)."""
    _begin(infusion, version)
    status = _transition(infusion, "check_in")
    at = _when(at, None, "The check-in time")
    _ensure_room_free(infusion, infusion.room)
    _apply(infusion, actor, status=status, checked_in_at=at)
    _record("session.checked_in", infusion, actor, at=at, room=infusion.room)


def start_infusion(
    infusion: InfusionSession,
    actor: Staff,
    at: datetime | None = None,
    override_reason: str | None = None,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """checked_in → infusing behind the start gate and the dose maximum (SPEC §3); either may
    be overridden only by a physician, with a reason, which is stored and audited."""
    _begin(infusion, version)
    status = _transition(infusion, "start")
    at = _when(at, infusion.checked_in_at, "The start time")
    dose = compute_dose(infusion)
    if dose is None:
        raise RuleError(
            "Record the weight first: without it the dose cannot be computed.", field="weight_kg"
        )
    # The baseline that counts is the last one before the start (which may be charted late).
    gate = start_problems(infusion, latest_reading(infusion, "baseline", until=at), at)
    too_much = clinical.dose_problem(dose.total_mg, infusion.protocol.max_total_mg)
    reason = _reason(override_reason)
    problems = [*gate, *([too_much] if too_much else [])]
    if problems:
        if not reason:
            raise RuleError(
                "Start refused: " + " ".join(problems) + " A physician may override with a reason.",
                field="override_reason",
            )
        if actor.role != ROLE_PHYSICIAN:
            raise RuleError(
                "Only a physician may override the start gate or the dose maximum.",
                field="override_reason",
            )
    overrides = {}
    if gate:
        overrides.update(start_override_reason=reason, start_override_by_id=actor.id)
    if too_much:
        overrides.update(dose_override_reason=reason, dose_override_by_id=actor.id)
    _apply(infusion, actor, status=status, started_at=at, total_mg=dose.total_mg, **overrides)
    event = _add_event(infusion, actor, "start", at, rate_mg_per_h=dose.mg_per_h)
    if gate:
        _record("session.start_override", infusion, actor, problems=gate, reason=reason)
    if too_much:
        _record(
            "session.dose_override",
            infusion,
            actor,
            total_mg=dose.total_mg,
            max_total_mg=infusion.protocol.max_total_mg,
            reason=reason,
        )
    _record(
        "session.started",
        infusion,
        actor,
        at=at,
        total_mg=dose.total_mg,
        mg_per_h=dose.mg_per_h,
        ml_per_h=dose.ml_per_h,
    )
    return event


def pause_infusion(
    infusion: InfusionSession,
    actor: Staff,
    reason: str,
    at: datetime | None = None,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """infusing → paused; a pause is never routine, so it carries a reason."""
    _begin(infusion, version)
    status = _transition(infusion, "pause")
    reason = _reason(reason)
    if not reason:
        raise RuleError("Give the reason for the pause.", field="reason")
    at = _when(at, _last_event_at(infusion), "The pause time")
    _apply(infusion, actor, status=status)
    event = _add_event(infusion, actor, "pause", at, reason)
    _record("session.paused", infusion, actor, at=at, reason=reason)
    return event


def resume_infusion(
    infusion: InfusionSession,
    actor: Staff,
    at: datetime | None = None,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """paused → infusing at the running rate."""
    _begin(infusion, version)
    status = _transition(infusion, "resume")
    at = _when(at, _last_event_at(infusion), "The resume time")
    _apply(infusion, actor, status=status)
    event = _add_event(infusion, actor, "resume", at)
    _record("session.resumed", infusion, actor, at=at)
    return event


def change_rate(
    infusion: InfusionSession,
    actor: Staff,
    mg_per_h: float,
    reason: str,
    at: datetime | None = None,
    override_reason: str | None = None,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """A new pump rate while infusing: an infusion event with the new mg/h and its reason.
    Above the protocol's limit (clinical.protocol_rate_limit) only a physician may set it,
    with a reason, which is audited and listed in the review queue."""
    _begin(infusion, version)
    ensure_allowed(infusion, "rate")
    if mg_per_h is None or not math.isfinite(mg_per_h) or mg_per_h <= 0:
        raise RuleError("The new rate must be above 0 mg/h.", field="mg_per_h")
    reason = _reason(reason)
    if not reason:
        raise RuleError("Give the reason for the rate change.", field="reason")
    limit = rate_limit(infusion)
    too_fast = clinical.rate_problem(mg_per_h, limit) if limit is not None else None
    override = _reason(override_reason)
    if too_fast and not override:
        raise RuleError(
            too_fast + " A physician may override with a reason.", field="override_reason"
        )
    if too_fast and actor.role != ROLE_PHYSICIAN:
        raise RuleError(
            too_fast + " Only a physician may set a rate above the protocol's limit.",
            field="override_reason",
        )
    at = _when(at, _last_event_at(infusion), "The rate change time")
    previous = pump_run(infusion, at).rate_mg_per_h
    # The row changes too (who and when), so a stale second click on the old rate is refused.
    _apply(infusion, actor)
    event = _add_event(infusion, actor, "rate_change", at, reason, rate_mg_per_h=mg_per_h)
    if too_fast:
        event.override_reason = override
        event.override_by_id = actor.id
        _record(
            "session.rate_override",
            infusion,
            actor,
            mg_per_h=mg_per_h,
            limit_mg_per_h=limit,
            reason=override,
        )
    _record(
        "session.rate_changed",
        infusion,
        actor,
        at=at,
        before=previous,
        after=mg_per_h,
        reason=reason,
    )
    return event


def record_run_on(
    infusion: InfusionSession,
    actor: Staff,
    reason: str,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """Why the infusion goes on past its planned minutes: an infusion event with the reason,
    appended and audited like a pause; a later reason is a new event, never an overwrite."""
    _begin(infusion, version)
    ensure_allowed(infusion, "run_on")
    at = _when(None, _last_event_at(infusion), "The run-on time")
    ran = pump_run(infusion, at).minutes
    if not clinical.planned_reached(ran, infusion.duration_min):
        raise RuleError(
            f"The infusion has run {int(ran)} of its planned {infusion.duration_min} minutes: "
            "it does not run on yet."
        )
    reason = _reason(reason)
    if not reason:
        raise RuleError("Give the reason the infusion runs on.", field="reason")
    # The row changes too (who and when), so a stale second click is refused like a rate change.
    _apply(infusion, actor)
    event = _add_event(infusion, actor, "run_on", at, reason)
    _record(
        "session.run_on",
        infusion,
        actor,
        at=at,
        minutes_run=round(ran),
        planned_minutes=infusion.duration_min,
        reason=reason,
    )
    return event


def stop_infusion(
    infusion: InfusionSession,
    actor: Staff,
    reason: str = "",
    early: bool = False,
    at: datetime | None = None,
    *,
    version: int | None = None,
) -> InfusionEvent:
    """infusing/paused → recovery, or → stopped_early when an adverse event ended it.
    Stopping before the planned duration is not routine and needs a reason."""
    _begin(infusion, version)
    status = _transition(infusion, "stop_early" if early else "stop")
    at = _when(at, _last_event_at(infusion), "The stop time")
    reason = _reason(reason) or ("Stopped for an adverse event" if early else "")
    ran = pump_run(infusion, at).minutes
    if clinical.ended_short(ran, infusion.duration_min) and not reason:
        raise RuleError(
            f"The infusion ran {int(ran)} of the planned {infusion.duration_min} minutes: "
            "give the reason for stopping early.",
            field="reason",
        )
    _apply(infusion, actor, status=status, ended_at=at)
    event = _add_event(infusion, actor, "stop", at, reason)
    _record(
        "session.stopped",
        infusion,
        actor,
        at=at,
        early=early,
        reason=reason,
        infused_min=round(ran, 1),
    )
    return event


def observation_remaining(infusion: InfusionSession, now: datetime) -> timedelta:
    """Time left of the protocol's minimum observation after the infusion ended."""
    if infusion.ended_at is None:
        return timedelta(minutes=infusion.protocol.min_observation_min)
    minimum = timedelta(minutes=infusion.protocol.min_observation_min)
    return max(timedelta(), infusion.ended_at + minimum - now)


def discharge(
    infusion: InfusionSession,
    data: dict[str, Any],
    actor: Staff,
    *,
    version: int | None = None,
) -> None:
    """recovery/stopped_early → discharged: modified Aldrete (Aldrete 1995) ≥ 9 or a documented
    reason, an escort named, and the protocol's minimum observation time respected.

    `data`: the five clinical.ALDRETE_ITEMS keys (0–2), escort, override_reason, note, at.
    """
    _begin(infusion, version)
    status = _transition(infusion, "discharge")
    at = _when(data.get("at"), infusion.ended_at, "The discharge time")
    try:
        items = {key: data.get(key) for key in clinical.ALDRETE_ITEMS}
        total = clinical.aldrete_total(items)
    except ValueError as error:
        raise RuleError(f"Answer every Aldrete item with 0, 1 or 2 ({error}).") from error
    reason = _reason(data.get("override_reason"))
    if total < clinical.ALDRETE_DISCHARGE_MIN and not reason:
        raise RuleError(
            f"The modified Aldrete score is {total} of 10; discharge needs "
            f"{clinical.ALDRETE_DISCHARGE_MIN} or a documented reason.",
            field="override_reason",
        )
    escort = _reason(data.get("escort"))
    if not escort:
        raise RuleError("Name the escort who takes the patient home.", field="escort")
    remaining = observation_remaining(infusion, at)
    if remaining > timedelta():
        minutes = math.ceil(remaining.total_seconds() / 60)
        raise RuleError(
            f"The minimum observation after the infusion is "
            f"{infusion.protocol.min_observation_min} minutes: {minutes} minute"
            f"{'' if minutes == 1 else 's'} remain (discharge from "
            f"{format_time(at + remaining)})."
        )
    _apply(
        infusion,
        actor,
        status=status,
        discharged_at=at,
        discharged_by_id=actor.id,
        aldrete=items,
        aldrete_total=total,
        discharge_override_reason=reason if total < clinical.ALDRETE_DISCHARGE_MIN else "",
        discharge_escort=escort,
        discharge_note=_reason(data.get("note")),
    )
    _record(
        "session.discharged",
        infusion,
        actor,
        at=at,
        aldrete=items,
        aldrete_total=total,
        escort=escort,
        override_reason=infusion.discharge_override_reason,
    )


def cancel_infusion(
    infusion: InfusionSession,
    actor: Staff,
    reason: str,
    *,
    version: int | None = None,
) -> None:
    """planned/checked_in → cancelled; sessions are never deleted (SPEC §3)."""
    _begin(infusion, version)
    status = _transition(infusion, "cancel")
    reason = _reason(reason)
    if not reason:
        raise RuleError("Give the reason for cancelling.", field="reason")
    _apply(infusion, actor, status=status, cancelled_at=utcnow(), cancel_reason=reason)
    _record("session.cancelled", infusion, actor, reason=reason)


