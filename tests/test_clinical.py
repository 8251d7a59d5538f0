"""The clinical rules (SPEC §3–§4) as plain functions: no app, no database."""

from datetime import UTC, datetime, timedelta

import pytest

from infusion_tracker import clinical
from infusion_tracker.clinical import Limits

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
LIMITS = Limits()


# --- limits ----------------------------------------------------------------------------------


def test_default_limits_are_the_spec_defaults():
    expected = {
        "start_sbp_max": 160, "start_dbp_max": 100, "start_hr_max": 110, "start_hr_min": 50,
        "start_spo2_min": 94, "normal_sbp_low": 100, "normal_sbp_high": 160,
        "normal_dbp_low": 50, "normal_dbp_high": 100, "normal_hr_low": 55,
        "normal_hr_high": 100, "normal_rr_low": 12, "normal_rr_high": 20,
        "normal_spo2_low": 95, "normal_temp_low": 36.0, "normal_temp_high": 38.0,
        "normal_moaas_low": 3, "critical_sbp_high": 180, "critical_sbp_low": 90,
        "critical_dbp_high": 110, "critical_hr_high": 120, "critical_hr_low": 50,
        "critical_spo2_below": 92, "critical_rr_low": 10, "critical_rr_high": 24,
        "critical_moaas_max": 2, "delta_sbp_pct": 30, "delta_hr_pct": 30,
    }  # fmt: skip
    defaults = clinical.DEFAULT_LIMITS
    assert defaults == expected
    assert [f.key for f in clinical.LIMIT_FIELDS] == list(expected)
    assert {f.group for f in clinical.LIMIT_FIELDS} == {"start", "normal", "critical", "delta"}
    for f in clinical.LIMIT_FIELDS:
        assert f.key.startswith(f.group + "_")


def test_limits_from_dict_fills_missing_keys_and_ignores_unknown():
    limits = Limits.from_dict({"critical_sbp_high": 170, "bogus": 1, "normal_hr_high": None})
    assert limits.critical_sbp_high == 170
    assert limits.normal_hr_high == 100
    assert Limits.from_dict(None) == Limits()
    assert Limits.from_dict(limits.to_dict()) == limits


def test_clinical_module_knows_nothing_of_flask():
    import ast
    import inspect

    from infusion_tracker import vocab

    def imports(module) -> set[str]:
        imported = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or "").split(".")[0])
        return imported

    stdlib = {"__future__", "math", "dataclasses", "datetime", "typing", "collections"}
    # Its vocabularies come from vocab.py, which is plain Python too.
    assert imports(clinical) <= stdlib | {".vocab"}
    assert imports(vocab) <= stdlib


# --- tier 1: impossible values ---------------------------------------------------------------

RANGES = [
    ("systolic", 40, 300, 39, 301, "Systolic BP must be between 40 and 300 mmHg."),
    ("diastolic", 20, 200, 19, 201, "Diastolic BP must be between 20 and 200 mmHg."),
    ("heart_rate", 20, 250, 19, 251, "Heart rate must be between 20 and 250 bpm."),
    ("resp_rate", 2, 60, 1, 61, "Respiratory rate must be between 2 and 60 breaths/min."),
    ("spo2", 50, 100, 49, 101, "SpO2 must be between 50 and 100 %."),
    ("temperature_c", 30.0, 43.0, 29.9, 43.1, "Temperature must be between 30.0 and 43.0 °C."),
    ("o2_flow_lpm", 0, 15, -0.5, 15.5, "O2 flow must be between 0 and 15 L/min."),
    ("moaas", 0, 5, -1, 6, "MOAA/S must be between 0 and 5."),
    ("pain", 0, 10, -1, 11, "Pain must be between 0 and 10."),
]


def alone(field, value):
    # Keep a measurement beside O2 flow (flow alone is not a reading); keep DBP below SBP.
    values = {"heart_rate": 80, field: value}
    if field == "diastolic":
        values["systolic"] = 260
    return values


@pytest.mark.parametrize(("field", "low", "high", "below", "above", "message"), RANGES)
def test_impossible_ranges_inside_and_outside(field, low, high, below, above, message):
    assert clinical.reading_problems(alone(field, low)) == {}
    assert clinical.reading_problems(alone(field, high)) == {}
    assert clinical.reading_problems(alone(field, below)) == {field: message}
    assert clinical.reading_problems(alone(field, above)) == {field: message}


@pytest.mark.parametrize(
    "field", ["systolic", "diastolic", "heart_rate", "resp_rate", "spo2", "moaas", "pain"]
)
def test_integer_fields_refuse_fractions(field):
    low = clinical.IMPOSSIBLE[field][0]
    problems = clinical.reading_problems(alone(field, low + 0.5))
    assert problems[field].endswith("must be a whole number.")


@pytest.mark.parametrize("value", ["abc", float("nan"), True])
def test_non_numbers_are_refused(value):
    assert clinical.reading_problems({"heart_rate": value}) == {
        "heart_rate": "Heart rate must be a number."
    }


def test_weight_range_is_published_for_the_dosing_form():
    assert clinical.range_problem("weight_kg", 20) is None
    assert clinical.range_problem("weight_kg", 400) is None
    assert clinical.range_problem("weight_kg", 19.9) == "Weight must be between 20 and 400 kg."
    assert clinical.range_problem("weight_kg", 400.1) == "Weight must be between 20 and 400 kg."


def test_diastolic_must_be_below_systolic():
    assert clinical.reading_problems({"systolic": 120, "diastolic": 119}) == {}
    assert clinical.reading_problems({"systolic": 120, "diastolic": 120}) == {
        "diastolic": "Diastolic BP must be below systolic BP (120 mmHg)."
    }
    # A systolic already out of range is reported on its own, not as a DBP problem.
    assert set(clinical.reading_problems({"systolic": 30, "diastolic": 60})) == {"systolic"}


@pytest.mark.parametrize(
    "values", [{}, {"systolic": None, "rhythm": "", "avpu": "  "}, {"o2_flow_lpm": 2}]
)
def test_a_reading_needs_a_measurement(values):
    assert clinical.reading_problems(values) == {"__all__": "Enter at least one measurement."}


@pytest.mark.parametrize(
    "field", ["systolic", "spo2", "temperature_c", "rhythm", "avpu", "moaas", "pain"]
)
def test_any_single_measurement_is_enough(field):
    value = {"rhythm": "nsr", "avpu": "A", "temperature_c": 36.6, "systolic": 120}.get(field, 1)
    value = 97 if field == "spo2" else value
    assert clinical.reading_problems({field: value}) == {}


def test_rhythm_and_avpu_pick_lists():
    assert clinical.reading_problems({"rhythm": "vt", "avpu": "U"}) == {}
    problems = clinical.reading_problems({"rhythm": "torsades", "avpu": "C"})
    assert problems == {
        "rhythm": "Cardiac rhythm must be chosen from the list.",
        "avpu": "Level of consciousness (AVPU) must be A, V, P or U.",
    }


def test_taken_at_rules():
    checked_in = NOW - timedelta(hours=1)
    assert clinical.taken_at_problem(NOW + timedelta(minutes=5), NOW, checked_in) is None
    assert clinical.taken_at_problem(NOW + timedelta(minutes=5, seconds=1), NOW, checked_in) == (
        "The time taken cannot be in the future."
    )
    assert clinical.taken_at_problem(checked_in, NOW, checked_in) is None
    assert clinical.taken_at_problem(checked_in - timedelta(seconds=1), NOW, checked_in) == (
        "The time taken cannot be before the patient was checked in."
    )
    assert clinical.taken_at_problem(NOW - timedelta(days=3), NOW, None) is None


def test_a_reading_typed_in_the_check_in_minute_is_not_before_check_in():
    # The form gives minutes; check-in is stamped to the second.
    checked_in = datetime(2026, 11, 27, 15, 0, 40, tzinfo=UTC)
    typed = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert clinical.taken_at_problem(typed, typed + timedelta(minutes=1), checked_in) is None
    assert clinical.taken_at_problem(typed - timedelta(seconds=1), typed, checked_in) == (
        "The time taken cannot be before the patient was checked in."
    )


# --- tiers 2 and 3 ---------------------------------------------------------------------------

TIERS = [
    # field, value, expected level, message
    ("systolic", 180, "critical", "SBP 180 ≥ 180"),
    ("systolic", 179, "abnormal", "SBP 179 > 160"),
    ("systolic", 161, "abnormal", "SBP 161 > 160"),
    ("systolic", 160, None, None),
    ("systolic", 100, None, None),
    ("systolic", 99, "abnormal", "SBP 99 < 100"),
    ("systolic", 91, "abnormal", "SBP 91 < 100"),
    ("systolic", 90, "critical", "SBP 90 ≤ 90"),
    ("diastolic", 110, "critical", "DBP 110 ≥ 110"),
    ("diastolic", 109, "abnormal", "DBP 109 > 100"),
    ("diastolic", 100, None, None),
    ("diastolic", 50, None, None),
    ("diastolic", 49, "abnormal", "DBP 49 < 50"),
    ("heart_rate", 120, "critical", "HR 120 ≥ 120"),
    ("heart_rate", 119, "abnormal", "HR 119 > 100"),
    ("heart_rate", 100, None, None),
    ("heart_rate", 55, None, None),
    ("heart_rate", 54, "abnormal", "HR 54 < 55"),
    ("heart_rate", 51, "abnormal", "HR 51 < 55"),
    ("heart_rate", 50, "critical", "HR 50 ≤ 50"),
    ("spo2", 95, None, None),
    ("spo2", 94, "abnormal", "SpO2 94 < 95"),
    ("spo2", 92, "abnormal", "SpO2 92 < 95"),
    ("spo2", 91, "critical", "SpO2 91 < 92"),
    ("resp_rate", 25, "critical", "RR 25 > 24"),
    ("resp_rate", 24, "abnormal", "RR 24 > 20"),
    ("resp_rate", 20, None, None),
    ("resp_rate", 12, None, None),
    ("resp_rate", 11, "abnormal", "RR 11 < 12"),
    ("resp_rate", 10, "abnormal", "RR 10 < 12"),
    ("resp_rate", 9, "critical", "RR 9 < 10"),
    ("temperature_c", 38.0, None, None),
    ("temperature_c", 38.1, "abnormal", "Temp 38.1 > 38"),
    ("temperature_c", 36.0, None, None),
    ("temperature_c", 35.9, "abnormal", "Temp 35.9 < 36"),
    ("moaas", 5, None, None),
    ("moaas", 3, None, None),
    ("moaas", 2, "critical", "MOAA/S 2 ≤ 2"),
    ("moaas", 0, "critical", "MOAA/S 0 ≤ 2"),
    ("rhythm", "nsr", None, None),
    ("rhythm", "sinus_arrhythmia", None, None),
    ("rhythm", "artifact", None, None),
    ("rhythm", "vt", "critical", "Ventricular tachycardia"),
    ("rhythm", "af", "critical", "Atrial fibrillation, new onset"),
    ("rhythm", "svt", "abnormal", "SVT"),
    ("rhythm", "pvcs", "abnormal", "PVCs"),
    ("rhythm", "sinus_tach", "abnormal", "Sinus tachycardia"),
    ("avpu", "A", None, None),
    ("avpu", "V", "abnormal", "AVPU V (responds to voice)"),
    ("avpu", "P", "critical", "AVPU P (responds to pain only)"),
    ("avpu", "U", "critical", "AVPU U (unresponsive)"),
]


@pytest.mark.parametrize(("field", "value", "level", "message"), TIERS)
def test_tiers(field, value, level, message):
    result = clinical.assess_reading({field: value}, LIMITS)
    assert result.field_level(field) == level
    assert result.severity == (level or "normal")
    assert [f.message for f in result.flags] == ([message] if message else [])


def test_af_present_at_baseline_is_abnormal_not_critical():
    result = clinical.assess_reading({"rhythm": "af"}, LIMITS, baseline_rhythm="af")
    assert result.severity == "abnormal"
    assert result.flags[0].message == "Atrial fibrillation (present at baseline)"
    new = clinical.assess_reading({"rhythm": "af"}, LIMITS, baseline_rhythm="nsr")
    assert new.severity == "critical"


def test_vt_is_critical_even_with_vt_at_baseline():
    result = clinical.assess_reading({"rhythm": "vt"}, LIMITS, baseline_rhythm="vt")
    assert result.severity == "critical"


def test_the_worst_flag_sets_the_severity_and_each_field_keeps_its_level():
    result = clinical.assess_reading(
        {"systolic": 150, "diastolic": 105, "heart_rate": 125, "spo2": 98}, LIMITS
    )
    assert result.severity == "critical"
    assert result.field_level("heart_rate") == "critical"
    assert result.field_level("diastolic") == "abnormal"
    assert result.field_level("systolic") is None
    assert result.flags[0].to_dict() == {
        "field": "diastolic",
        "level": "abnormal",
        "message": "DBP 105 > 100",
    }


def test_protocol_limits_replace_the_defaults():
    strict = Limits.from_dict({"critical_sbp_high": 150, "normal_sbp_high": 140})
    assert clinical.assess_reading({"systolic": 145}, strict).severity == "abnormal"
    result = clinical.assess_reading({"systolic": 150}, strict)
    assert result.flags[0].message == "SBP 150 ≥ 150"
    assert clinical.assess_reading({"systolic": 150}, LIMITS).severity == "normal"


DELTAS = [
    # field, baseline, value, flagged message (None = no delta flag)
    ("systolic", 120, 156, None),  # exactly 30 %: not "more than"
    ("systolic", 120, 157, "SBP 31 % above baseline 120"),
    ("systolic", 120, 162, "SBP 35 % above baseline 120"),
    ("heart_rate", 60, 78, None),
    ("heart_rate", 60, 79, "HR 32 % above baseline 60"),
]


@pytest.mark.parametrize(("field", "base", "value", "message"), DELTAS)
def test_rise_above_the_patients_own_baseline(field, base, value, message):
    result = clinical.assess_reading({field: value}, LIMITS, baseline={field: base})
    deltas = [f for f in result.flags if "baseline" in f.message]
    if message is None:
        assert deltas == []
    else:
        assert [(f.field, f.level, f.message) for f in deltas] == [(field, "abnormal", message)]
        assert result.severity in ("abnormal", "critical")


def test_delta_flags_a_reading_otherwise_within_normal_limits():
    result = clinical.assess_reading({"heart_rate": 90}, LIMITS, baseline={"heart_rate": 60})
    assert result.severity == "abnormal"
    assert result.flags[0].message == "HR 50 % above baseline 60"


def test_delta_percentage_comes_from_the_protocol():
    limits = Limits.from_dict({"delta_sbp_pct": 20})
    result = clinical.assess_reading({"systolic": 145}, limits, baseline={"systolic": 120})
    assert result.flags[0].message == "SBP 21 % above baseline 120"


def test_no_baseline_means_no_delta():
    assert clinical.assess_reading({"systolic": 150}, LIMITS, baseline={}).flags == []
    assert clinical.assess_reading({"systolic": 150}, LIMITS, baseline=None).flags == []


# --- NEWS2 -----------------------------------------------------------------------------------

HEALTHY = {
    "resp_rate": 16,
    "spo2": 97,
    "o2_flow_lpm": None,
    "systolic": 125,
    "heart_rate": 72,
    "avpu": "A",
    "temperature_c": 36.8,
}

NEWS2_BANDS = [
    # RCP 2017 NEWS2 chart, scale 1: each band's edges.
    ("resp_rate", 8, 3), ("resp_rate", 9, 1), ("resp_rate", 11, 1), ("resp_rate", 12, 0),
    ("resp_rate", 20, 0), ("resp_rate", 21, 2), ("resp_rate", 24, 2), ("resp_rate", 25, 3),
    ("spo2", 91, 3), ("spo2", 92, 2), ("spo2", 93, 2), ("spo2", 94, 1), ("spo2", 95, 1),
    ("spo2", 96, 0),
    ("o2_flow_lpm", 2, 2), ("o2_flow_lpm", 0, 0),
    ("systolic", 90, 3), ("systolic", 91, 2), ("systolic", 100, 2), ("systolic", 101, 1),
    ("systolic", 110, 1), ("systolic", 111, 0), ("systolic", 219, 0), ("systolic", 220, 3),
    ("heart_rate", 40, 3), ("heart_rate", 41, 1), ("heart_rate", 50, 1), ("heart_rate", 51, 0),
    ("heart_rate", 90, 0), ("heart_rate", 91, 1), ("heart_rate", 110, 1), ("heart_rate", 111, 2),
    ("heart_rate", 130, 2), ("heart_rate", 131, 3),
    ("avpu", "A", 0), ("avpu", "V", 3), ("avpu", "P", 3), ("avpu", "U", 3),
    ("temperature_c", 35.0, 3), ("temperature_c", 35.1, 1), ("temperature_c", 36.0, 1),
    ("temperature_c", 36.1, 0), ("temperature_c", 38.0, 0), ("temperature_c", 38.1, 1),
    ("temperature_c", 39.0, 1), ("temperature_c", 39.1, 2),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "score"), NEWS2_BANDS)
def test_news2_bands(field, value, score):
    assert clinical.news2({**HEALTHY, field: value}) == score


def test_news2_worked_examples():
    # Well adult: every parameter in its 0 band.
    assert clinical.news2(HEALTHY) == 0
    # Deteriorating: RR 23 (2), SpO2 93 (2) on oxygen (2), SBP 105 (1), HR 115 (2), Alert (0),
    # temperature 38.6 (1) = 10 -> high clinical risk.
    sick = {
        "resp_rate": 23,
        "spo2": 93,
        "o2_flow_lpm": 2,
        "systolic": 105,
        "heart_rate": 115,
        "avpu": "A",
        "temperature_c": 38.6,
    }
    assert clinical.news2(sick) == 10
    assert clinical.news2_risk(10, False) == "high"
    # A single red score (new voice response) with an otherwise normal set: 3, low-medium.
    parts = clinical.news2_parts({**HEALTHY, "avpu": "V"})
    assert sum(parts.values()) == 3 and max(parts.values()) == 3
    assert clinical.news2_risk(3, True) == "low-medium"


def test_news2_needs_the_core_vitals_and_scores_missing_temperature_as_zero():
    assert clinical.news2({"systolic": 120, "heart_rate": 80}) is None
    partial = {k: v for k, v in HEALTHY.items() if k not in ("temperature_c", "avpu")}
    assert clinical.news2(partial) == 0


@pytest.mark.parametrize(
    ("score", "red", "risk"),
    [
        (0, False, "low"),
        (4, False, "low"),
        (3, True, "low-medium"),
        (4, True, "low-medium"),
        (5, False, "medium"),
        (6, True, "medium"),
        (7, False, "high"),
        (12, True, "high"),
    ],
)
def test_news2_risk_bands(score, red, risk):
    assert clinical.news2_risk(score, red) == risk


# --- dose ------------------------------------------------------------------------------------


def test_dose_arithmetic_at_one_mg_per_ml():
    d = clinical.dose(70, 0.5, 40, 1)
    assert (d.total_mg, d.mg_per_h, d.ml_per_h, d.volume_ml) == (35, 52.5, 52.5, 35)
    assert d.mg_per_kg_per_h == 0.75


def test_dose_arithmetic_at_ten_mg_per_ml():
    d = clinical.dose(70, 0.5, 40, 10)
    assert d.total_mg == 35 and d.mg_per_h == 52.5
    assert d.ml_per_h == 5.25 and d.volume_ml == 3.5


@pytest.mark.parametrize(
    "args", [(0, 0.5, 40, 1), (70, 0, 40, 1), (70, 0.5, 0, 1), (70, 0.5, 40, 0)]
)
def test_dose_refuses_zero_inputs(args):
    with pytest.raises(ValueError):
        clinical.dose(*args)


def test_dose_above_protocol_maximum():
    assert clinical.dose_problem(100, 100) is None
    assert clinical.dose_problem(100.5, 100) == (
        "Total dose 100.5 mg is above the protocol maximum of 100 mg."
    )


# --- state machine ---------------------------------------------------------------------------

ALL_STATUSES = [
    "planned",
    "checked_in",
    "infusing",
    "paused",
    "recovery",
    "stopped_early",
    "discharged",
    "cancelled",
]
ALLOWED = {
    ("check_in", "planned"): "checked_in",
    ("start", "checked_in"): "infusing",
    ("pause", "infusing"): "paused",
    ("resume", "paused"): "infusing",
    ("stop", "infusing"): "recovery",
    ("stop", "paused"): "recovery",
    ("stop_early", "infusing"): "stopped_early",
    ("stop_early", "paused"): "stopped_early",
    ("discharge", "recovery"): "discharged",
    ("discharge", "stopped_early"): "discharged",
    ("cancel", "planned"): "cancelled",
    ("cancel", "checked_in"): "cancelled",
}


@pytest.mark.parametrize("action", list(clinical.TRANSITIONS))
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_transition_allowed_or_refused(action, status):
    if (action, status) in ALLOWED:
        assert clinical.next_status(status, action) == ALLOWED[(action, status)]
        assert action in clinical.allowed_actions(status)
    else:
        with pytest.raises(clinical.TransitionRefused) as refused:
            clinical.next_status(status, action)
        assert clinical.ACTION_LABELS[action] in str(refused.value)
        assert status.replace("_", " ") in str(refused.value)
        assert action not in clinical.allowed_actions(status)


def test_final_states_allow_nothing_and_unknown_actions_are_refused():
    assert clinical.allowed_actions("discharged") == []
    assert clinical.allowed_actions("cancelled") == []
    assert clinical.allowed_actions("infusing") == ["pause", "stop", "stop_early"]
    with pytest.raises(clinical.TransitionRefused, match="Unknown action"):
        clinical.next_status("planned", "teleport")
    assert set(clinical.ACTION_LABELS) == set(clinical.TRANSITIONS)
    assert clinical.ACTION_LABELS["start"] == "Start infusion"


# --- start gate ------------------------------------------------------------------------------

CHECKLIST = {
    "consent_on_file": True,
    "npo_confirmed": True,
    "escort_name": "Sam Driver",
    "pregnancy_status": "not_applicable",
    "med_allergy_review_done": True,
    "weight_kg": 70.0,
}
GOOD_BASELINE = {"systolic": 130, "diastolic": 80, "heart_rate": 75, "spo2": 98}


def gate(checklist=CHECKLIST, baseline=GOOD_BASELINE, age_min=10, limits=LIMITS):
    taken = None if baseline is None else NOW - timedelta(minutes=age_min)
    return clinical.start_gate_problems(checklist, baseline, taken, NOW, limits)


def test_start_gate_passes_with_everything_done():
    assert gate() == []
    assert gate(age_min=30) == []


@pytest.mark.parametrize(
    ("key", "blank"),
    [
        ("consent_on_file", False),
        ("npo_confirmed", False),
        ("escort_name", "  "),
        ("pregnancy_status", ""),
        ("med_allergy_review_done", False),
        ("weight_kg", None),
    ],
)
def test_start_gate_names_each_missing_checklist_item(key, blank):
    label = dict(clinical.CHECKLIST_ITEMS)[key]
    assert gate(checklist={**CHECKLIST, key: blank}) == [f"Checklist: {label} — not done."]


def test_start_gate_refuses_positive_pregnancy():
    assert gate(checklist={**CHECKLIST, "pregnancy_status": "positive"}) == [
        "Checklist: pregnancy status is positive."
    ]


def test_start_gate_needs_a_recent_baseline():
    assert gate(baseline=None) == ["No baseline reading yet: take one before starting."]
    assert gate(age_min=31) == [
        "The baseline reading is 31 minutes old: take a new one (it must be within 30 minutes)."
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"systolic": 160}, None),
        ({"systolic": 161}, "Baseline systolic BP 161 mmHg is above the start limit of 160 mmHg."),
        ({"diastolic": 100}, None),
        (
            {"diastolic": 101},
            "Baseline diastolic BP 101 mmHg is above the start limit of 100 mmHg.",
        ),
        ({"heart_rate": 110}, None),
        ({"heart_rate": 111}, "Baseline heart rate 111 bpm is above the start limit of 110 bpm."),
        ({"heart_rate": 50}, None),
        ({"heart_rate": 49}, "Baseline heart rate 49 bpm is below the start limit of 50 bpm."),
        ({"spo2": 94}, None),
        ({"spo2": 93}, "Baseline SpO2 93 % is below the start limit of 94 %."),
        ({"diastolic": None}, "Baseline diastolic BP not recorded."),
    ],
)
def test_start_gate_baseline_limits(change, problem):
    assert gate(baseline={**GOOD_BASELINE, **change}) == ([problem] if problem else [])


def test_start_gate_uses_the_protocols_start_limits():
    limits = Limits.from_dict({"start_sbp_max": 140})
    assert gate(baseline={**GOOD_BASELINE, "systolic": 145}, limits=limits) == [
        "Baseline systolic BP 145 mmHg is above the start limit of 140 mmHg."
    ]


# --- Aldrete ---------------------------------------------------------------------------------


def test_aldrete_items_are_the_modified_score():
    assert list(clinical.ALDRETE_ITEMS) == [
        "activity",
        "respiration",
        "circulation",
        "consciousness",
        "spo2",
    ]
    for _label, choices in clinical.ALDRETE_ITEMS.values():
        assert sorted(choices) == [0, 1, 2]
    assert clinical.ALDRETE_DISCHARGE_MIN == 9


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (
            {"systolic": 144, "avpu": "A", "spo2": 97},
            {"circulation": 2, "consciousness": 2, "spo2": 2},
        ),
        ({"systolic": 96}, {"circulation": 2}),  # exactly 20 % below
        ({"systolic": 145}, {"circulation": 1}),  # just over 20 % above
        ({"systolic": 179}, {"circulation": 1}),  # 49 %
        ({"systolic": 180}, {"circulation": 0}),  # 50 %
        ({"systolic": 60}, {"circulation": 0}),  # 50 % below
        ({"avpu": "V"}, {"consciousness": 1}),
        ({"avpu": "P"}, {"consciousness": 0}),
        ({"avpu": "U"}, {"consciousness": 0}),
        ({"spo2": 93, "o2_flow_lpm": 0}, {"spo2": 2}),
        ({"spo2": 92}, {"spo2": 1}),
        ({"spo2": 97, "o2_flow_lpm": 2}, {"spo2": 1}),
        ({"spo2": 91, "o2_flow_lpm": 2}, {"spo2": 1}),
        ({"spo2": 90, "o2_flow_lpm": 4}, {"spo2": 0}),
        ({"heart_rate": 80}, {}),
    ],
)
def test_aldrete_prefill(last, expected):
    assert clinical.aldrete_prefill(last, {"systolic": 120}) == expected


def test_aldrete_prefill_without_readings_or_baseline():
    assert clinical.aldrete_prefill(None, {"systolic": 120}) == {}
    assert clinical.aldrete_prefill({"systolic": 130, "avpu": "A"}, None) == {"consciousness": 2}


def test_aldrete_total():
    items = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 1, "spo2": 2}
    assert clinical.aldrete_total(items) == 9
    assert clinical.aldrete_total({**items, "consciousness": 0, "spo2": 1}) == 7
    with pytest.raises(ValueError):
        clinical.aldrete_total({k: v for k, v in items.items() if k != "activity"})
    with pytest.raises(ValueError):
        clinical.aldrete_total({**items, "spo2": 3})


# --- schedule --------------------------------------------------------------------------------


def test_reading_due_and_overdue():
    last = NOW - timedelta(minutes=5)
    assert clinical.reading_due(last, 5, NOW) == (NOW, False)
    assert clinical.reading_due(last, 5, NOW + timedelta(seconds=1)) == (NOW, True)
    assert clinical.reading_due(last, 15, NOW) == (NOW + timedelta(minutes=10), False)
    assert clinical.reading_due(None, 5, NOW) == (NOW, False)


# --- outcome scores --------------------------------------------------------------------------


def test_phq9_total():
    assert clinical.phq9_total([0] * 9) == 0
    assert clinical.phq9_total([3] * 9) == 27
    assert clinical.phq9_total([1, 2, 3, 0, 1, 2, 3, 0, 1]) == 13


@pytest.mark.parametrize(
    "items",
    [
        [1] * 8,
        [1] * 10,
        [1] * 8 + [4],
        [1] * 8 + [-1],
        [1] * 8 + [1.5],
        [1] * 8 + [True],
        [1] * 8 + [None],
    ],
)
def test_phq9_invalid_items(items):
    with pytest.raises(ValueError, match="nine answers"):
        clinical.phq9_total(items)


SCORE_RANGES = [
    ("phq9", "PHQ-9", 27),
    ("gad7", "GAD-7", 21),
    ("madrs", "MADRS", 60),
    ("pain_nrs", "Pain NRS", 10),
    ("cadss", "CADSS", 92),
    ("cssrs", "C-SSRS screen", 3),
]


@pytest.mark.parametrize(("instrument", "label", "high"), SCORE_RANGES)
def test_score_ranges_per_instrument(instrument, label, high):
    message = f"{label} score must be between 0 and {high}."
    assert clinical.score_problem(instrument, 0) is None
    assert clinical.score_problem(instrument, high) is None
    assert clinical.score_problem(instrument, -1) == message
    assert clinical.score_problem(instrument, high + 1) == message
    assert clinical.score_problem(instrument, 1.5) == f"{label} score must be a whole number."
    assert clinical.score_problem(instrument, None) == f"{label} score must be a whole number."


def test_score_problem_unknown_instrument():
    assert clinical.score_problem("beck", 3) == "Choose an instrument from the list."


OUTCOMES = [
    (None, [(1, 4)], "no baseline PHQ-9", "unknown"),
    (21, [], "no PHQ-9 since baseline 21", "unknown"),
    (21, [(1, 18)], "no response yet (PHQ-9 18, 14 % below baseline 21)", "none"),
    (21, [(1, 23)], "no response yet (PHQ-9 23, 10 % above baseline 21)", "none"),
    (21, [(2, 15), (3, 11)], "no response yet (PHQ-9 11, 48 % below baseline 21)", "none"),
    (21, [(2, 15), (3, 12), (4, 9), (5, 10)],
     "response since infusion 4 (PHQ-9 10, 52 % below baseline 21)", "response"),
    (21, [(2, 8), (3, 12), (4, 9)],
     "response since infusion 4 (PHQ-9 9, 57 % below baseline 21)", "response"),
    (20, [(3, 10)], "response since infusion 3 (PHQ-9 10, 50 % below baseline 20)", "response"),
    (21, [(3, 12), (4, 9), (5, 4)], "remission since infusion 5 (PHQ-9 4)", "remission"),
    (21, [(4, 3), (5, 6), (6, 2), (None, 4)], "remission since infusion 6 (PHQ-9 4)",
     "remission"),
    (21, [(None, 4)], "remission (PHQ-9 4)", "remission"),
    (21, [(5, 5)], "response since infusion 5 (PHQ-9 5, 76 % below baseline 21)", "response"),
]  # fmt: skip


@pytest.mark.parametrize(("baseline", "series", "words", "kind"), OUTCOMES)
def test_outcome_status_wording(baseline, series, words, kind):
    assert clinical.outcome_status(baseline, series) == words
    assert clinical.outcome_kind(baseline, series) == kind


def test_planned_reached_is_the_planned_minutes_within_a_minute_of_grace():
    assert not clinical.planned_reached(38.9, 40)
    assert clinical.planned_reached(39.0, 40)
    assert clinical.planned_reached(41, 40)
    assert clinical.ended_short(38.9, 40) and not clinical.ended_short(39.0, 40)
