"""Every controlled vocabulary of the record, defined once: stored code -> words on screen.

Models (and their CHECK constraints), forms, clinical rules, templates (the `vocab` Jinja
global) and exports all read these. Plain Python, no Flask and no database, so clinical.py and
the migrations can import it. Changing a code here needs a migration for its CHECK constraint.
"""

from __future__ import annotations

from collections.abc import Iterable

# --- Staff -----------------------------------------------------------------------------------

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

# --- Patients --------------------------------------------------------------------------------

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

# --- Sessions --------------------------------------------------------------------------------

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
# Status words always come with a colour class (the status_tag kind), never colour alone.
STATUS_KINDS = {
    "planned": "neutral",
    "checked_in": "info",
    "infusing": "ok",
    "paused": "warning",
    "recovery": "info",
    "stopped_early": "abnormal",
    "discharged": "ok",
    "cancelled": "neutral",
}
# Stored as "" until the checklist records it.
PREGNANCY_STATUSES = {
    "negative": "Negative test",
    "not_pregnant_reported": "Not pregnant (patient report)",
    "not_applicable": "Not applicable",
    "positive": "Positive",
}
INFUSION_EVENT_KINDS = {
    "start": "Infusion started",
    "pause": "Paused",
    "resume": "Resumed",
    "rate_change": "Rate changed",
    "stop": "Infusion stopped",
    # The planned minutes are reached and the infusion goes on: why (issue 10).
    "run_on": "Runs on past the planned time",
}

# --- Readings --------------------------------------------------------------------------------

PHASES = {
    "baseline": "Baseline",
    "infusion": "Infusion",
    "recovery": "Recovery",
    "discharge": "Discharge",
}

# Flag levels, least to most severe (SPEC §4 tiers: within limits, abnormal, critical).
FLAG_LEVELS = ("normal", "abnormal", "critical")
FLAG_RANK = {level: rank for rank, level in enumerate(FLAG_LEVELS)}
FLAG_KINDS = {"normal": "ok", "abnormal": "abnormal", "critical": "critical"}


def worst(levels: Iterable[str]) -> str:
    """The most severe of some flag levels ("normal" when there are none)."""
    return max(levels, key=FLAG_RANK.__getitem__, default="normal")


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
RHYTHM_CODES = tuple(RHYTHMS)
# Names short enough for a table column; the others are short already.
RHYTHM_SHORT = {
    "nsr": "NSR",
    "sinus_tach": "Sinus tach",
    "sinus_brady": "Sinus brady",
    "af": "AF",
    "flutter": "Flutter",
    "vt": "VT",
    "artifact": "Artifact",
}
# Rhythms that are not flagged: normal, physiological, a known pacemaker, or no signal.
UNFLAGGED_RHYTHMS = frozenset({"nsr", "sinus_arrhythmia", "paced", "artifact"})
# A flagged rhythm's words in a flag message ("Junctional" alone would not read as a rhythm).
RHYTHM_FLAG_WORDS = {
    code: {"junctional": "Junctional rhythm", "other": "Other rhythm"}.get(code, label)
    for code, label in RHYTHMS.items()
    if code not in UNFLAGGED_RHYTHMS
}

AVPU = {"A": "Alert", "V": "Responds to voice", "P": "Responds to pain", "U": "Unresponsive"}
AVPU_CODES = tuple(AVPU)

# Hard limits of the scales themselves (inclusive), not clinical thresholds.
MOAAS_RANGE = (0, 5)
PAIN_RANGE = (0, 10)

# The clinician's answer to a critical reading; "" while it is still open.
CRITICAL_ACTIONS = {
    "reviewed": "Reviewed, no action needed",
    "adverse_event": "Adverse event recorded",
}
# NEWS2 clinical risk (clinical.news2_risk) -> status_tag kind.
NEWS2_RISK_KINDS = {
    "low": "neutral",
    "low-medium": "abnormal",
    "medium": "warning",
    "high": "critical",
}

# --- Adverse events --------------------------------------------------------------------------

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
AE_SEVERITY_KINDS = {"mild": "neutral", "moderate": "warning", "severe": "critical"}
INFUSION_ACTIONS = {"none": "None", "slowed": "Slowed", "paused": "Paused", "stopped": "Stopped"}

# --- Outcome scores and discharge --------------------------------------------------------------

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
# Modified Aldrete: five items of 0–2 (clinical.ALDRETE_ITEMS).
ALDRETE_TOTAL_RANGE = (0, 10)


# --- SQL for the CHECK constraints (models.py and the migrations) ------------------------------


def sql_in(column: str, codes: Iterable[str], *, blank: bool = False) -> str:
    """`column IN ('a','b')`, with '' allowed when blank: the CHECK text for one vocabulary."""
    values = [*([""] if blank else []), *codes]
    for value in values:
        # Codes are written into DDL, so they must never need quoting.
        assert "'" not in value and "\\" not in value, value
    return f"{column} IN ({','.join(repr(str(v)) for v in values)})"


def sql_between(column: str, bounds: tuple[int, int]) -> str:
    """`column BETWEEN low AND high`; NULL (not measured) passes, as CHECK lets NULL pass."""
    low, high = bounds
    return f"{column} BETWEEN {int(low)} AND {int(high)}"


def sql_score_range() -> str:
    """An assessment's score within its instrument's range."""
    return " OR ".join(
        f"(instrument = '{code}' AND score BETWEEN {low} AND {high})"
        for code, (_label, low, high) in INSTRUMENTS.items()
    )
