"""The quality report's figures for a period (issue 11): set-based queries, a fixed number of
them whatever the size of the database, each figure with the number of patients behind it.

A session belongs to the period when its infusion started in it. Per protocol means per
protocol name (all its versions together).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from .. import clinical
from ..extensions import db
from ..models import (
    ADVERSE_EVENT_TYPES,
    AE_SEVERITIES,
    EVENT_REASONED_STOP,
    AdverseEvent,
    Assessment,
    InfusionEvent,
    InfusionSession,
    Protocol,
    Reading,
)
from ..timeutil import clinic_day_bounds
from ..vocab import INSTRUMENTS
from . import figures
from .figures import SPAN, SessionReadings

FEW_PATIENTS = 5
CLINIC = "All protocols"
VITAL_LABELS = {
    "systolic": "Systolic BP",
    "diastolic": "Diastolic BP",
    "heart_rate": "Heart rate",
    "resp_rate": "Respiratory rate",
    "spo2": "SpO2",
    "temperature_c": "Temperature",
    "moaas": "Sedation (MOAA/S)",
    "avpu": "AVPU",
    "rhythm": "Rhythm",
}
# instrument -> (label, remission below this score or None)
REMISSION_BELOW = {"phq9": clinical.PHQ9_REMISSION_BELOW, "gad7": 5, "pain_nrs": None}
OUTCOME_INSTRUMENTS = {
    code: (INSTRUMENTS[code][0], below) for code, below in REMISSION_BELOW.items()
}
RESPONSE_DROP = 0.5
MILESTONE = 6


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return clinic_day_bounds(self.start)[0], clinic_day_bounds(self.end)[1]


def few(patients: int) -> bool:
    return patients < FEW_PATIENTS


def _in_period(period: Period):
    begin, finish = period.bounds
    return sa.and_(
        InfusionSession.started_at >= begin,
        InfusionSession.started_at < finish,
        InfusionSession.status != "cancelled",
    )


def _stopped_early():
    early_stop = sa.exists().where(
        InfusionEvent.infusion_id == InfusionSession.id, EVENT_REASONED_STOP
    )
    return sa.or_(InfusionSession.status == "stopped_early", early_stop)


# --- Sessions ------------------------------------------------------------------------------------


@dataclass
class SummaryRow:
    protocol: str
    sessions: int
    patients: int
    completed: int
    stopped_early: int

    @property
    def few(self) -> bool:
        return few(self.patients)


def summary(period: Period) -> list[SummaryRow]:
    """Clinic-wide first, then per protocol: sessions, patients, completed, stopped early.
    One query, grouped by protocol and patient (a patient is counted once clinic-wide however
    many protocols), summed here; each session's early stop is looked up once."""
    early = _stopped_early()
    sessions = (
        sa.select(
            Protocol.name.label("protocol"),
            InfusionSession.patient_id,
            (InfusionSession.status == "discharged").label("discharged"),
            sa.case((early, 1), else_=0).label("early"),
        )
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .where(_in_period(period))
        .subquery()
    )
    rows = db.session.execute(
        sa.select(
            sessions.c.protocol,
            sessions.c.patient_id,
            sa.func.count(),
            sa.func.sum(sa.case((sa.and_(sessions.c.discharged, sessions.c.early == 0), 1),
                                else_=0)),
            sa.func.sum(sessions.c.early),
        ).group_by(sessions.c.protocol, sessions.c.patient_id)
    )
    totals: dict[str, list] = {CLINIC: [0, set(), 0, 0]}
    for protocol, patient_id, count, completed, stopped in rows:
        for name in (CLINIC, protocol):
            total = totals.setdefault(name, [0, set(), 0, 0])
            total[0] += count
            total[1].add(patient_id)
            total[2] += int(completed or 0)
            total[3] += int(stopped or 0)
    return [
        SummaryRow(name, count, len(patients), completed, stopped)
        for name, (count, patients, completed, stopped) in sorted(
            totals.items(), key=lambda item: (item[0] != CLINIC, item[0])
        )
    ]


# --- Adverse events ------------------------------------------------------------------------------


@dataclass
class AdverseRow:
    protocol: str
    event_type: str
    severity: str
    events: int
    patients: int
    per_100: float
    median_mg_per_kg: float | None

    @property
    def type_label(self) -> str:
        return ADVERSE_EVENT_TYPES.get(self.event_type, self.event_type)

    @property
    def severity_label(self) -> str:
        return AE_SEVERITIES.get(self.severity, self.severity)

    @property
    def few(self) -> bool:
        return few(self.patients)


def _mg_until(events: list[clinical.PumpEvent], until: datetime, total_mg: float | None) -> float:
    """mg the pump had delivered by `until` (clinical.pump_run over the events up to then)."""
    return clinical.pump_run([e for e in events if e.at <= until], until, total_mg).given_mg


def _per_100(events: int, sessions: int) -> float:
    return round(100 * events / sessions, 1) if sessions else 0.0


def adverse_events(period: Period, summary_rows: list[SummaryRow]) -> list[AdverseRow]:
    """Per protocol and clinic-wide, by type and severity: events per 100 infusions and the
    median dose received by onset (mg/kg, from the pump's events). Two queries."""
    events = db.session.execute(
        sa.select(
            AdverseEvent.infusion_id,
            AdverseEvent.event_type,
            AdverseEvent.severity,
            AdverseEvent.onset_at,
            InfusionSession.patient_id,
            InfusionSession.weight_kg,
            InfusionSession.total_mg,
            Protocol.name,
        )
        .join(InfusionSession, InfusionSession.id == AdverseEvent.infusion_id)
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .where(_in_period(period), AdverseEvent.voided_at.is_(None))
    ).all()
    pump: dict[int, list] = defaultdict(list)
    if events:
        ids = {row.infusion_id for row in events}
        for infusion_id, kind, at, rate in db.session.execute(
            sa.select(InfusionEvent.infusion_id, InfusionEvent.kind, InfusionEvent.occurred_at,
                      InfusionEvent.rate_mg_per_h)
            .where(InfusionEvent.infusion_id.in_(ids))
            .order_by(InfusionEvent.infusion_id, InfusionEvent.occurred_at, InfusionEvent.id)
        ):
            pump[infusion_id].append(clinical.PumpEvent(kind, at, rate))
    sessions = {row.protocol: row.sessions for row in summary_rows}
    groups: dict[tuple[str, str, str], dict] = {}
    for row in events:
        mg = _mg_until(pump[row.infusion_id], row.onset_at, row.total_mg)
        dose = mg / row.weight_kg if row.weight_kg else None
        for protocol in (CLINIC, row.name):
            group = groups.setdefault(
                (protocol, row.event_type, row.severity), {"n": 0, "patients": set(), "doses": []}
            )
            group["n"] += 1
            group["patients"].add(row.patient_id)
            if dose is not None:
                group["doses"].append(dose)
    result = [
        AdverseRow(
            protocol=protocol,
            event_type=event_type,
            severity=severity,
            events=group["n"],
            patients=len(group["patients"]),
            per_100=_per_100(group["n"], sessions.get(protocol, 0)),
            median_mg_per_kg=(
                round(statistics.median(group["doses"]), 2) if group["doses"] else None
            ),
        )
        for (protocol, event_type, severity), group in groups.items()
    ]
    result.sort(key=lambda r: (r.protocol != CLINIC, r.protocol, -r.events, r.event_type))
    return result


# --- Critical readings ---------------------------------------------------------------------------


@dataclass
class CriticalRow:
    protocol: str
    vital: str
    sessions_with: int
    sessions: int
    patients: int

    @property
    def share(self) -> float:
        return round(100 * self.sessions_with / self.sessions, 1) if self.sessions else 0.0

    @property
    def label(self) -> str:
        return VITAL_LABELS.get(self.vital, self.vital)

    @property
    def few(self) -> bool:
        return few(self.patients)


def critical_readings(period: Period, summary_rows: list[SummaryRow]) -> list[CriticalRow]:
    """Share of sessions with at least one critical reading, by vital sign (one query: only
    the critical readings are read; the field is in the reading's flags)."""
    rows = db.session.execute(
        sa.select(Reading.infusion_id, Reading.flags, InfusionSession.patient_id, Protocol.name)
        .join(InfusionSession, InfusionSession.id == Reading.infusion_id)
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .where(_in_period(period), Reading.severity == "critical", Reading.voided_at.is_(None))
    )
    found: dict[tuple[str, str], dict] = {}
    for infusion_id, flags, patient_id, name in rows:
        for flag in flags or []:
            if flag.get("level") != "critical":
                continue
            for protocol in (CLINIC, name):
                group = found.setdefault((protocol, flag.get("field", "")),
                                         {"sessions": set(), "patients": set()})
                group["sessions"].add(infusion_id)
                group["patients"].add(patient_id)
    sessions = {row.protocol: row.sessions for row in summary_rows}
    result = [
        CriticalRow(protocol, vital, len(g["sessions"]), sessions.get(protocol, 0),
                    len(g["patients"]))
        for (protocol, vital), g in found.items()
    ]
    result.sort(key=lambda r: (r.protocol != CLINIC, r.protocol, -r.sessions_with, r.vital))
    return result


# --- Per-session figures from the readings -----------------------------------------------------


def session_readings(period: Period) -> list[SessionReadings]:
    """The period's sessions with their peak rise and reading intervals (quality/figures.py:
    stored per session version, computed where missing)."""
    return figures.session_readings(_in_period(period))


# --- Peak SBP rise by infusion number ------------------------------------------------------------


@dataclass
class RiseRow:
    protocol: str
    infusion_number: str
    sessions: int
    patients: int
    median: float
    q1: float
    q3: float
    highest: int

    @property
    def few(self) -> bool:
        return few(self.patients)


def _quartiles(values: list[int]) -> tuple[float, float, float]:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3


def peak_rise(period: Period, sessions: list[SessionReadings] | None = None) -> list[RiseRow]:
    """Peak systolic during infusion and recovery minus the session's last baseline systolic,
    as the patient page defines it; distribution per infusion number (6 and later together),
    clinic-wide and per protocol. From `session_readings` (read here if not given)."""
    if sessions is None:
        sessions = session_readings(period)
    groups: dict[tuple[str, int], tuple[list[int], set[int]]] = defaultdict(lambda: ([], set()))
    for session in sessions:
        if session.rise is None:
            continue
        for protocol in (CLINIC, session.protocol):
            values, patients = groups[(protocol, min(session.infusion_number, MILESTONE))]
            values.append(session.rise)
            patients.add(session.patient_id)
    result = []
    for protocol, number in sorted(groups, key=lambda key: (key[0] != CLINIC, key)):
        values, patients = groups[(protocol, number)]
        median, q1, q3 = _quartiles(sorted(values))
        label = f"{number}+" if number == MILESTONE else str(number)
        result.append(
            RiseRow(protocol, label, len(values), len(patients), median, q1, q3, max(values))
        )
    return result


# --- Reading intervals ---------------------------------------------------------------------------


@dataclass
class GapRow:
    protocol: str
    gaps: int
    overdue: int
    mean_minutes: float
    patients: int

    @property
    def overdue_share(self) -> float:
        return round(100 * self.overdue / self.gaps, 1) if self.gaps else 0.0

    @property
    def few(self) -> bool:
        return few(self.patients)


def reading_gaps(period: Period, sessions: list[SessionReadings] | None = None) -> list[GapRow]:
    """During the infusion phase: minutes from one reading to the next, and the share later
    than the protocol's interval (patients counted once clinic-wide). From `session_readings`
    (read here if not given)."""
    if sessions is None:
        sessions = session_readings(period)
    sums: dict[str, list] = {}
    for session in sessions:
        if not session.gaps:
            continue
        for name in (CLINIC, session.protocol):
            total = sums.setdefault(name, [0, 0, 0.0, set()])
            total[0] += session.gaps
            total[1] += session.overdue
            total[2] += session.gap_seconds
            total[3].add(session.patient_id)
    names = [CLINIC] + sorted(name for name in sums if name != CLINIC)
    return [
        GapRow(
            protocol=name,
            gaps=sums[name][0],
            overdue=sums[name][1],
            mean_minutes=round(sums[name][2] / 60 / sums[name][0], 1),
            patients=len(sums[name][3]),
        )
        for name in names
        if name in sums
    ] or [GapRow(CLINIC, 0, 0, 0.0, 0)]


# --- Outcomes ------------------------------------------------------------------------------------


@dataclass
class OutcomeRow:
    protocol: str
    instrument: str
    when: str  # "by infusion 6" or "end of series"
    patients: int
    responders: int
    remitted: int | None  # None where the instrument has no remission threshold

    @property
    def label(self) -> str:
        return OUTCOME_INSTRUMENTS[self.instrument][0]

    @property
    def response_rate(self) -> float:
        return round(100 * self.responders / self.patients, 1) if self.patients else 0.0

    @property
    def remission_rate(self) -> float | None:
        if self.remitted is None or not self.patients:
            return None
        return round(100 * self.remitted / self.patients, 1)

    @property
    def few(self) -> bool:
        return few(self.patients)


@dataclass
class _Course:
    baseline: int | None = None
    by_milestone: int | None = None
    latest: int | None = None


def _treated_protocols(treated) -> tuple[dict[int, set[str]], set[int]]:
    """Each treated patient's protocols (by name), and who reached infusion 6."""
    protocols: dict[int, set[str]] = defaultdict(set)
    reached = set()
    for patient_id, name, highest in db.session.execute(
        sa.select(InfusionSession.patient_id, Protocol.name,
                  sa.func.max(InfusionSession.series_number))
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .where(InfusionSession.patient_id.in_(treated), InfusionSession.started_at.is_not(None))
        .group_by(InfusionSession.patient_id, Protocol.name)
    ):
        protocols[patient_id].add(name)
        if highest >= MILESTONE:
            reached.add(patient_id)
    return protocols, reached


def _courses(treated) -> dict[tuple[int, str], _Course]:
    """Per patient and instrument: the first score, the last by infusion 6 (after the first),
    the latest (when there is more than one). One window over the treated patients' scores in
    the order taken, grouped in the database: a row per patient and instrument comes back."""
    window = {"partition_by": (Assessment.patient_id, Assessment.instrument),
              "order_by": (Assessment.taken_at, Assessment.id)}
    ordered = (
        sa.select(
            Assessment.patient_id,
            Assessment.instrument,
            Assessment.score,
            InfusionSession.series_number.label("number"),
            sa.func.row_number().over(**window).label("position"),
            sa.func.count().over(partition_by=window["partition_by"]).label("scores"),
        )
        .outerjoin(InfusionSession, InfusionSession.id == Assessment.infusion_id)
        .where(Assessment.patient_id.in_(treated), Assessment.voided_at.is_(None),
               Assessment.instrument.in_(list(OUTCOME_INSTRUMENTS)))
        .subquery()
    )
    later = ordered.c.position > 1
    by_milestone = sa.and_(later, ordered.c.number <= MILESTONE)
    rows = db.session.connection().execute(
        sa.select(
            ordered.c.patient_id,
            ordered.c.instrument,
            sa.func.max(sa.case((ordered.c.position == 1, ordered.c.score))),
            # the score at the highest position by infusion 6: position * SPAN + score
            sa.func.max(sa.case((by_milestone, ordered.c.position * SPAN + ordered.c.score))),
            sa.func.max(sa.case((sa.and_(later, ordered.c.position == ordered.c.scores),
                                 ordered.c.score))),
        ).group_by(ordered.c.patient_id, ordered.c.instrument)
    )
    return {
        (patient_id, instrument): _Course(
            baseline, None if milestone is None else int(milestone) % SPAN, latest
        )
        for patient_id, instrument, baseline, milestone, latest in rows
    }


def _outcome_rows(tally: dict[tuple[str, str, str], list[int]], names: list[str]) -> list:
    result = []
    for protocol in names:
        for instrument, (_label, remission_below) in OUTCOME_INSTRUMENTS.items():
            for when in (f"by infusion {MILESTONE}", "end of series"):
                patients, responders, remitted = tally.get((protocol, instrument, when), [0, 0, 0])
                if not patients and protocol != CLINIC:
                    continue  # a protocol's row only where it has patients
                result.append(OutcomeRow(protocol, instrument, when, patients, responders,
                                         remitted if remission_below is not None else None))
    return result


def outcomes(period: Period) -> list[OutcomeRow]:
    """For the patients treated in the period: response (≥ 50 % below baseline) and remission
    (below 5 on PHQ-9 and GAD-7) by infusion 6 and at the latest score. Baseline is the
    patient's first score; only patients with a baseline and a later score count. Two queries."""
    treated = sa.select(InfusionSession.patient_id).where(_in_period(period)).distinct()
    protocols, reached = _treated_protocols(treated)
    tally: dict[tuple[str, str, str], list[int]] = {}
    for (patient_id, instrument), course in _courses(treated).items():
        remission_below = OUTCOME_INSTRUMENTS[instrument][1]
        for when, score in ((f"by infusion {MILESTONE}", course.by_milestone),
                            ("end of series", course.latest)):
            if score is None or (when != "end of series" and patient_id not in reached):
                continue
            responded = course.baseline > 0 and score <= course.baseline * (1 - RESPONSE_DROP)
            remitted = remission_below is not None and score < remission_below
            for protocol in (CLINIC, *sorted(protocols[patient_id])):
                counts = tally.setdefault((protocol, instrument, when), [0, 0, 0])
                counts[0] += 1
                counts[1] += responded
                counts[2] += remitted
    names = [CLINIC, *sorted({name for names in protocols.values() for name in names})]
    return _outcome_rows(tally, names)


@dataclass
class QualityReport:
    period: Period
    summary: list[SummaryRow]
    adverse_events: list[AdverseRow]
    critical_readings: list[CriticalRow]
    peak_rise: list[RiseRow]
    reading_gaps: list[GapRow]
    outcomes: list[OutcomeRow]


def quality_report(period: Period) -> QualityReport:
    rows = summary(period)
    sessions = session_readings(period)
    return QualityReport(
        period=period,
        summary=rows,
        adverse_events=adverse_events(period, rows),
        critical_readings=critical_readings(period, rows),
        peak_rise=peak_rise(period, sessions),
        reading_gaps=reading_gaps(period, sessions),
        outcomes=outcomes(period),
    )
