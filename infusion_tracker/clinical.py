"""Clinical rules: ranges, alert tiers, NEWS2, modified Aldrete, dose arithmetic, the session
state machine and outcome wording. Plain Python (no Flask), so views, services, the CLI and
the exports share one definition of each rule (SPEC §3–§4).

Sources: NEWS2 — Royal College of Physicians, "National Early Warning Score (NEWS) 2", 2017
(SpO2 scale 1). Modified Aldrete — Aldrete JA, J Clin Anesth 1995;7:89–91 (≥ 9 of 10 to
discharge). PHQ-9 response ≥ 50 % drop from baseline, remission < 5 — Kroenke 2001 and the
usual trial convention.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .vocab import (
    AVPU_CODES,
    INSTRUMENTS,
    MOAAS_RANGE,
    PAIN_RANGE,
    RHYTHM_CODES,
    RHYTHM_FLAG_WORDS,
    UNFLAGGED_RHYTHMS,
    worst,
)

# --- Protocol limits (SPEC §4 defaults; a physician changes them per protocol) -------------


@dataclass(frozen=True)
class Limits:
    """Start limits, normal limits (tier 2), critical thresholds (tier 3) and deltas."""

    start_sbp_max: float = 160
    start_dbp_max: float = 100
    start_hr_max: float = 110
    start_hr_min: float = 50
    start_spo2_min: float = 94
    normal_sbp_low: float = 100
    normal_sbp_high: float = 160
    normal_dbp_low: float = 50
    normal_dbp_high: float = 100
    normal_hr_low: float = 55
    normal_hr_high: float = 100
    normal_rr_low: float = 12
    normal_rr_high: float = 20
    normal_spo2_low: float = 95
    normal_temp_low: float = 36.0
    normal_temp_high: float = 38.0
    normal_moaas_low: float = 3  # MOAA/S below this is abnormal
    critical_sbp_high: float = 180
    critical_sbp_low: float = 90
    critical_dbp_high: float = 110
    critical_hr_high: float = 120
    critical_hr_low: float = 50
    critical_spo2_below: float = 92
    critical_rr_low: float = 10
    critical_rr_high: float = 24
    critical_moaas_max: float = 2
    delta_sbp_pct: float = 30
    delta_hr_pct: float = 30

    @classmethod
    def from_dict(cls, data: dict | None) -> Limits:
        """A protocol's stored limits; missing or blank keys take the defaults."""
        data = data or {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS: dict[str, float] = Limits().to_dict()


class LimitField(NamedTuple):
    key: str
    label: str
    unit: str
    group: str  # "start" | "normal" | "critical" | "delta"


LIMIT_FIELDS: list[LimitField] = [
    LimitField("start_sbp_max", "Highest systolic BP to start", "mmHg", "start"),
    LimitField("start_dbp_max", "Highest diastolic BP to start", "mmHg", "start"),
    LimitField("start_hr_max", "Highest heart rate to start", "bpm", "start"),
    LimitField("start_hr_min", "Lowest heart rate to start", "bpm", "start"),
    LimitField("start_spo2_min", "Lowest SpO2 to start", "%", "start"),
    LimitField("normal_sbp_low", "Systolic BP, lowest normal", "mmHg", "normal"),
    LimitField("normal_sbp_high", "Systolic BP, highest normal", "mmHg", "normal"),
    LimitField("normal_dbp_low", "Diastolic BP, lowest normal", "mmHg", "normal"),
    LimitField("normal_dbp_high", "Diastolic BP, highest normal", "mmHg", "normal"),
    LimitField("normal_hr_low", "Heart rate, lowest normal", "bpm", "normal"),
    LimitField("normal_hr_high", "Heart rate, highest normal", "bpm", "normal"),
    LimitField("normal_rr_low", "Respiratory rate, lowest normal", "breaths/min", "normal"),
    LimitField("normal_rr_high", "Respiratory rate, highest normal", "breaths/min", "normal"),
    LimitField("normal_spo2_low", "SpO2, lowest normal", "%", "normal"),
    LimitField("normal_temp_low", "Temperature, lowest normal", "°C", "normal"),
    LimitField("normal_temp_high", "Temperature, highest normal", "°C", "normal"),
    LimitField("normal_moaas_low", "MOAA/S, lowest normal", "", "normal"),
    LimitField("critical_sbp_high", "Critical systolic BP at or above", "mmHg", "critical"),
    LimitField("critical_sbp_low", "Critical systolic BP at or below", "mmHg", "critical"),
    LimitField("critical_dbp_high", "Critical diastolic BP at or above", "mmHg", "critical"),
    LimitField("critical_hr_high", "Critical heart rate at or above", "bpm", "critical"),
    LimitField("critical_hr_low", "Critical heart rate at or below", "bpm", "critical"),
    LimitField("critical_spo2_below", "Critical SpO2 below", "%", "critical"),
    LimitField("critical_rr_low", "Critical respiratory rate below", "breaths/min", "critical"),
    LimitField("critical_rr_high", "Critical respiratory rate above", "breaths/min", "critical"),
    LimitField("critical_moaas_max", "Critical MOAA/S at or below", "", "critical"),
    LimitField("delta_sbp_pct", "Systolic BP rise above baseline", "%", "delta"),
    LimitField("delta_hr_pct", "Heart rate rise above baseline", "%", "delta"),
]

# --- Tier 1: impossible values (SPEC §4) ---------------------------------------------------

VITAL_FIELDS = (
    "systolic",
    "diastolic",
    "heart_rate",
    "resp_rate",
    "spo2",
    "o2_flow_lpm",
    "temperature_c",
    "rhythm",
    "avpu",
    "moaas",
    "pain",
)

# field -> (low, high, label, unit); metric. weight_kg is a session field (dosing form).
IMPOSSIBLE: dict[str, tuple[float, float, str, str]] = {
    "systolic": (40, 300, "Systolic BP", "mmHg"),
    "diastolic": (20, 200, "Diastolic BP", "mmHg"),
    "heart_rate": (20, 250, "Heart rate", "bpm"),
    "resp_rate": (2, 60, "Respiratory rate", "breaths/min"),
    "spo2": (50, 100, "SpO2", "%"),
    "o2_flow_lpm": (0, 15, "O2 flow", "L/min"),
    "temperature_c": (30.0, 43.0, "Temperature", "°C"),
    "moaas": (*MOAAS_RANGE, "MOAA/S", ""),
    "pain": (*PAIN_RANGE, "Pain", ""),
    "weight_kg": (20, 400, "Weight", "kg"),
}
# Whole numbers only (monitors and scales report these as integers).
INTEGER_FIELDS = frozenset(
    {"systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "moaas", "pain"}
)
CLOCK_SKEW = timedelta(minutes=5)
BASELINE_MAX_AGE = timedelta(minutes=30)


def _num(value: float) -> str:
    """A number as a person writes it: 120, 37.5, 0.5."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def range_message(name: str) -> str:
    low, high, label, unit = IMPOSSIBLE[name]
    if name == "temperature_c":
        span = f"between {low:.1f} and {high:.1f}"
    else:
        span = f"between {_num(low)} and {_num(high)}"
    return f"{label} must be {span}{' ' + unit if unit else ''}."


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def range_problem(name: str, value: Any) -> str | None:
    """Tier 1 for one numeric field of IMPOSSIBLE: a number, whole where needed, in range."""
    label = IMPOSSIBLE[name][2]
    if isinstance(value, bool):
        return f"{label} must be a number."
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{label} must be a number."
    if not math.isfinite(number):
        return f"{label} must be a number."
    if name in INTEGER_FIELDS and not number.is_integer():
        return f"{label} must be a whole number."
    low, high = IMPOSSIBLE[name][:2]
    if not low <= number <= high:
        return range_message(name)
    return None


def reading_problems(values: dict) -> dict[str, str]:
    """SPEC §4 tier 1 for one reading: {field: message}; "__all__" when nothing was measured."""
    problems: dict[str, str] = {}
    for name in VITAL_FIELDS:
        value = values.get(name)
        if _blank(value) or name in ("rhythm", "avpu"):
            continue
        problem = range_problem(name, value)
        if problem:
            problems[name] = problem
    rhythm = values.get("rhythm")
    if not _blank(rhythm) and rhythm not in RHYTHM_CODES:
        problems["rhythm"] = "Cardiac rhythm must be chosen from the list."
    avpu = values.get("avpu")
    if not _blank(avpu) and avpu not in AVPU_CODES:
        problems["avpu"] = "Level of consciousness (AVPU) must be A, V, P or U."
    systolic, diastolic = values.get("systolic"), values.get("diastolic")
    if (
        not _blank(systolic)
        and not _blank(diastolic)
        and "systolic" not in problems
        and "diastolic" not in problems
        and float(diastolic) >= float(systolic)
    ):
        problems["diastolic"] = (
            f"Diastolic BP must be below systolic BP ({_num(float(systolic))} mmHg)."
        )
    # O2 flow is a treatment, not an observation, so it alone does not make a reading.
    measured = [n for n in VITAL_FIELDS if n != "o2_flow_lpm" and not _blank(values.get(n))]
    if not measured:
        problems["__all__"] = "Enter at least one measurement."
    return problems


def taken_at_problem(
    taken_at: datetime, now: datetime, checked_in_at: datetime | None
) -> str | None:
    """A reading's clinical time: not in the future (beyond 5 min skew), not before check-in."""
    if taken_at > now + CLOCK_SKEW:
        return "The time taken cannot be in the future."
    if before_check_in(taken_at, checked_in_at):
        return "The time taken cannot be before the patient was checked in."
    return None


def before_check_in(moment: datetime, checked_in_at: datetime | None) -> bool:
    """Before the check-in minute. Times are typed to the minute while check-in is stamped to
    the second, so a baseline charted in the check-in minute itself is not "before" it."""
    if checked_in_at is None:
        return False
    return moment < checked_in_at.replace(second=0, microsecond=0)


# --- Tiers 2 and 3: abnormal and critical flags ----------------------------------------------


@dataclass
class Flag:
    field: str
    level: str  # "abnormal" | "critical"
    message: str  # value and threshold, e.g. "SBP 185 ≥ 180"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "level": self.level, "message": self.message}


@dataclass
class ReadingAssessment:
    severity: str  # "normal" | "abnormal" | "critical"
    flags: list[Flag] = field(default_factory=list)

    def field_level(self, name: str) -> str | None:
        """The worst flag on one field, or None when the field is not flagged."""
        levels = [f.level for f in self.flags if f.field == name]
        return worst(levels) if levels else None


def _present(values: dict | None, name: str) -> float | None:
    if not values:
        return None
    value = values.get(name)
    return None if _blank(value) else float(value)


def _range_flag(
    name: str,
    short: str,
    value: float | None,
    crit_low: float | None,
    crit_high: float | None,
    low: float | None,
    high: float | None,
    strict_crit: bool = False,
) -> Flag | None:
    """Critical at/over the thresholds (or strictly beyond when strict_crit), else abnormal
    strictly outside the normal range."""
    if value is None:
        return None
    v = _num(value)
    le, ge = ("<", ">") if strict_crit else ("≤", "≥")
    if crit_high is not None and (value > crit_high if strict_crit else value >= crit_high):
        return Flag(name, "critical", f"{short} {v} {ge} {_num(crit_high)}")
    if crit_low is not None and (value < crit_low if strict_crit else value <= crit_low):
        return Flag(name, "critical", f"{short} {v} {le} {_num(crit_low)}")
    if high is not None and value > high:
        return Flag(name, "abnormal", f"{short} {v} > {_num(high)}")
    if low is not None and value < low:
        return Flag(name, "abnormal", f"{short} {v} < {_num(low)}")
    return None


def _limit_flags(values: dict, L: Limits) -> list[Flag | None]:
    """One range check per vital sign, against the protocol's limits."""
    return [
        _range_flag(
            "systolic",
            "SBP",
            _present(values, "systolic"),
            L.critical_sbp_low,
            L.critical_sbp_high,
            L.normal_sbp_low,
            L.normal_sbp_high,
        ),
        _range_flag(
            "diastolic",
            "DBP",
            _present(values, "diastolic"),
            None,
            L.critical_dbp_high,
            L.normal_dbp_low,
            L.normal_dbp_high,
        ),
        _range_flag(
            "heart_rate",
            "HR",
            _present(values, "heart_rate"),
            L.critical_hr_low,
            L.critical_hr_high,
            L.normal_hr_low,
            L.normal_hr_high,
        ),
        _range_flag(
            "resp_rate",
            "RR",
            _present(values, "resp_rate"),
            L.critical_rr_low,
            L.critical_rr_high,
            L.normal_rr_low,
            L.normal_rr_high,
            strict_crit=True,
        ),
        # SpO2 critical is "below" the threshold (SPEC: SpO2 < 92).
        _range_flag(
            "spo2",
            "SpO2",
            _present(values, "spo2"),
            L.critical_spo2_below,
            None,
            L.normal_spo2_low,
            None,
            strict_crit=True,
        ),
        _range_flag(
            "temperature_c",
            "Temp",
            _present(values, "temperature_c"),
            None,
            None,
            L.normal_temp_low,
            L.normal_temp_high,
        ),
        _range_flag(
            "moaas",
            "MOAA/S",
            _present(values, "moaas"),
            L.critical_moaas_max,
            None,
            L.normal_moaas_low,
            None,
        ),
    ]


def _avpu_flag(avpu: str) -> Flag | None:
    if avpu in ("P", "U"):
        word = "responds to pain only" if avpu == "P" else "unresponsive"
        return Flag("avpu", "critical", f"AVPU {avpu} ({word})")
    if avpu == "V":
        return Flag("avpu", "abnormal", "AVPU V (responds to voice)")
    return None


def _rhythm_flag(rhythm: str, baseline_rhythm: str | None) -> Flag | None:
    if rhythm == "vt":
        return Flag("rhythm", "critical", "Ventricular tachycardia")
    if rhythm == "af" and baseline_rhythm != "af":
        return Flag("rhythm", "critical", "Atrial fibrillation, new onset")
    if rhythm == "af":
        return Flag("rhythm", "abnormal", "Atrial fibrillation (present at baseline)")
    if rhythm and rhythm not in UNFLAGGED_RHYTHMS:
        return Flag("rhythm", "abnormal", RHYTHM_FLAG_WORDS.get(rhythm, rhythm))
    return None


def _rise_flags(values: dict, baseline: dict | None, L: Limits) -> list[Flag]:
    """SBP and HR more than the protocol's percentage above baseline."""
    flags = []
    for name, short, pct in (
        ("systolic", "SBP", L.delta_sbp_pct),
        ("heart_rate", "HR", L.delta_hr_pct),
    ):
        value, base = _present(values, name), _present(baseline, name)
        if value is None or not base:
            continue
        # "More than pct % above": compare without rounding; the message rounds.
        if (value - base) * 100 > pct * base:
            rise = round((value - base) * 100 / base)
            flags.append(Flag(name, "abnormal", f"{short} {rise} % above baseline {_num(base)}"))
    return flags


def assess_reading(
    values: dict,
    limits: Limits,
    baseline: dict | None = None,
    baseline_rhythm: str | None = None,
) -> ReadingAssessment:
    """SPEC §4 tiers 2 (outside normal limits) and 3 (critical), plus rises above baseline.

    VT is always critical; AF is critical when new (baseline rhythm not AF); MOAA/S at or below
    critical_moaas_max is critical, and so is AVPU P or U, which is the same depth of sedation
    (MOAA/S 0–2: responds only to shaking or pain, or not at all).
    """
    found = [
        *_limit_flags(values, limits),
        _avpu_flag(values.get("avpu") or ""),
        _rhythm_flag(values.get("rhythm") or "", baseline_rhythm),
    ]
    flags = [flag for flag in found if flag is not None]
    flags += _rise_flags(values, baseline, limits)
    return ReadingAssessment(worst(f.level for f in flags), flags)


# --- NEWS2 (RCP 2017, SpO2 scale 1) ---------------------------------------------------------


def _band(value: float, bands: list[tuple[float, int]], top: int) -> int:
    """Score of the first band whose upper bound (inclusive) holds value; `top` above all."""
    for upper, score in bands:
        if value <= upper:
            return score
    return top


def news2_parts(values: dict) -> dict[str, int] | None:
    """Per-parameter NEWS2 scores (RCP 2017, scale 1), or None without RR, SpO2, SBP and HR.

    Temperature and consciousness, when not charted, score 0 (the score is then partial).
    """
    rr = _present(values, "resp_rate")
    spo2 = _present(values, "spo2")
    sbp = _present(values, "systolic")
    hr = _present(values, "heart_rate")
    if None in (rr, spo2, sbp, hr):
        return None
    temp = _present(values, "temperature_c")
    flow = _present(values, "o2_flow_lpm")
    avpu = values.get("avpu") or ""
    return {
        "resp_rate": _band(rr, [(8, 3), (11, 1), (20, 0), (24, 2)], 3),
        "spo2": _band(spo2, [(91, 3), (93, 2), (95, 1)], 0),
        "air_or_oxygen": 2 if flow else 0,
        "systolic": _band(sbp, [(90, 3), (100, 2), (110, 1), (219, 0)], 3),
        "heart_rate": _band(hr, [(40, 3), (50, 1), (90, 0), (110, 1), (130, 2)], 3),
        # New confusion or V/P/U scores 3.
        "consciousness": 3 if avpu in ("V", "P", "U") else 0,
        "temperature_c": 0
        if temp is None
        else _band(round(temp, 1), [(35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)], 2),
    }


def news2(values: dict) -> int | None:
    """NEWS2 aggregate (RCP 2017, scale 1); None when RR, SpO2, SBP or HR is missing."""
    parts = news2_parts(values)
    return None if parts is None else sum(parts.values())


def news2_risk(score: int, any_parameter_3: bool) -> str:
    """RCP 2017 clinical risk: 0–4 low, a 3 in one parameter low-medium, 5–6 medium, ≥ 7 high."""
    if score >= 7:
        return "high"
    if score >= 5:
        return "medium"
    if any_parameter_3:
        return "low-medium"
    return "low"


# --- Dose arithmetic (SPEC §3 dose safety) --------------------------------------------------


@dataclass(frozen=True)
class Dose:
    total_mg: float
    mg_per_h: float
    ml_per_h: float
    volume_ml: float
    mg_per_kg_per_h: float


def dose(
    weight_kg: float, mg_per_kg: float, duration_min: float, concentration_mg_per_ml: float
) -> Dose:
    """Total = weight × mg/kg; rate = total / duration; mL/h from the concentration."""
    if weight_kg <= 0 or mg_per_kg <= 0 or duration_min <= 0 or concentration_mg_per_ml <= 0:
        raise ValueError("weight, dose, duration and concentration must all be above zero")
    total = weight_kg * mg_per_kg
    mg_per_h = total * 60 / duration_min
    return Dose(
        total_mg=round(total, 2),
        mg_per_h=round(mg_per_h, 2),
        ml_per_h=round(mg_per_h / concentration_mg_per_ml, 2),
        volume_ml=round(total / concentration_mg_per_ml, 2),
        mg_per_kg_per_h=round(mg_per_kg * 60 / duration_min, 3),
    )


def dose_problem(total_mg: float, max_total_mg: float) -> str | None:
    """A total above the protocol maximum needs a physician override (SPEC §3)."""
    if total_mg > max_total_mg:
        return (
            f"Total dose {_num(round(total_mg, 2))} mg is above the protocol maximum of "
            f"{_num(max_total_mg)} mg."
        )
    return None


# --- What the pump delivered ------------------------------------------------------------------

# Pumps and wall clocks disagree by seconds: a stop within a minute of the planned end is the
# routine end of the infusion, not an early stop.
STOP_GRACE = timedelta(minutes=1)


def round_mg(mg: float) -> float:
    """The one rounding rule for a dose shown or exported: to 0.1 mg."""
    return round(mg + 0.0, 1)


@dataclass(frozen=True)
class PumpEvent:
    """One infusion event as the pump arithmetic needs it."""

    kind: str  # start, pause, resume, rate_change, stop
    at: datetime
    rate_mg_per_h: float | None = None


@dataclass(frozen=True)
class PumpRun:
    minutes: float  # minutes the pump ran (pauses excluded)
    given_mg: float  # what it delivered, rounded by round_mg, never more than the bag held
    rate_mg_per_h: float | None  # the rate last set (start or rate change)
    running: bool


def pump_run(events: list[PumpEvent], until: datetime, total_mg: float | None = None) -> PumpRun:
    """Minutes run and mg given: each running stretch (start/resume to pause/stop, the open one
    to `until`) at the rate set by the start or the last rate change. Stopped at 3 of 40 minutes
    is about 3/40 of the dose; a pump left running cannot give more than the bag's total."""
    minutes = given = 0.0
    rate: float | None = None
    running_since: datetime | None = None
    for event in sorted(events, key=lambda e: e.at):
        if running_since is not None:
            stretch = max(0.0, (event.at - running_since).total_seconds() / 60)
            minutes += stretch
            given += (rate or 0) * stretch / 60
            running_since = event.at
        if event.rate_mg_per_h is not None:
            rate = event.rate_mg_per_h
        if event.kind in ("start", "resume"):
            running_since = running_since or event.at
        elif event.kind in ("pause", "stop"):
            running_since = None
    if running_since is not None and until > running_since:
        stretch = (until - running_since).total_seconds() / 60
        minutes += stretch
        given += (rate or 0) * stretch / 60
    if total_mg is not None:
        given = min(given, total_mg)
    return PumpRun(minutes, round_mg(given), rate, running_since is not None)


def ended_short(run_minutes: float, planned_minutes: int) -> bool:
    """The pump ran less than planned (beyond the grace a wall clock needs)."""
    return timedelta(minutes=run_minutes) < timedelta(minutes=planned_minutes) - STOP_GRACE


def planned_reached(run_minutes: float, planned_minutes: int) -> bool:
    """The pump has run its planned minutes (within the same grace): time to stop, or to say why
    the infusion runs on. The bedside page and the suite board both prompt on this."""
    return not ended_short(run_minutes, planned_minutes)


def protocol_rate_limit(
    weight_kg: float, protocol_mg_per_kg: float, protocol_minutes: int, ordered_mg_per_h: float
) -> float:
    """The fastest rate a clinician may set without a physician: the protocol's dose for this
    weight over the protocol's minutes, or the session's own order if a physician set it
    higher."""
    return round(max(weight_kg * protocol_mg_per_kg * 60 / protocol_minutes, ordered_mg_per_h), 2)


def rate_problem(mg_per_h: float, limit_mg_per_h: float) -> str | None:
    """A rate change above the protocol's limit needs a physician override, like the plan."""
    if mg_per_h > limit_mg_per_h:
        return (
            f"A rate of {_num(mg_per_h)} mg/h is above the protocol's limit of "
            f"{_num(limit_mg_per_h)} mg/h for this patient."
        )
    return None


# --- Session state machine (SPEC §3) --------------------------------------------------------

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "check_in": (("planned",), "checked_in"),
    "start": (("checked_in",), "infusing"),
    "pause": (("infusing",), "paused"),
    "resume": (("paused",), "infusing"),
    "stop": (("infusing", "paused"), "recovery"),
    "stop_early": (("infusing", "paused"), "stopped_early"),
    "discharge": (("recovery", "stopped_early"), "discharged"),
    "cancel": (("planned", "checked_in"), "cancelled"),
}
ACTION_LABELS: dict[str, str] = {
    "check_in": "Check in",
    "start": "Start infusion",
    "pause": "Pause infusion",
    "resume": "Resume infusion",
    "stop": "Stop infusion",
    "stop_early": "Stop infusion early",
    "discharge": "Discharge",
    "cancel": "Cancel session",
}


class TransitionRefused(ValueError):
    """An action that the session's current state does not allow."""


def _status_words(status: str) -> str:
    return status.replace("_", " ")


def next_status(status: str, action: str) -> str:
    """The status an action leads to; TransitionRefused (with a message) if not allowed now."""
    if action not in TRANSITIONS:
        raise TransitionRefused(f"Unknown action “{action}”.")
    allowed_from, to = TRANSITIONS[action]
    if status not in allowed_from:
        allowed = " or ".join(_status_words(s) for s in allowed_from)
        raise TransitionRefused(
            f"{ACTION_LABELS[action]} is not possible while the session is "
            f"{_status_words(status)} (only when {allowed})."
        )
    return to


def allowed_actions(status: str) -> list[str]:
    return [action for action, (allowed_from, _) in TRANSITIONS.items() if status in allowed_from]


# --- The start gate (SPEC §3) ---------------------------------------------------------------

CHECKLIST_ITEMS: list[tuple[str, str]] = [
    ("consent_on_file", "Consent on file"),
    ("npo_confirmed", "NPO confirmed"),
    ("escort_name", "Escort / driver named"),
    ("pregnancy_status", "Pregnancy status recorded (or not applicable)"),
    ("med_allergy_review_done", "Medication and allergy review done"),
    ("weight_kg", "Weight recorded"),
]


def start_gate_problems(
    checklist: dict,
    baseline: dict | None,
    baseline_taken_at: datetime | None,
    now: datetime,
    limits: Limits,
) -> list[str]:
    """Why "Start infusion" is refused (empty when it may start): checklist, a baseline reading
    within 30 minutes, and baseline BP/HR/SpO2 within the protocol's start limits (SPEC §3)."""
    problems = []
    for key, label in CHECKLIST_ITEMS:
        value = checklist.get(key)
        if _blank(value) or value is False or value == 0:
            problems.append(f"Checklist: {label} — not done.")
    if checklist.get("pregnancy_status") == "positive":
        problems.append("Checklist: pregnancy status is positive.")
    if baseline is None or baseline_taken_at is None:
        problems.append("No baseline reading yet: take one before starting.")
        return problems
    age = now - baseline_taken_at
    if age > BASELINE_MAX_AGE:
        minutes = int(age.total_seconds() // 60)
        problems.append(
            f"The baseline reading is {minutes} minutes old: take a new one "
            f"(it must be within {int(BASELINE_MAX_AGE.total_seconds() // 60)} minutes)."
        )
    checks = (
        ("systolic", "systolic BP", "mmHg", None, limits.start_sbp_max),
        ("diastolic", "diastolic BP", "mmHg", None, limits.start_dbp_max),
        ("heart_rate", "heart rate", "bpm", limits.start_hr_min, limits.start_hr_max),
        ("spo2", "SpO2", "%", limits.start_spo2_min, None),
    )
    for name, label, unit, low, high in checks:
        value = _present(baseline, name)
        if value is None:
            problems.append(f"Baseline {label} not recorded.")
        elif high is not None and value > high:
            problems.append(
                f"Baseline {label} {_num(value)} {unit} is above the start limit of "
                f"{_num(high)} {unit}."
            )
        elif low is not None and value < low:
            problems.append(
                f"Baseline {label} {_num(value)} {unit} is below the start limit of "
                f"{_num(low)} {unit}."
            )
    return problems


def start_gate_changes_at(baseline_taken_at: datetime | None, now: datetime) -> datetime | None:
    """When the clock alone next changes start_gate_problems(): the baseline grows too old, or,
    once it is, the next minute of the age it gives."""
    if baseline_taken_at is None:
        return None
    age = now - baseline_taken_at
    if age <= BASELINE_MAX_AGE:
        return baseline_taken_at + BASELINE_MAX_AGE
    return baseline_taken_at + timedelta(minutes=int(age.total_seconds() // 60) + 1)


# --- Modified Aldrete (Aldrete 1995; ≥ 9 of 10 to discharge) --------------------------------

ALDRETE_ITEMS: dict[str, tuple[str, dict[int, str]]] = {
    "activity": (
        "Activity",
        {
            2: "Moves all four limbs voluntarily or on command",
            1: "Moves two limbs voluntarily or on command",
            0: "Unable to move limbs",
        },
    ),
    "respiration": (
        "Respiration",
        {
            2: "Breathes deeply and coughs freely",
            1: "Dyspnoea or limited breathing",
            0: "Apnoeic",
        },
    ),
    "circulation": (
        "Circulation",
        {
            2: "BP within ±20 % of pre-infusion level",
            1: "BP ±20–49 % of pre-infusion level",
            0: "BP ±50 % or more of pre-infusion level",
        },
    ),
    "consciousness": (
        "Consciousness",
        {2: "Fully awake", 1: "Arousable on calling", 0: "Not responding"},
    ),
    "spo2": (
        "Oxygen saturation",
        {
            2: "SpO2 above 92 % on room air",
            1: "Needs oxygen to keep SpO2 above 90 %",
            0: "SpO2 below 90 % even with oxygen",
        },
    ),
}
ALDRETE_DISCHARGE_MIN = 9


def aldrete_prefill(last: dict | None, baseline: dict | None) -> dict[str, int]:
    """Aldrete items derivable from the last reading: circulation (SBP vs baseline),
    consciousness (AVPU) and SpO2 (with O2 flow). Activity and respiration stay with the
    clinician; so does anything the readings do not hold."""
    items: dict[str, int] = {}
    if not last:
        return items
    sbp, base = _present(last, "systolic"), _present(baseline, "systolic")
    if sbp is not None and base:
        change = abs(sbp - base) * 100 / base
        items["circulation"] = 2 if change <= 20 else 1 if change < 50 else 0
    avpu = last.get("avpu") or ""
    if avpu in AVPU_CODES:
        items["consciousness"] = {"A": 2, "V": 1}.get(avpu, 0)
    spo2 = _present(last, "spo2")
    if spo2 is not None:
        on_oxygen = bool(_present(last, "o2_flow_lpm"))
        # Above 92 % on room air scores 2; anything that still holds above 90 % scores 1
        # (on oxygen, or 91–92 % on air); 90 % or less scores 0.
        items["spo2"] = 2 if spo2 > 92 and not on_oxygen else 1 if spo2 > 90 else 0
    return items


def aldrete_total(items: dict[str, int]) -> int:
    """Sum of the five modified Aldrete items (0–2 each, total 0–10)."""
    if set(items) != set(ALDRETE_ITEMS):
        missing = sorted(set(ALDRETE_ITEMS) - set(items))
        raise ValueError(f"Aldrete items missing or unknown: {missing or sorted(items)}")
    for key, value in items.items():
        if isinstance(value, bool) or value not in (0, 1, 2):
            raise ValueError(f"Aldrete {ALDRETE_ITEMS[key][0]} must be 0, 1 or 2.")
    return sum(items.values())


# --- Reading schedule ------------------------------------------------------------------------


def reading_due(
    last_taken_at: datetime | None, interval_min: int, now: datetime
) -> tuple[datetime, bool]:
    """When the next reading is due and whether it is overdue. No reading yet: due now."""
    if last_taken_at is None:
        return now, False
    due_at = last_taken_at + timedelta(minutes=interval_min)
    return due_at, now > due_at


# --- Outcome scores --------------------------------------------------------------------------


def phq9_total(items: list[int]) -> int:
    """PHQ-9 total (Kroenke 2001): nine answers 0–3; ValueError otherwise."""
    if len(items) != 9 or any(
        isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 3 for i in items
    ):
        raise ValueError("PHQ-9 needs nine answers, each 0 to 3.")
    return sum(items)


def score_problem(instrument: str, score: Any) -> str | None:
    """Tier 1 for an outcome score: a whole number within the instrument's range."""
    if instrument not in INSTRUMENTS:
        return "Choose an instrument from the list."
    label, low, high = INSTRUMENTS[instrument]
    if isinstance(score, bool) or not isinstance(score, int | float):
        return f"{label} score must be a whole number."
    if isinstance(score, float) and not score.is_integer():
        return f"{label} score must be a whole number."
    if not low <= score <= high:
        return f"{label} score must be between {low} and {high}."
    return None


PHQ9_REMISSION_BELOW = 5
PHQ9_RESPONSE_DROP = 0.5


def _outcome(baseline: int | None, series: list[tuple[int | None, int]]) -> tuple[str, str]:
    if baseline is None:
        return "unknown", "no baseline PHQ-9"
    if not series:
        return "unknown", f"no PHQ-9 since baseline {baseline}"

    def remitted(score):
        return score < PHQ9_REMISSION_BELOW

    def responded(score):
        return baseline > 0 and score <= baseline * (1 - PHQ9_RESPONSE_DROP)

    latest = series[-1][1]

    def since(test) -> str:
        # The first of the run of scores, ending with the latest, that all pass the test.
        start = len(series) - 1
        while start > 0 and test(series[start - 1][1]):
            start -= 1
        number = series[start][0]
        return f" since infusion {number}" if number is not None else ""

    def relative() -> str:
        if baseline == 0:
            return f"baseline {baseline}"
        change = round(abs(baseline - latest) * 100 / baseline)
        direction = "above" if latest > baseline else "below"
        return f"{change} % {direction} baseline {baseline}"

    if remitted(latest):
        return "remission", f"remission{since(remitted)} (PHQ-9 {latest})"
    if responded(latest):
        return "response", f"response{since(responded)} (PHQ-9 {latest}, {relative()})"
    return "none", f"no response yet (PHQ-9 {latest}, {relative()})"


def outcome_status(baseline: int | None, series: list[tuple[int | None, int]]) -> str:
    """PHQ-9 course in words: remission (< 5), response (≥ 50 % below baseline), or not yet.

    `series` is [(infusion number or None, PHQ-9)] after baseline, oldest first.
    """
    return _outcome(baseline, series)[1]


def outcome_kind(baseline: int | None, series: list[tuple[int | None, int]]) -> str:
    """The same judgement as a word for a tag: remission / response / none / unknown."""
    return _outcome(baseline, series)[0]
