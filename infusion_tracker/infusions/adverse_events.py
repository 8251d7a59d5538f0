"""Adverse events (SPEC §2): recorded, voided, corrected. Choosing "paused" or "stopped" as
the infusion action pauses or stops the infusion in the same transaction; an event recorded
for a critical reading is that reading's answer (SPEC §4 tier 3)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from .. import audit, clinical
from ..errors import RuleError
from ..extensions import db
from ..models import (
    ADVERSE_EVENT_TYPES,
    AE_SEVERITIES,
    INFUSION_ACTIONS,
    AdverseEvent,
    InfusionSession,
    Reading,
    Staff,
)
from ..timeutil import utcnow
from . import guards, lifecycle, readings
from .queries import is_open_critical

# From check-in until signing: a late-reported event (a fall on the way out) still belongs here.
RECORDABLE_STATUSES = (
    "checked_in",
    "infusing",
    "paused",
    "recovery",
    "stopped_early",
    "discharged",
)
# infusion action -> statuses in which the pump can still be acted on.
ACTION_NEEDS = {
    "slowed": ("infusing",),
    "paused": ("infusing",),
    "stopped": ("infusing", "paused"),
}
ENTRY_FIELDS = (
    "onset_at",
    "event_type",
    "type_other",
    "severity",
    "serious",
    "intervention",
    "intervention_drug",
    "intervention_dose",
    "infusion_action",
    "physician_notified",
    "outcome",
    "reading_id",
)
TEXT_LIMITS = {
    "type_other": 120,
    "intervention": 2000,
    "intervention_drug": 60,
    "intervention_dose": 60,
    "outcome": 2000,
}


class AdverseEventRefused(RuleError):
    """Problems with an adverse event, {AdverseEvent attribute or "__all__": message}."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(" ".join(problems.values()))


def _problems(
    infusion: InfusionSession, data: dict, now: datetime, *, check_action: bool
) -> dict[str, str]:
    problems: dict[str, str] = {}
    onset_problem = _onset_problem(infusion, data.get("onset_at"), now)
    if onset_problem:
        problems["onset_at"] = onset_problem
    if data.get("event_type") not in ADVERSE_EVENT_TYPES:
        problems["event_type"] = "Choose the type of event."
    elif data["event_type"] == "other" and not (data.get("type_other") or "").strip():
        problems["type_other"] = "Describe the other type of event."
    if data.get("severity") not in AE_SEVERITIES:
        problems["severity"] = "Choose the severity."
    action = data.get("infusion_action") or "none"
    if action not in INFUSION_ACTIONS:
        problems["infusion_action"] = "Choose what was done with the infusion."
    elif check_action and action in ACTION_NEEDS and infusion.status not in ACTION_NEEDS[action]:
        problems["infusion_action"] = (
            f"The infusion cannot be {INFUSION_ACTIONS[action].lower()} now: the session is "
            f"{infusion.status_label.lower()}."
        )
    for name, limit in TEXT_LIMITS.items():
        if len(data.get(name) or "") > limit:
            problems[name] = f"At most {limit} characters."
    if not _answers_own_reading(infusion, data.get("reading_id")):
        problems["__all__"] = "The reading this event answers is not part of this session."
    return problems


def _onset_problem(infusion: InfusionSession, onset: datetime | None, now: datetime) -> str | None:
    if onset is None:
        return "Enter the time the event began."
    if onset > now + clinical.CLOCK_SKEW:
        return "The onset time cannot be in the future."
    if clinical.before_check_in(onset, infusion.checked_in_at):
        return "The onset time cannot be before the patient was checked in."
    return None


def _answers_own_reading(infusion: InfusionSession, reading_id: int | None) -> bool:
    """No reading named, or one of this session's."""
    if reading_id is None:
        return True
    reading = db.session.get(Reading, reading_id)
    return reading is not None and reading.infusion_id == infusion.id


def _new_event(
    infusion: InfusionSession, data: dict, actor: Staff, now: datetime, *, check_action: bool
) -> AdverseEvent:
    problems = _problems(infusion, data, now, check_action=check_action)
    if problems:
        raise AdverseEventRefused(problems)
    event = AdverseEvent(
        infusion_id=infusion.id,
        onset_at=data["onset_at"],
        event_type=data["event_type"],
        type_other=(data.get("type_other") or "").strip() if data["event_type"] == "other" else "",
        severity=data["severity"],
        serious=bool(data.get("serious")),
        intervention=(data.get("intervention") or "").strip(),
        intervention_drug=(data.get("intervention_drug") or "").strip(),
        intervention_dose=(data.get("intervention_dose") or "").strip(),
        infusion_action=data.get("infusion_action") or "none",
        physician_notified=bool(data.get("physician_notified")),
        outcome=(data.get("outcome") or "").strip(),
        reading_id=data.get("reading_id"),
        recorded_by_id=actor.id,
        created_at=now,
    )
    db.session.add(event)
    db.session.flush()
    return event


def record_adverse_event(
    infusion: InfusionSession, data: dict, actor: Staff, now: datetime | None = None
) -> AdverseEvent:
    """Record an adverse event; "paused"/"stopped" also pause or stop (early) the infusion, and
    an unanswered critical reading it names is answered by it."""
    guards.lock(infusion.id)
    readings.ensure_first_post(AdverseEvent, infusion, data.get("submission_key"))
    guards.begin_row_change(infusion, actor.id)
    if infusion.status not in RECORDABLE_STATUSES:
        raise RuleError(
            f"Adverse events cannot be recorded on a {infusion.status_label.lower()} session."
        )
    now = now or utcnow()
    event = _new_event(infusion, data, actor, now, check_action=True)
    event.submission_key = data.get("submission_key")
    audit.record(
        "adverse_event.recorded",
        entity=event,
        patient_id=infusion.patient_id,
        details=audit.snapshot(event, ENTRY_FIELDS),
        actor=actor,
    )
    if event.reading_id is not None:
        reading = db.session.get(Reading, event.reading_id)
        if is_open_critical(reading):
            readings.answer_with_adverse_event(reading, actor, event.id)
    reason = f"Adverse event: {event.type_label}"
    if event.infusion_action == "paused":
        lifecycle.pause_infusion(infusion, actor, reason=reason)
    elif event.infusion_action == "stopped":
        lifecycle.stop_infusion(infusion, actor, reason=reason, early=True)
    # "slowed" is recorded here; the new pump rate is charted as a rate change (it needs mg/h).
    return event


def _linked_reading_answered_by(event: AdverseEvent) -> Reading | None:
    if event.reading_id is None:
        return None
    reading = db.session.get(Reading, event.reading_id)
    if reading is None or reading.critical_action != "adverse_event":
        return None
    return reading


def void_adverse_event(event: AdverseEvent, actor: Staff, reason: str) -> None:
    """Mark an adverse event entered in error; it stays visible, struck through (SPEC §3).

    A critical reading it answered asks again for an action, unless another event answers it.
    """
    infusion = event.infusion
    guards.begin_row_change(infusion, actor.id)
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason for voiding the adverse event.", field="reason")
    if event.is_voided:
        raise RuleError("This adverse event was already voided.")
    readings.ensure_entry_rights(event, actor, "adverse event")
    event.voided_at = utcnow()
    event.voided_by_id = actor.id
    event.void_reason = reason[:500]
    details: dict = {"reason": event.void_reason}
    reading = _linked_reading_answered_by(event)
    if reading is not None:
        others = db.session.scalar(
            sa.select(sa.func.count()).where(
                AdverseEvent.reading_id == reading.id,
                AdverseEvent.voided_at.is_(None),
                AdverseEvent.id != event.id,
            )
        )
        if not others:
            reading.critical_action = ""
            reading.critical_action_note = ""
            reading.critical_action_by_id = None
            reading.critical_action_at = None
            details["critical_reading_reopened"] = reading.id
    audit.record(
        "adverse_event.voided",
        entity=event,
        patient_id=infusion.patient_id,
        details=details,
        actor=actor,
    )


def correct_adverse_event(
    event: AdverseEvent, data: dict, actor: Staff, now: datetime | None = None
) -> AdverseEvent:
    """Replace an adverse event: the old one is voided ("corrected"), the new one points at it.

    A correction fixes the record only; it does not pause or stop the infusion again.
    """
    infusion = event.infusion
    guards.begin_row_change(infusion, actor.id)
    if event.is_voided:
        raise RuleError("This adverse event was voided; record a new one instead.")
    readings.ensure_entry_rights(event, actor, "adverse event")
    now = now or utcnow()
    data = {**data, "reading_id": data.get("reading_id") or event.reading_id}
    new = _new_event(infusion, data, actor, now, check_action=False)
    new.corrects_id = event.id
    event.voided_at = now
    event.voided_by_id = actor.id
    event.void_reason = "corrected"
    reading = _linked_reading_answered_by(event)
    if reading is not None and new.reading_id == reading.id:
        reading.critical_action_note = f"Adverse event #{new.id}"
    audit.record(
        "adverse_event.corrected",
        entity=new,
        patient_id=infusion.patient_id,
        details={
            "corrects": event.id,
            "before": audit.snapshot(event, ENTRY_FIELDS),
            "after": audit.snapshot(new, ENTRY_FIELDS),
        },
        actor=actor,
    )
    return new
