"""The quality report's figures against the same figures computed here, independently, from
the seeded sessions; its query count does not grow with the data."""

import statistics
from datetime import timedelta

import pytest

from infusion_tracker.extensions import db
from infusion_tracker.models import (
    AdverseEvent,
    Assessment,
    InfusionEvent,
    InfusionSession,
    Reading,
)
from infusion_tracker.quality import services
from infusion_tracker.timeutil import clinic_today, utcnow

WEIGHT = 80.0
TOTAL_MG = 40.0  # 0.5 mg/kg × 80 kg over 40 min → 60 mg/h


def spec(patient, protocol, number, *, base=120, peak=150, critical=None, ae=None,
         early=False, gaps=(5, 10, 15, 20, 25, 30, 35, 40)):
    return dict(patient=patient, protocol=protocol, number=number, base=base, peak=peak,
                critical=critical, ae=ae, early=early, gaps=gaps)


SPECS = [
    # Protocol A: six patients; p1 reaches a sixth infusion.
    *[spec("p1", "A", n, base=120, peak=140 + n) for n in range(1, 7)],
    spec("p2", "A", 1, critical="systolic", peak=185, ae=("hypertension", "moderate", 20)),
    spec("p2", "A", 2, ae=("nausea", "mild", 30), early=True, gaps=(5, 10, 22, 30)),
    spec("p3", "A", 1, critical="spo2", ae=("hypertension", "moderate", 10)),
    spec("p4", "A", 1, peak=131),
    spec("p5", "A", 1, critical="systolic", peak=182),
    spec("p6", "A", 1, gaps=(5, 12, 20)),
    # Protocol B: two patients.
    spec("p7", "B", 1, ae=("nausea", "mild", 40)),
    spec("p8", "B", 1, critical="heart_rate", early=True),
]
# Patient -> PHQ-9 scores oldest first (the first is the baseline), with the infusion number.
PHQ9 = {
    "p1": [(None, 20), (3, 14), (6, 8), (6, 4)],
    "p2": [(None, 18), (2, 12)],
    "p3": [(None, 16), (1, 7)],
}


@pytest.fixture
def seeded(make_staff, make_patient, make_protocol):
    nurse = make_staff("np")
    physician = make_staff("physician")
    protocols = {"A": make_protocol(name="Depression A"), "B": make_protocol(name="Pain B")}
    patients = {}
    day0 = utcnow() - timedelta(days=30)
    for index, s in enumerate(SPECS):
        patient = patients.get(s["patient"]) or make_patient()
        patients[s["patient"]] = patient
        start = day0 + timedelta(days=index)
        ran = 30 if s["early"] else 40
        infusion = InfusionSession(
            patient_id=patient.id, series_number=s["number"],
            protocol_id=protocols[s["protocol"]].id,
            status="discharged", scheduled_for=start, clinician_id=nurse.id,
            physician_id=physician.id, indication="trd", weight_kg=WEIGHT,
            concentration_mg_per_ml=1.0, dose_mg_per_kg=0.5, total_mg=TOTAL_MG, duration_min=40,
            started_at=start, ended_at=start + timedelta(minutes=ran),
        )
        db.session.add(infusion)
        db.session.flush()
        s["id"] = infusion.id
        db.session.add_all([
            InfusionEvent(infusion_id=infusion.id, kind="start", occurred_at=start,
                          rate_mg_per_h=60.0, recorded_by_id=nurse.id),
            InfusionEvent(infusion_id=infusion.id, kind="stop",
                          occurred_at=start + timedelta(minutes=ran),
                          reason="Adverse event" if s["early"] else "", recorded_by_id=nurse.id),
            Reading(infusion_id=infusion.id, taken_at=start - timedelta(minutes=10),
                    phase="baseline", systolic=s["base"] + 5, recorded_by_id=nurse.id),
            Reading(infusion_id=infusion.id, taken_at=start - timedelta(minutes=2),
                    phase="baseline", systolic=s["base"], recorded_by_id=nurse.id),
        ])
        for i, minute in enumerate(s["gaps"]):
            peak_here = i == len(s["gaps"]) // 2
            flags = []
            if peak_here and s["critical"]:
                flags = [{"field": s["critical"], "level": "critical", "message": "x"}]
            db.session.add(Reading(
                infusion_id=infusion.id, taken_at=start + timedelta(minutes=minute),
                phase="infusion", systolic=s["peak"] if peak_here else s["base"] + 3,
                severity="critical" if flags else "normal", flags=flags,
                recorded_by_id=nurse.id))
        # A voided critical reading never counts.
        db.session.add(Reading(infusion_id=infusion.id, taken_at=start + timedelta(minutes=1),
                               phase="infusion", systolic=250, severity="critical",
                               flags=[{"field": "diastolic", "level": "critical"}],
                               voided_at=start, void_reason="wrong patient",
                               recorded_by_id=nurse.id))
        if s["ae"]:
            kind, severity, minute = s["ae"]
            db.session.add(AdverseEvent(infusion_id=infusion.id, event_type=kind,
                                        severity=severity,
                                        onset_at=start + timedelta(minutes=minute),
                                        recorded_by_id=nurse.id))
    numbers = {(s["patient"], s["number"]): s["id"] for s in SPECS}
    for key, scores in PHQ9.items():
        for offset, (number, score) in enumerate(scores):
            db.session.add(Assessment(
                patient_id=patients[key].id, instrument="phq9", score=score,
                infusion_id=numbers[(key, number)] if number else None,
                taken_at=day0 - timedelta(days=5) + timedelta(days=offset * 3),
                recorded_by_id=nurse.id))
    db.session.commit()
    return services.Period(clinic_today() - timedelta(days=60), clinic_today())


def by_protocol(protocol):
    return [s for s in SPECS if protocol is None or s["protocol"] == protocol]


def test_summary(seeded):
    rows = {r.protocol: r for r in services.summary(seeded)}
    for name, key in ((services.CLINIC, None), ("Depression A", "A"), ("Pain B", "B")):
        chosen = by_protocol(key)
        row = rows[name]
        assert row.sessions == len(chosen)
        assert row.patients == len({s["patient"] for s in chosen})
        assert row.stopped_early == sum(s["early"] for s in chosen)
        assert row.completed == len(chosen) - row.stopped_early
    assert rows["Pain B"].few and not rows[services.CLINIC].few


def test_adverse_events_per_100_and_dose_at_onset(seeded):
    report = services.quality_report(seeded)
    found = {(r.protocol, r.event_type, r.severity): r for r in report.adverse_events}
    for name, key in ((services.CLINIC, None), ("Depression A", "A"), ("Pain B", "B")):
        chosen = by_protocol(key)
        for kind, severity in {s["ae"][:2] for s in chosen if s["ae"]}:
            hits = [s for s in chosen if s["ae"] and s["ae"][:2] == (kind, severity)]
            row = found[(name, kind, severity)]
            assert row.events == len(hits)
            assert row.per_100 == round(100 * len(hits) / len(chosen), 1)
            # 60 mg/h for the minutes to onset, per kg.
            doses = [60 * s["ae"][2] / 60 / WEIGHT for s in hits]
            assert row.median_mg_per_kg == round(statistics.median(doses), 2)
            assert row.patients == len({s["patient"] for s in hits})


def test_share_of_sessions_with_a_critical_reading(seeded):
    report = services.quality_report(seeded)
    found = {(r.protocol, r.vital): r for r in report.critical_readings}
    assert (services.CLINIC, "diastolic") not in found  # only voided readings had it
    clinic_systolic = found[(services.CLINIC, "systolic")]
    assert clinic_systolic.sessions_with == sum(s["critical"] == "systolic" for s in SPECS)
    assert clinic_systolic.share == round(100 * 2 / len(SPECS), 1)
    assert found[("Pain B", "heart_rate")].share == 50.0


def test_peak_rise_by_infusion_number(seeded):
    rows = {(r.protocol, r.infusion_number): r for r in services.peak_rise(seeded)}
    for name, key in ((services.CLINIC, None), ("Depression A", "A"), ("Pain B", "B")):
        for number in range(1, 7):
            rises = [s["peak"] - s["base"] for s in by_protocol(key)
                     if min(s["number"], 6) == number]
            label = "6+" if number == 6 else str(number)
            if not rises:
                assert (name, label) not in rows
                continue
            assert rows[(name, label)].sessions == len(rises)
            assert rows[(name, label)].median == statistics.median(rises)
            assert rows[(name, label)].highest == max(rises)


def test_reading_gaps_and_overdue_share(seeded):
    rows = {r.protocol: r for r in services.reading_gaps(seeded)}
    for name, key in ((services.CLINIC, None), ("Depression A", "A")):
        gaps = [b - a for s in by_protocol(key) for a, b in zip(s["gaps"], s["gaps"][1:],
                                                                  strict=False)]
        assert rows[name].gaps == len(gaps)
        assert rows[name].overdue == sum(g > 5 + 1 for g in gaps)  # 5-min interval + grace
        assert rows[name].mean_minutes == round(sum(gaps) / len(gaps), 1)


def test_outcomes_by_infusion_6_and_end_of_series(seeded):
    rows = {(r.protocol, r.instrument, r.when): r for r in services.outcomes(seeded)}
    assert rows[("Depression A", "phq9", "end of series")].patients == 3
    assert ("Pain B", "phq9", "end of series") not in rows  # nobody there has a PHQ-9 course
    rows = {(r.instrument, r.when): r for r in services.outcomes(seeded)
            if r.protocol == services.CLINIC}
    end = rows[("phq9", "end of series")]
    # p1 20 → 4 (response, remission); p2 18 → 12 (neither); p3 16 → 7 (response).
    assert (end.patients, end.responders, end.remitted) == (3, 2, 1)
    assert end.few
    by6 = rows[("phq9", "by infusion 6")]
    assert (by6.patients, by6.responders, by6.remitted) == (1, 1, 1)  # only p1 reached 6


def test_query_count_is_fixed(seeded, count_queries):
    """Seven set-based SELECTs for 15 sessions, as for 200,000: none per session or per row
    (summary 1, adverse events 2, critical readings 1, one pass over the readings for peak rise
    and intervals 1, outcomes 2)."""
    with count_queries() as counter:
        services.quality_report(seeded)
    selects = [s for s in counter.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 7


def test_page_and_csv(client, login_as, seeded):
    login_as("physician")
    page = client.get("/quality/").get_data(as_text=True)
    assert 'role="img"' in page and "<desc" in page and "fewer than 5 patients" in page
    assert "style=" not in page
    csv_text = client.get(
        f"/quality/adverse-events.csv?start={seeded.start}&end={seeded.end}"
    ).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("Protocol,Adverse event,Severity")
    assert "All protocols,Hypertension,Moderate,2," in csv_text
    assert client.get("/quality/nothing.csv").status_code == 404
