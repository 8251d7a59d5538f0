"""Readings: charted, voided, corrected, and critical ones answered (SPEC §2–§4).

Readings are appends: no form version is checked, so two clinicians charting the same session
at once both land (SPEC §3); each still makes a new version of the session, under its lock or
on the version it was checked against (chart_reading), so a signature cannot go through over a
reading it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import abort
from sqlalchemy.orm import aliased, contains_eager, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from .. import audit, clinical
from ..errors import RuleError
from ..extensions import db
from ..models import PHASES, InfusionSession, Reading, Staff
from ..timeutil import utcnow
from . import guards
from .queries import latest_reading, reading_values

# From check-in (baseline) until the patient leaves; planned, cancelled and discharged
# sessions take no new readings.
CHARTABLE_STATUSES = ("checked_in", "infusing", "paused", "recovery", "stopped_early")
ENTRY_FIELDS = ("taken_at", "phase", *clinical.VITAL_FIELDS, "rhythm_other", "note")
TEXT_LIMITS = {"rhythm_other": 120, "note": 1000}
# What "unchanged since the last reading" may carry: observations, not measured numbers.
CARRY_FIELDS = ("o2_flow_lpm", "rhythm", "avpu", "moaas")


class ReadingRefused(RuleError):
    """Tier-1 problems with a reading, {Reading attribute or "__all__": message}."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__(" ".join(problems.values()))


class AlreadyRecorded(Exception):
    """The same form was posted again: what it records is already stored (`row`)."""

    def __init__(self, row):
        super().__init__(row.id)
        self.row = row


def ensure_first_post(model, infusion: InfusionSession, key: str | None) -> None:
    """Raise AlreadyRecorded if a row of `model` was stored from the form with this key.

    Called before any write (a repeat changes nothing, not even the session's version) and
    under the session's lock (guards.lock), so of two posts of one form the second finds the
    first."""
    if not key:
        return
    _refuse_repeat(infusion, db.session.scalar(sa.select(model).where(model.submission_key == key)))


def _refuse_repeat(infusion: InfusionSession, earlier) -> None:
    """`earlier`, the row stored from the same form, if any, makes this post a repeat."""
    if earlier is not None and earlier.infusion_id == infusion.id:
        raise AlreadyRecorded(earlier)
    if earlier is not None:
        raise RuleError("This form belongs to another session; reload the page.")


def _latest_baseline(column, infusion_id):
    """The newest baseline-phase reading of a session not voided (`column` of it). The phase
    a literal, as in models.BASELINE: PostgreSQL's plan kept for any values then matches the
    partial index (SQLite's matches a bound value too)."""
    return (
        sa.select(column)
        .where(
            Reading.infusion_id == infusion_id,
            Reading.phase == sa.literal_column("'baseline'"),
            Reading.voided_at.is_(None),
        )
        .order_by(Reading.taken_at.desc(), Reading.id.desc())
        .limit(1)
    )


LATEST_BASELINE = _latest_baseline(Reading, sa.bindparam("infusion_id"))


def latest_baseline(infusion: InfusionSession) -> Reading | None:
    """The newest baseline-phase reading not voided: the reference for deltas and the gate."""
    return db.session.scalar(LATEST_BASELINE, {"infusion_id": infusion.id})


@dataclass(frozen=True)
class ChartingRead:
    """What a reading posted to a session is checked against, read unlocked in one statement
    (read_for_charting): the session with its protocol, its latest baseline, and the reading
    stored from the same form (its key), if any."""

    infusion: InfusionSession
    key: str | None
    baseline: Reading | None
    earlier: Reading | None


_BASELINE = aliased(Reading, name="baseline")
_EARLIER = aliased(Reading, name="earlier")
_LATEST_BASELINE_ID = (
    _latest_baseline(Reading.id, InfusionSession.id).correlate(InfusionSession).scalar_subquery()
)
_FOR_CHARTING = (
    sa.select(InfusionSession, _BASELINE, _EARLIER)
    .join(InfusionSession.protocol)
    .outerjoin(_BASELINE, _BASELINE.id == _LATEST_BASELINE_ID)
    .outerjoin(_EARLIER, _EARLIER.submission_key == sa.bindparam("key"))
    .where(InfusionSession.id == sa.bindparam("infusion_id"))
    .options(contains_eager(InfusionSession.protocol))
)


def read_for_charting(infusion_id: int, key: str | None) -> ChartingRead:
    """The session (404 if there is none) and what its reading from the form with `key` is
    checked against, read but not locked: one statement where guards.read, the posted-before
    check and latest_baseline were three (a recording's Python calls and round trips)."""
    row = db.session.execute(_FOR_CHARTING, {"infusion_id": infusion_id, "key": key}).first()
    if row is None:
        abort(404)
    infusion, baseline, earlier = row
    return ChartingRead(infusion, key, baseline, earlier)


def chart_refusal(infusion: InfusionSession) -> str | None:
    """Why no new reading can be charted on this session now (None when it can)."""
    if infusion.is_signed:
        return "This session was signed and is locked."
    if infusion.status == "planned":
        return "Check the patient in before charting readings."
    if infusion.status not in CHARTABLE_STATUSES:
        return f"Readings cannot be charted on a {infusion.status_label.lower()} session."
    return None


def ensure_chartable(infusion: InfusionSession) -> None:
    """Refuse (RuleError) when no new reading can be charted on the session now."""
    guards.ensure_editable(infusion)
    refusal = chart_refusal(infusion)
    if refusal:
        raise RuleError(refusal)


def ensure_entry_rights(row, actor: Staff, what: str) -> None:
    """Clinicians void and correct their own entries; the supervising physician role any."""
    if row.recorded_by_id != actor.id and not actor.is_physician:
        raise RuleError(
            f"Only the clinician who recorded this {what}, or a physician, can change it."
        )


def carry_values(reading: Reading | None) -> dict:
    """The values of `reading` that "unchanged since the last reading" would chart."""
    if reading is None:
        return {}
    values = {
        name: getattr(reading, name)
        for name in CARRY_FIELDS
        if getattr(reading, name) not in (None, "")
    }
    if values.get("rhythm") == "other":
        values["rhythm_other"] = reading.rhythm_other
    return values


def carry_over(infusion: InfusionSession, data: dict) -> tuple[dict, dict]:
    """The reading's values with the boxes left blank filled from the last reading, when the
    clinician ticked "unchanged" for the reading the form showed; (data, what was carried).

    A value is charted only because someone confirmed it: unticked, a blank box stays blank;
    a box filled in wins over the last value; and if another reading was charted (or the last
    one voided) since the form was drawn, the tick confirmed other values and is refused."""
    if not data.get("same_as_last"):
        return data, {}
    last = latest_reading(infusion)
    if last is None or last.id != data.get("carry_from"):
        raise ReadingRefused(
            {
                "same_as_last": "The last reading changed since this form was drawn: check "
                "O2, rhythm, AVPU and MOAA/S against it and confirm again."
            }
        )
    carried = {
        name: value
        for name, value in carry_values(last).items()
        if data.get(name) in (None, "") and (name != "rhythm_other" or not data.get("rhythm"))
    }
    return {**data, **carried}, carried


def _problems(infusion: InfusionSession, data: dict, now: datetime) -> dict[str, str]:
    problems = clinical.reading_problems(data)
    taken_at = data.get("taken_at")
    if taken_at is None:
        problems["taken_at"] = "Enter the time the reading was taken."
    else:
        problem = clinical.taken_at_problem(taken_at, now, infusion.checked_in_at)
        if problem:
            problems["taken_at"] = problem
    if data.get("phase") not in PHASES:
        problems["phase"] = "Choose the phase of the session."
    if data.get("rhythm") == "other" and not (data.get("rhythm_other") or "").strip():
        problems["rhythm_other"] = "Describe the other rhythm."
    for name, limit in TEXT_LIMITS.items():
        if len(data.get(name) or "") > limit:
            problems[name] = (
                f"{name.replace('_', ' ').capitalize()} must be at most {limit} characters."
            )
    return problems


def _typed(values: dict) -> dict:
    """Validated values as the columns hold them (whole numbers, floats, "" for no code)."""
    typed = {}
    for name, value in values.items():
        if name in ("rhythm", "avpu"):
            typed[name] = value or ""
        elif value is None or (isinstance(value, str) and not value.strip()):
            typed[name] = None
        elif name in clinical.INTEGER_FIELDS:
            typed[name] = int(float(value))
        else:
            typed[name] = float(value)
    return typed


def _new_reading(
    infusion: InfusionSession,
    data: dict,
    actor: Staff,
    now: datetime,
    reference: Reading | None,
    submission_key: str | None = None,
) -> Reading:
    """Validate (tier 1) and assess (tiers 2–3, NEWS2) a reading against `reference`, the
    session's latest baseline: not yet added, no audit row."""
    problems = _problems(infusion, data, now)
    if problems:
        raise ReadingRefused(problems)
    values = _typed({name: data.get(name) for name in clinical.VITAL_FIELDS})
    # A baseline reading is its own reference for deltas; its rhythm still compares with an
    # earlier baseline, so known AF is not "new onset" at every repeat.
    assessment = clinical.assess_reading(
        values,
        clinical.Limits.from_dict(infusion.protocol.limits),
        baseline=None if data["phase"] == "baseline" else reading_values(reference),
        baseline_rhythm=reference.rhythm if reference else None,
    )
    reading = Reading(
        infusion_id=infusion.id,
        taken_at=data["taken_at"],
        phase=data["phase"],
        **values,
        rhythm_other=(data.get("rhythm_other") or "").strip()
        if values["rhythm"] == "other"
        else "",
        note=(data.get("note") or "").strip(),
        severity=assessment.severity,
        flags=[flag.to_dict() for flag in assessment.flags],
        news2=clinical.news2(values),
        recorded_by_id=actor.id,
        created_at=now,
        submission_key=submission_key,
    )
    return reading


def _summary(reading: Reading) -> dict:
    return {
        **audit.snapshot(reading, ENTRY_FIELDS),
        "severity": reading.severity,
        "flags": reading.flags,
        "news2": reading.news2,
    }


def record_reading(
    infusion: InfusionSession, data: dict, actor: Staff, now: datetime | None = None
) -> Reading:
    """Chart one reading (SPEC §4): tier 1 refused (ReadingRefused), tiers 2–3 flagged and
    stored with NEWS2, deltas against the latest baseline. The session is locked first."""
    infusion = guards.lock(infusion.id)
    checked = _checked(infusion, data, actor, now or utcnow())
    _new_version_locked(infusion, actor)
    return _added(infusion, *checked, actor)


def chart_reading(read: ChartingRead, data: dict, actor: Staff) -> Reading:
    """Chart the reading a clinician posted from the session page, as record_reading does,
    but holding the write lock (SQLite's; the session's row on PostgreSQL) for its writes.

    What the reading is checked against (`read`: the session as this request read it, its
    latest baseline, the reading from the same form; and its latest reading) is read and
    checked without the lock.
    Then the session's new version is written, naming the version read
    (guards.new_version). Every change to a session or its rows makes a new version
    (guards.begin_row_change; tests/conftest.py checks it), so if that lands, nothing the
    reading was checked against has changed. If it does not, another write came first:
    holding the lock now, all is read and checked again. SQLite's lock held 2.6 -> 1.1 ms a
    reading, one client (bench/RESULTS.md, Stop 29)."""
    infusion = read.infusion
    checked = _checked(infusion, data, actor, utcnow(), read)
    if not guards.new_version(infusion, actor.id):
        infusion = guards.lock(infusion.id)
        checked = _checked(infusion, data, actor, utcnow())
        _new_version_locked(infusion, actor)
    return _added(infusion, *checked, actor)


def _new_version_locked(infusion: InfusionSession, actor: Staff) -> None:
    if not guards.new_version(infusion, actor.id):  # no other write can come first
        raise StaleDataError(f"Session {infusion.id} changed under its lock.")


def _checked(
    infusion: InfusionSession,
    data: dict,
    actor: Staff,
    now: datetime,
    read: ChartingRead | None = None,
) -> tuple[Reading, dict | None]:
    """The reading `data` makes on this session, checked and assessed but not yet added
    (refused: ReadingRefused, RuleError; posted before: AlreadyRecorded), and what it
    carried over from the last reading, if anything. Against `read` if it was read for this
    form's key, else against what is read now."""
    key = data.get("submission_key")
    if read is not None and read.key == key:
        if key:
            _refuse_repeat(infusion, read.earlier)
        baseline = read.baseline
    else:
        ensure_first_post(Reading, infusion, key)
        baseline = latest_baseline(infusion)
    ensure_chartable(infusion)
    # No time given: the reading is stamped the moment it is saved.
    data = {**data, "taken_at": data.get("taken_at") or now}
    if data.get("phase") == "baseline" and infusion.started_at and not data.get(
        "confirm_baseline"
    ):
        raise ReadingRefused(
            {
                "confirm_baseline": "The infusion has started: confirm that this is a new "
                "baseline (it moves every change-from-baseline), or choose another phase."
            }
        )
    data, carried = carry_over(infusion, data)
    reading = _new_reading(infusion, data, actor, now, baseline, key or None)
    carried_from = (
        {"reading": data["carry_from"], "fields": sorted(carried)} if carried else None
    )
    return reading, carried_from


_INSERT_READING = sa.insert(Reading.__table__)


def _added(
    infusion: InfusionSession, reading: Reading, carried_from: dict | None, actor: Staff
) -> Reading:
    """The reading inserted, by one statement rather than the ORM's unit of work (shorter
    under the lock), then in the session as if loaded; and its audit row."""
    values = {
        column.key: reading.__dict__[column.key]
        for column in Reading.__table__.columns
        if column.key in reading.__dict__
    }
    reading.id = db.session.execute(_INSERT_READING, values).inserted_primary_key[0]
    make_transient_to_detached(reading)
    db.session.add(reading)
    details = _summary(reading)
    if carried_from:
        details["carried_from"] = carried_from
    audit.record(
        "reading.recorded",
        entity=reading,
        patient_id=infusion.patient_id,
        details=details,
        actor=actor,
    )
    return reading


def _void(reading: Reading, actor: Staff, reason: str, now: datetime) -> None:
    reading.voided_at = now
    reading.voided_by_id = actor.id
    reading.void_reason = reason


def void_reading(reading: Reading, actor: Staff, reason: str) -> None:
    """Mark a reading entered in error; it stays visible, struck through (SPEC §3)."""
    infusion = reading.infusion
    guards.begin_row_change(infusion, actor.id)
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason for voiding the reading.")
    if reading.is_voided:
        raise RuleError("This reading was already voided.")
    ensure_entry_rights(reading, actor, "reading")
    _void(reading, actor, reason[:500], utcnow())
    audit.record(
        "reading.voided",
        entity=reading,
        patient_id=infusion.patient_id,
        details={"reason": reading.void_reason},
        actor=actor,
    )


def correct_reading(
    reading: Reading, data: dict, actor: Staff, now: datetime | None = None
) -> Reading:
    """Replace a reading: the old one is voided ("corrected"), the new one points at it."""
    infusion = reading.infusion
    guards.begin_row_change(infusion, actor.id)
    if infusion.status in ("planned", "cancelled"):
        raise RuleError(f"Readings cannot be charted on a {infusion.status_label.lower()} session.")
    if reading.is_voided:
        raise RuleError("This reading was voided; chart a new reading instead of correcting it.")
    ensure_entry_rights(reading, actor, "reading")
    now = now or utcnow()
    _void(reading, actor, "corrected", now)
    db.session.flush()  # the old one is out of "latest baseline" before the new one is assessed
    new = _new_reading(infusion, data, actor, now, latest_baseline(infusion))
    new.corrects_id = reading.id
    db.session.add(new)
    if new.severity == "critical" and reading.critical_action:
        # The clinician already answered this critical moment; a typo fix does not undo that.
        new.critical_action = reading.critical_action
        new.critical_action_note = reading.critical_action_note
        new.critical_action_by_id = reading.critical_action_by_id
        new.critical_action_at = reading.critical_action_at
    audit.record(
        "reading.corrected",
        entity=new,
        patient_id=infusion.patient_id,
        details={"corrects": reading.id, "before": _summary(reading), "after": _summary(new)},
        actor=actor,
    )
    return new


def _ensure_answerable(reading: Reading) -> None:
    if reading.severity != "critical":
        raise RuleError("Only a critical reading asks for an action.")
    if reading.is_voided:
        raise RuleError("This reading was voided; it needs no action.")
    if reading.critical_action:
        who = reading.critical_action_by.display_name if reading.critical_action_by else "someone"
        raise RuleError(f"An action was already recorded for this reading by {who}.")


def review_critical(reading: Reading, actor: Staff, note: str) -> None:
    """Answer a critical reading with "reviewed, no action" and why (SPEC §4 tier 3)."""
    infusion = reading.infusion
    guards.begin_row_change(infusion, actor.id)
    note = (note or "").strip()
    if not note:
        raise RuleError("Say what you reviewed and why no action is needed.")
    _ensure_answerable(reading)
    reading.critical_action = "reviewed"
    reading.critical_action_note = note[:1000]
    reading.critical_action_by_id = actor.id
    reading.critical_action_at = utcnow()
    audit.record(
        "reading.critical_reviewed",
        entity=reading,
        patient_id=infusion.patient_id,
        details={
            "action": "reviewed",
            "note": reading.critical_action_note,
            "flags": reading.flags,
        },
        actor=actor,
    )


def answer_with_adverse_event(reading: Reading, actor: Staff, adverse_event_id: int) -> None:
    """A critical reading answered by an adverse event (called by record_adverse_event)."""
    _ensure_answerable(reading)
    reading.critical_action = "adverse_event"
    reading.critical_action_note = f"Adverse event #{adverse_event_id}"
    reading.critical_action_by_id = actor.id
    reading.critical_action_at = utcnow()
    audit.record(
        "reading.critical_reviewed",
        entity=reading,
        patient_id=reading.infusion.patient_id,
        details={
            "action": "adverse_event",
            "adverse_event_id": adverse_event_id,
            "flags": reading.flags,
        },
        actor=actor,
    )
