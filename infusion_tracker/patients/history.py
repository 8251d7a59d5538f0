"""The patient page's history: the series of sessions with their worst flag, adverse events,
PHQ-9 and blood-pressure/heart-rate surge, and the outcome trend (SPEC §5).

Every figure comes from a fixed number of set-based queries, so the page costs the same
with two sessions or two hundred (no query per session or per reading).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app
from markupsafe import Markup
from sqlalchemy.orm import aliased

from .. import charts, clinical
from ..extensions import db
from ..infusions.queries import NEWEST_FIRST
from ..memo import packed_cache
from ..models import (
    AdverseEvent,
    Assessment,
    InfusionSession,
    Patient,
    Protocol,
    Reading,
    Staff,
    display_name,
    protocol_label,
    status_label,
)
from ..timeutil import clinic_zone, formatter, plausible
from ..vocab import FLAG_RANK, INSTRUMENTS

SEVERITY_RANK = FLAG_RANK
RANK_SEVERITY = {rank: name for name, rank in SEVERITY_RANK.items()}
SURGE_PHASES = ("infusion", "recovery")
# "PHQ-9 before" a session: one linked to it, or an unlinked one from the day before it began.
PHQ9_BEFORE_WINDOW = timedelta(days=1)
CHART_SERIES = {code: INSTRUMENTS[code][0] for code in ("phq9", "gad7", "pain_nrs")}


class SessionLine(NamedTuple):
    """A session as the series table and the PHQ-9 pairing read it: values, not an ORM
    object with its protocol and staff (a patient page's first view read thirty of those in
    1.4 ms at `chain`; bench/RESULTS.md, Stop 28)."""

    id: int
    series_number: int
    scheduled_for: datetime
    started_at: datetime | None
    protocol_label: str
    total_mg: float | None
    clinician: str  # display name
    status: str
    signed_at: datetime | None
    signed_by: str | None  # display name

    @property
    def status_label(self) -> str:
        return status_label(self.status)

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None


class ScoreLine(NamedTuple):
    """An outcome score as the patient page lists it, and the PHQ-9 pairing and the outcome
    chart read it (values, as SessionLine)."""

    id: int
    infusion_id: int | None
    corrects_id: int | None
    taken_at: datetime
    instrument: str
    score: int
    items: list[int] | None
    flag_physician: bool
    recorded_by_id: int
    recorded_by: str  # display name
    voided_at: datetime | None
    voided_by: str | None  # display name
    void_reason: str

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None

    @property
    def instrument_label(self) -> str:
        return INSTRUMENTS[self.instrument][0]


@dataclass
class SeriesRow:
    infusion: SessionLine
    worst: str | None = None  # max severity of non-voided readings; None without readings
    adverse_events: list[str] = field(default_factory=list)
    phq9_before: ScoreLine | None = None
    sbp_rise: int | None = None
    hr_rise: int | None = None


@dataclass
class PatientHistory:
    rows: list[SeriesRow]
    assessments: list[ScoreLine]  # every score, voided ones too, oldest first
    baseline_phq9: ScoreLine | None
    status: str  # PHQ-9 course in words, e.g. "response since infusion 4 (…)"
    status_kind: str  # remission / response / none / unknown
    outcome_chart: Markup | None
    peak_rise_chart: Markup | None
    flagged_phq9: ScoreLine | None  # the latest PHQ-9 when its item 9 is above 0

    # Cached: the template asks once per assessment row.
    @cached_property
    def session_numbers(self) -> dict[int, int]:
        return {row.infusion.id: row.infusion.series_number for row in self.rows}

    @cached_property
    def signed_session_ids(self) -> set[int]:
        """Sessions whose scores are locked by the physician's signature."""
        return {row.infusion.id for row in self.rows if row.infusion.is_signed}


# The page's statements are built once, the patient a parameter: building them (their
# options, CASE and window expressions, and the cache keys SQLAlchemy derives from them) cost
# more than running them (bench/RESULTS.md, Stop 17).
PATIENT = sa.bindparam("patient_id")
_CLINICIAN, _SIGNER, _RECORDER, _VOIDER = (aliased(Staff) for _ in range(4))
# What the series table and the PHQ-9 pairing read of each session, its protocol's name and
# version, and who gave and signed it: not the checklist, discharge and signature texts, nor
# the protocol's limits (some sixty columns and a JSON document per row).
_SESSIONS = (
    sa.select(
        InfusionSession.id,
        InfusionSession.series_number,
        InfusionSession.scheduled_for,
        InfusionSession.started_at,
        Protocol.name,
        Protocol.version,
        InfusionSession.total_mg,
        _CLINICIAN.full_name,
        _CLINICIAN.credentials,
        InfusionSession.status,
        InfusionSession.signed_at,
        _SIGNER.full_name,
        _SIGNER.credentials,
    )
    .join(Protocol, Protocol.id == InfusionSession.protocol_id)
    .join(_CLINICIAN, _CLINICIAN.id == InfusionSession.clinician_id)
    .outerjoin(_SIGNER, _SIGNER.id == InfusionSession.signed_by_id)
    .where(InfusionSession.patient_id == PATIENT)
    .order_by(InfusionSession.series_number)
)
# Non-voided readings of the patient's sessions (a WHERE clause, not a query).
_PATIENT_READINGS = sa.and_(
    Reading.voided_at.is_(None),
    Reading.infusion_id.in_(
        sa.select(InfusionSession.id).where(InfusionSession.patient_id == PATIENT)
    ),
)
_RANK = sa.case(
    *((Reading.severity == name, value) for name, value in SEVERITY_RANK.items()), else_=0
)
_SURGE = Reading.phase.in_(SURGE_PHASES)
# Per session in one GROUP BY: worst severity, peak SBP and peak HR during the infusion and
# recovery phases.
_READING_STATS = (
    sa.select(
        Reading.infusion_id,
        sa.func.max(_RANK),
        sa.func.max(sa.case((_SURGE, Reading.systolic))),
        sa.func.max(sa.case((_SURGE, Reading.heart_rate))),
    )
    .where(_PATIENT_READINGS)
    .group_by(Reading.infusion_id)
)
_RANKED_BASELINES = (
    sa.select(
        Reading.infusion_id,
        Reading.systolic,
        Reading.heart_rate,
        sa.func.row_number()
        .over(partition_by=Reading.infusion_id, order_by=NEWEST_FIRST)
        .label("position"),
    )
    .where(_PATIENT_READINGS, Reading.phase == "baseline")
    .subquery()
)
# Per session: SBP and HR of the last non-voided baseline-phase reading.
_BASELINES = sa.select(
    _RANKED_BASELINES.c.infusion_id, _RANKED_BASELINES.c.systolic, _RANKED_BASELINES.c.heart_rate
).where(_RANKED_BASELINES.c.position == 1)
_ADVERSE_EVENTS = (
    sa.select(AdverseEvent)
    .join(InfusionSession)
    .where(InfusionSession.patient_id == PATIENT, AdverseEvent.voided_at.is_(None))
    .order_by(AdverseEvent.onset_at, AdverseEvent.id)
)
_ASSESSMENTS = (
    sa.select(
        Assessment.id,
        Assessment.infusion_id,
        Assessment.corrects_id,
        Assessment.taken_at,
        Assessment.instrument,
        Assessment.score,
        Assessment.items,
        Assessment.flag_physician,
        Assessment.recorded_by_id,
        _RECORDER.full_name,
        _RECORDER.credentials,
        Assessment.voided_at,
        _VOIDER.full_name,
        _VOIDER.credentials,
        Assessment.void_reason,
    )
    .join(_RECORDER, _RECORDER.id == Assessment.recorded_by_id)
    .outerjoin(_VOIDER, _VOIDER.id == Assessment.voided_by_id)
    .where(Assessment.patient_id == PATIENT)
    .order_by(Assessment.taken_at, Assessment.id)
)


def _name(full_name: str | None, credentials: str | None) -> str | None:
    return None if full_name is None else display_name(full_name, credentials or "")


def _sessions(patient_id: int) -> list[SessionLine]:
    # The columns of _SESSIONS, in order.
    return [
        SessionLine(
            *row[:4], protocol_label(*row[4:6]), row[6], _name(*row[7:9]), row[9], row[10],
            _name(*row[11:13]),
        )
        for row in db.session.execute(_SESSIONS, {"patient_id": patient_id})
    ]


def reading_stats(patient_id: int) -> dict[int, tuple[str, int | None, int | None]]:
    """Per session: worst severity, peak SBP and peak HR during the infusion and recovery."""
    rows = db.session.execute(_READING_STATS, {"patient_id": patient_id})
    return {infusion_id: (RANK_SEVERITY[worst], sbp, hr) for infusion_id, worst, sbp, hr in rows}


def baselines(patient_id: int) -> dict[int, tuple[int | None, int | None]]:
    """Per session: SBP and HR of the last non-voided baseline-phase reading (one query)."""
    rows = db.session.execute(_BASELINES, {"patient_id": patient_id})
    return {infusion_id: (sbp, hr) for infusion_id, sbp, hr in rows}


def adverse_event_labels(patient_id: int) -> dict[int, list[str]]:
    """Per session: the non-voided adverse events' types, in onset order (one query)."""
    labels: dict[int, list[str]] = {}
    for event in db.session.scalars(_ADVERSE_EVENTS, {"patient_id": patient_id}):
        labels.setdefault(event.infusion_id, []).append(event.type_label)
    return labels


def _assessments(patient_id: int) -> list[ScoreLine]:
    # The columns of _ASSESSMENTS, in order.
    return [
        ScoreLine(*row[:9], _name(*row[9:11]), row[11], _name(*row[12:14]), row[14])
        for row in db.session.execute(_ASSESSMENTS, {"patient_id": patient_id})
    ]


def _rise(peak: int | None, base: int | None) -> int | None:
    return peak - base if peak is not None and base is not None else None


def session_start(infusion: SessionLine) -> datetime:
    return infusion.started_at or infusion.scheduled_for


class Phq9Pairing:
    """Each session's "PHQ-9 before": the latest non-voided PHQ-9 taken on the session, or
    unlinked within the day before it began, whichever comes later among the patient's PHQ-9s
    (non-voided, oldest first). Built once, then a lookup and a binary search per session
    rather than a pass over every score for every session."""

    def __init__(self, phq9s: list[ScoreLine]):
        self.linked: dict[int, tuple[int, ScoreLine]] = {}
        self.unlinked: list[tuple[int, ScoreLine]] = []
        for position, score in enumerate(phq9s):
            if score.infusion_id is None:
                self.unlinked.append((position, score))
            else:
                self.linked[score.infusion_id] = (position, score)
        self.unlinked_times = [score.taken_at for _, score in self.unlinked]

    def before(self, infusion: SessionLine) -> ScoreLine | None:
        start = session_start(infusion)
        candidates = [self.linked[infusion.id]] if infusion.id in self.linked else []
        taken_by_start = bisect_right(self.unlinked_times, start)
        if taken_by_start:
            position, score = self.unlinked[taken_by_start - 1]
            if score.taken_at >= start - PHQ9_BEFORE_WINDOW:
                candidates.append((position, score))
        return max(candidates, key=lambda candidate: candidate[0])[1] if candidates else None


def patient_history(patient: Patient) -> PatientHistory:
    """Everything the patient page shows about the series and the outcomes."""
    sessions = _sessions(patient.id)
    stats = reading_stats(patient.id)
    base = baselines(patient.id)
    events = adverse_event_labels(patient.id)
    assessments = _assessments(patient.id)
    numbers = {infusion.id: infusion.series_number for infusion in sessions}
    valid = [a for a in assessments if not a.is_voided]
    phq9s = [a for a in valid if a.instrument == "phq9"]

    pairing = Phq9Pairing(phq9s)
    rows = []
    for infusion in sessions:
        worst, peak_sbp, peak_hr = stats.get(infusion.id, (None, None, None))
        base_sbp, base_hr = base.get(infusion.id, (None, None))
        rows.append(
            SeriesRow(
                infusion=infusion,
                worst=worst,
                adverse_events=events.get(infusion.id, []),
                phq9_before=pairing.before(infusion),
                sbp_rise=_rise(peak_sbp, base_sbp),
                hr_rise=_rise(peak_hr, base_hr),
            )
        )

    baseline = phq9s[0] if phq9s else None
    baseline_score = baseline.score if baseline else None
    since_baseline = [(numbers.get(a.infusion_id), a.score) for a in phq9s[1:]]

    # A stored year-1 or 9999 typo would stretch the time axis past the calendar.
    series = {
        label: [
            (a.taken_at, a.score) for a in valid if a.instrument == key and plausible(a.taken_at)
        ]
        for key, label in CHART_SERIES.items()
    }
    outcome_chart = None
    if any(series.values()):
        outcome_chart = _outcome_svg(
            tuple((label, tuple(values)) for label, values in series.items()),
            baseline_score,
            patient.full_name,
            current_app.config["CLINIC_TIMEZONE"],
        )

    surges = [
        (row.infusion.series_number, row.sbp_rise, row.hr_rise)
        for row in rows
        if row.sbp_rise is not None or row.hr_rise is not None
    ]
    peak_chart = None
    if surges:
        peak_chart = _peak_svg(tuple(surges), patient.full_name)

    latest_phq9 = phq9s[-1] if phq9s else None
    return PatientHistory(
        rows=rows,
        assessments=assessments,
        baseline_phq9=baseline,
        status=clinical.outcome_status(baseline_score, since_baseline),
        status_kind=clinical.outcome_kind(baseline_score, since_baseline),
        outcome_chart=outcome_chart,
        peak_rise_chart=peak_chart,
        flagged_phq9=latest_phq9 if latest_phq9 and latest_phq9.flag_physician else None,
    )


# Each chart's SVG is a function of exactly its arguments (and the clinic's zone, which the
# date labels are written in: hence `zone` in the key). Memoised, a patient page shown again
# before a score or a session's surge changed is not drawn again (a fifth of the page's CPU,
# bench/RESULTS.md); any change is a new key, so a stale chart cannot be served.
@packed_cache(128)
def _outcome_svg(series: tuple, baseline_score: int | None, name: str, zone: str) -> Markup:
    return charts.outcome_chart(
        {label: list(values) for label, values in series},
        baseline=baseline_score,
        # Response: PHQ-9 at or below half the baseline; remission: PHQ-9 below 5.
        response_line=(
            baseline_score * (1 - clinical.PHQ9_RESPONSE_DROP) if baseline_score else None
        ),
        remission_line=clinical.PHQ9_REMISSION_BELOW if baseline_score is not None else None,
        title=f"Outcome scores over time for {name}",
        fmt_date=formatter(zone, "%d %b %Y"),
        tz=clinic_zone(),
    )


@packed_cache(128)
def _peak_svg(surges: tuple, name: str) -> Markup:
    return charts.peak_rise_chart(
        list(surges), title=f"Peak rise in systolic BP and heart rate per infusion for {name}"
    )
