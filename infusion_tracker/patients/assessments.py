"""Outcome scores (PHQ-9, GAD-7, MADRS, pain NRS, CADSS, C-SSRS screen): record, void, correct.

Scores are never edited in place (SPEC §3): a wrong one is voided with a reason and stays
visible; a correction is a new row pointing at the one it replaces.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .. import audit, clinical
from ..errors import RuleError
from ..extensions import db
from ..infusions.guards import begin_row_change
from ..models import CSSRS_RESULTS, INSTRUMENTS, Assessment, InfusionSession, Patient, Staff
from ..timeutil import utcnow

# PHQ-9 (Kroenke, Spitzer & Williams 2001; Pfizer, free to use): the stem, nine items and
# the four answers, worded as on the published form.
PHQ9_STEM = (
    "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
)
PHQ9_ITEMS = (
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself — or that you are a failure or have let yourself or your "
    "family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite — "
    "being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead or of hurting yourself in some way",
)
PHQ9_ANSWERS = {
    0: "Not at all",
    1: "Several days",
    2: "More than half the days",
    3: "Nearly every day",
}
# Item 9 asks about thoughts of death or self-harm: any answer above 0 needs the physician.
PHQ9_SELF_HARM_ITEM = 8

# Same clock-skew allowance as readings (SPEC §4).
FUTURE_SKEW = timedelta(minutes=5)


def get_assessment_or_404(assessment_id: int) -> Assessment:
    return db.get_or_404(Assessment, assessment_id)


def score_label(instrument: str, score: int) -> str:
    """The score as staff read it: C-SSRS screen results in words, others as the number."""
    if instrument == "cssrs":
        return f"{score} — {CSSRS_RESULTS.get(score, '?')}"
    return str(score)


def assessment_problems(
    instrument: str | None,
    score: int | None,
    items: list[int | None] | None,
    taken_at: datetime | None,
    now: datetime,
) -> dict[str, str]:
    """Everything wrong with a score as entered, by field ("items" for the PHQ-9 answers)."""
    problems: dict[str, str] = {}
    if instrument not in INSTRUMENTS:
        problems["instrument"] = "Choose the instrument."
        return problems
    label = INSTRUMENTS[instrument][0]
    answered = [item for item in (items or []) if item is not None]
    if answered and instrument != "phq9":
        problems["items"] = f"The nine item answers are for PHQ-9 only, not {label}."
    elif answered and len(answered) != len(PHQ9_ITEMS):
        problems["items"] = (
            f"Answer all nine PHQ-9 items ({len(answered)} answered), "
            "or none and enter the total score."
        )
    elif answered:
        try:
            total = clinical.phq9_total(answered)
        except ValueError as error:
            problems["items"] = str(error)
        else:
            if score is not None and score != total:
                problems["score"] = (
                    f"The nine items add up to {total}, not {score}. "
                    "Correct the items or leave the score blank."
                )
    elif score is None:
        problems["score"] = f"Enter the {label} score" + (
            " or answer the nine items." if instrument == "phq9" else "."
        )
    else:
        problem = clinical.score_problem(instrument, score)
        if problem:
            problems["score"] = problem
    if taken_at is not None and taken_at > now + FUTURE_SKEW:
        problems["taken_at"] = "Taken at cannot be in the future."
    return problems


def can_void(assessment: Assessment, actor: Staff) -> bool:
    """Clinicians void their own entries; the physician may void anyone's (SPEC §1)."""
    return actor.is_physician or assessment.recorded_by_id == actor.id


def _check_voidable(assessment: Assessment, actor: Staff) -> None:
    if assessment.is_voided:
        raise RuleError("This score was already voided.")
    if not can_void(assessment, actor):
        raise RuleError("Only the person who recorded this score, or a physician, may void it.")
    if assessment.infusion is not None:
        begin_row_change(assessment.infusion, actor.id)


def record_assessment(
    patient: Patient,
    *,
    instrument: str,
    score: int | None,
    actor: Staff,
    items: list[int | None] | None = None,
    taken_at: datetime | None = None,
    infusion: InfusionSession | None = None,
    corrects: Assessment | None = None,
    correction_reason: str = "",
) -> Assessment:
    """Record an outcome score; PHQ-9 item 9 > 0 flags the physician (suicide-risk item)."""
    now = utcnow()
    taken_at = taken_at or now
    problems = assessment_problems(instrument, score, items, taken_at, now)
    if problems:
        raise RuleError(" ".join(problems.values()))
    answered = [item for item in (items or []) if item is not None] or None
    if answered:
        score = clinical.phq9_total(answered)
    if infusion is not None:
        if infusion.patient_id != patient.id:
            raise RuleError("That session belongs to another patient.")
        begin_row_change(infusion, actor.id)
    if corrects is not None:
        if corrects.patient_id != patient.id:
            raise RuleError("The score being corrected belongs to another patient.")
        if not correction_reason.strip():
            raise RuleError("Give the reason for the correction.")
        _check_voidable(corrects, actor)
    assessment = Assessment(
        patient_id=patient.id,
        infusion_id=infusion.id if infusion is not None else None,
        instrument=instrument,
        score=score,
        items=answered,
        flag_physician=bool(answered and answered[PHQ9_SELF_HARM_ITEM] > 0),
        taken_at=taken_at,
        corrects_id=corrects.id if corrects is not None else None,
        recorded_by_id=actor.id,
        created_at=now,
    )
    db.session.add(assessment)
    audit.record(
        "assessment.recorded",
        entity=assessment,
        patient_id=patient.id,
        actor=actor,
        details={
            "after": audit.snapshot(
                assessment,
                (
                    "instrument",
                    "score",
                    "items",
                    "flag_physician",
                    "taken_at",
                    "infusion_id",
                    "corrects_id",
                ),
            )
        },
    )
    if corrects is not None:
        _void(corrects, f"Corrected by entry #{assessment.id}: {correction_reason.strip()}", actor)
    return assessment


def _void(assessment: Assessment, reason: str, actor: Staff) -> None:
    assessment.voided_at = utcnow()
    assessment.voided_by_id = actor.id
    assessment.void_reason = reason
    audit.record(
        "assessment.voided",
        entity=assessment,
        patient_id=assessment.patient_id,
        actor=actor,
        details={"reason": reason, "instrument": assessment.instrument, "score": assessment.score},
    )


def void_assessment(assessment: Assessment, reason: str, actor: Staff) -> None:
    """Void a score entered in error: it stays visible, struck through, with who/when/why."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason for voiding this score.")
    _check_voidable(assessment, actor)
    _void(assessment, reason, actor)
