"""The patient page's history: the series table (worst flag, adverse events, PHQ-9 before,
peak BP/HR rise), the outcome status and charts, and a query count that does not grow
with the number of sessions, readings or scores."""

import html
import random
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from infusion_tracker.extensions import db
from infusion_tracker.infusions import guards
from infusion_tracker.models import AdverseEvent, Assessment, Reading
from infusion_tracker.patients import history
from infusion_tracker.timeutil import utcnow
from tests.conftest import sqlite_plan


@pytest.fixture
def chart(make_staff):
    """Add readings, adverse events and scores the way the services leave them: each a new
    version of its session (guards.touch)."""
    nurse = make_staff("np", full_name="Nia Nurse", credentials="APRN")

    def reading(
        infusion, phase, at, systolic=None, heart_rate=None, severity="normal", voided=False
    ):
        row = Reading(
            infusion_id=infusion.id,
            taken_at=at,
            phase=phase,
            systolic=systolic,
            diastolic=70 if systolic else None,
            heart_rate=heart_rate,
            severity=severity,
            recorded_by_id=nurse.id,
            voided_at=utcnow() if voided else None,
            void_reason="error" if voided else "",
        )
        db.session.add(row)
        guards.touch(infusion, nurse.id)
        return row

    def adverse_event(infusion, event_type, at, voided=False):
        db.session.add(
            AdverseEvent(
                infusion_id=infusion.id,
                onset_at=at,
                event_type=event_type,
                severity="mild",
                recorded_by_id=nurse.id,
                voided_at=utcnow() if voided else None,
            )
        )
        guards.touch(infusion, nurse.id)

    def score(patient, instrument, value, at, infusion=None, voided=False):
        row = Assessment(
            patient_id=patient.id,
            infusion_id=infusion.id if infusion else None,
            instrument=instrument,
            score=value,
            taken_at=at,
            recorded_by_id=nurse.id,
            voided_at=utcnow() if voided else None,
        )
        db.session.add(row)
        if infusion is not None:
            guards.touch(infusion, nurse.id)
        return row

    chart.reading, chart.adverse_event, chart.score, chart.nurse = (
        reading,
        adverse_event,
        score,
        nurse,
    )
    return chart


@pytest.fixture
def series(make_patient, make_protocol, make_infusion, make_staff, chart):
    """Two sessions: #1 signed with an abnormal surge, #2 infusing with a critical one."""
    patient = make_patient()
    protocol = make_protocol()
    physician = make_staff("physician", full_name="Ada Park", credentials="MD")
    t1 = utcnow() - timedelta(days=7)
    t2 = utcnow() - timedelta(minutes=30)
    first = make_infusion(
        patient=patient,
        protocol=protocol,
        clinician=chart.nurse,
        physician=physician,
        status="discharged",
        started_at=t1,
        scheduled_for=t1,
        signed_at=t1 + timedelta(hours=3),
        signed_by=physician,
        total_mg=35.0,
    )
    second = make_infusion(
        patient=patient,
        protocol=protocol,
        clinician=chart.nurse,
        physician=physician,
        status="infusing",
        started_at=t2,
        scheduled_for=t2,
        total_mg=36.5,
    )
    # Session 1: the later baseline counts; the voided spike and the discharge reading do not.
    chart.reading(first, "baseline", t1 - timedelta(minutes=20), 150, 95)
    chart.reading(first, "baseline", t1 - timedelta(minutes=5), 130, 80)
    chart.reading(first, "infusion", t1 + timedelta(minutes=10), 175, 110, "abnormal")
    chart.reading(first, "infusion", t1 + timedelta(minutes=15), 230, 150, "critical", voided=True)
    chart.reading(first, "recovery", t1 + timedelta(minutes=50), 160, 95)
    chart.reading(first, "discharge", t1 + timedelta(minutes=90), 199, 130)
    chart.reading(first, "baseline", t1 - timedelta(minutes=1), 210, 140, voided=True)
    chart.adverse_event(first, "hypertension", t1 + timedelta(minutes=12))
    chart.adverse_event(first, "nausea", t1 + timedelta(minutes=20), voided=True)
    # Session 2.
    chart.reading(second, "baseline", t2 - timedelta(minutes=10), 120, 70)
    chart.reading(second, "infusion", t2 + timedelta(minutes=5), 185, 125, "critical")
    # Scores: a voided one first, then the real baseline the morning of infusion 1.
    chart.score(patient, "phq9", 25, t1 - timedelta(days=10), voided=True)
    chart.score(patient, "phq9", 20, t1 - timedelta(hours=3))
    chart.score(patient, "gad7", 15, t1 - timedelta(hours=3))
    chart.score(patient, "phq9", 9, t2 - timedelta(minutes=20), infusion=second)
    chart.score(patient, "phq9", 2, t2 - timedelta(minutes=15), infusion=second, voided=True)
    chart.score(patient, "pain_nrs", 3, t2 - timedelta(minutes=15), infusion=second)
    db.session.commit()
    return patient, first, second


def test_series_figures(series):
    patient, first, second = series
    result = history.patient_history(patient)
    one, two = result.rows
    assert (one.worst, one.sbp_rise, one.hr_rise) == ("abnormal", 45, 30)
    assert one.adverse_events == ["Hypertension"]
    assert one.phq9_before.score == 20
    assert (two.worst, two.sbp_rise, two.hr_rise) == ("critical", 65, 55)
    assert two.phq9_before.score == 9
    assert result.baseline_phq9.score == 20
    assert result.status.startswith("response since infusion 2")
    assert result.status_kind == "response"


def test_the_patient_page_shows_the_series_and_outcomes(client, login_as, series):
    login_as("np")
    patient, first, second = series
    page = html.unescape(client.get(f"/patients/{patient.id}").get_data(as_text=True))
    rows = page.split('<table class="series-table">')[1].split("</table>")[0].split("<tr")[2:]
    first_row, second_row = rows
    for text in (
        f'href="/infusions/{first.id}">1</a>',
        first.protocol.label,
        ">35<",
        "Nia Nurse, APRN",
        "Discharged",
        "Signed",
        "Ada Park, MD",
        "Abnormal",
        "Hypertension",
        ">20<",
        "+45 mmHg",
        "+30 bpm",
    ):
        assert text in first_row, text
    assert "Nausea" not in first_row
    for text in ("Infusing", "Not yet", "Critical", "None", ">9<", "+65 mmHg<br>+55 bpm", ">36.5<"):
        assert text in second_row, text
    assert 'class="row--critical"' in rows[1].split(">")[0]

    assert "response since infusion 2" in page
    assert "baseline PHQ-9 20" in page
    # Both charts, as accessible SVG, with the scores as a table beside them.
    assert page.count('role="img"') == 2
    assert "Baseline PHQ-9 20" in page and "Response ≤ 10" in page and "Remission < 5" in page
    assert "Peak systolic BP rise (mmHg)" in page
    scores_table = page.split('<table class="scores-table">')[1]
    assert scores_table.count("<tr id=") == 6
    assert scores_table.count('class="voided"') == 2


def test_the_series_and_score_rows_escape_what_staff_typed(
    client, login_as, make_patient, make_protocol, make_infusion, make_staff
):
    """The rows are written in Python (patients/history_cells): every text in them is
    escaped, as the template escaped it."""
    login_as("np")
    patient = make_patient()
    clinician = make_staff("np", full_name="Nia <b>Nurse</b>")
    make_infusion(patient=patient, protocol=make_protocol(name="K & <i>slow</i>"),
                  clinician=clinician)
    db.session.add(Assessment(patient_id=patient.id, instrument="gad7", score=8, taken_at=utcnow(),
                              recorded_by=clinician, voided_at=utcnow(), voided_by=clinician,
                              void_reason="wrong <script>x</script> patient"))
    db.session.commit()
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    for typed in ("<b>Nurse</b>", "<i>slow</i>", "<script>x</script>"):
        assert typed not in page, typed
    series_table = page.split('<table class="series-table">')[1].split("</table>")[0]
    assert "Nia &lt;b&gt;Nurse&lt;/b&gt;, APRN" in series_table
    assert "K &amp; &lt;i&gt;slow&lt;/i&gt;" in series_table
    scores_table = page.split('<table class="scores-table">')[1].split("</table>")[0]
    assert "wrong &lt;script&gt;x&lt;/script&gt; patient" in scores_table
    assert "by Nia &lt;b&gt;Nurse&lt;/b&gt;, APRN" in scores_table


def patient_charts(client, patient) -> tuple[str, str]:
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    return tuple(
        page[page.rindex("<svg", 0, page.index(f"chart-svg--{kind}")) :].split("</svg>")[0]
        for kind in ("outcome", "peak")
    )


def test_the_memoised_patient_charts_are_never_stale(app, client, login_as, series, chart):
    """Both charts are memoised on the values they draw (issue 8). Viewed again, the page
    gives the same charts; after a new score, a voided score and a new surge, the charts on
    the page are the ones drawn afresh."""
    login_as("np")
    patient, first, second = series

    def fresh():
        history._outcome_svg.cache_clear()
        history._peak_svg.cache_clear()
        return patient_charts(client, patient)

    shown = patient_charts(client, patient)
    assert patient_charts(client, patient) == shown == fresh()
    seen = [shown]
    score = chart.score(patient, "phq9", 4, utcnow() - timedelta(minutes=5), infusion=second)
    db.session.commit()
    seen.append(patient_charts(client, patient))
    score.voided_at = utcnow()
    db.session.commit()
    seen.append(patient_charts(client, patient))
    chart.reading(second, "recovery", utcnow() - timedelta(minutes=2), 200, 140, "critical")
    db.session.commit()
    seen.append(patient_charts(client, patient))
    assert seen[-1] == fresh()
    outcome, peak = zip(*seen, strict=True)
    # The score, then its void, moved the outcome chart (back to the first); the surge the peak.
    assert outcome[0] != outcome[1] and outcome[2] == outcome[3] == outcome[0]
    assert peak[0] == peak[1] == peak[2] != peak[3]


def test_remission_status_in_words(client, login_as, make_patient, make_infusion, chart):
    login_as("pa")
    patient = make_patient()
    infusion = make_infusion(
        patient=patient, status="discharged", started_at=utcnow() - timedelta(days=1)
    )
    chart.score(patient, "phq9", 18, utcnow() - timedelta(days=20))
    chart.score(patient, "phq9", 4, utcnow() - timedelta(hours=2), infusion=infusion)
    db.session.commit()
    page = html.unescape(client.get(f"/patients/{patient.id}").get_data(as_text=True))
    assert "Remission</span> remission since infusion 1 (PHQ-9 4)" in page


def test_page_without_history_and_the_plan_button(client, login_as, make_patient):
    login_as("np")
    patient = make_patient()
    page = client.get(f"/patients/{patient.id}").get_data(as_text=True)
    assert f'href="/patients/{patient.id}/infusions/new">Plan a session</a>' in page
    assert "No sessions yet." in page and "no baseline PHQ-9" in page
    assert 'role="img"' not in page


def build_series(make_patient, make_infusion, make_protocol, chart, sessions):
    patient = make_patient()
    protocol = make_protocol(name=f"Protocol for {patient.last_name}")
    start = utcnow() - timedelta(days=7 * sessions)
    chart.score(patient, "phq9", 21, start - timedelta(days=1))
    for n in range(sessions):
        at = start + timedelta(days=7 * n)
        infusion = make_infusion(
            patient=patient, protocol=protocol, status="discharged", started_at=at, scheduled_for=at
        )
        chart.reading(infusion, "baseline", at - timedelta(minutes=5), 128, 76)
        for minute in range(0, 40, 5):
            chart.reading(infusion, "infusion", at + timedelta(minutes=minute), 130 + minute, 80)
        chart.reading(infusion, "recovery", at + timedelta(minutes=55), 135, 78, "abnormal")
        chart.adverse_event(infusion, "nausea", at + timedelta(minutes=20))
        chart.score(patient, "phq9", 20 - n, at - timedelta(minutes=30), infusion=infusion)
        chart.score(patient, "gad7", 12, at - timedelta(minutes=30), infusion=infusion)
    db.session.commit()
    return patient


def test_query_count_does_not_grow_with_the_history(
    client, login_as, make_patient, make_infusion, make_protocol, chart, count_queries
):
    small = build_series(make_patient, make_infusion, make_protocol, chart, sessions=2)
    large = build_series(make_patient, make_infusion, make_protocol, chart, sessions=6)
    small_url, large_url = f"/patients/{small.id}", f"/patients/{large.id}"
    login_as("np")
    client.get("/patients/")  # warm up: first-request work is not the page's
    with count_queries() as two:
        assert client.get(small_url).status_code == 200
    with count_queries() as six:
        assert client.get(large_url).status_code == 200
    assert two.count == six.count, "\n".join(six.statements)
    # Pinned (transaction control not counted): the signed-in user, the page's fingerprint
    # (patients/page.py), the patient, the audit row (last hash, insert), sessions, reading
    # aggregates, baselines, adverse events, scores. A change here should be deliberate.
    assert six.count == 10, (six.count, six.statements)
    # Shown again with nothing changed: the page drawn before, found by the fingerprint.
    with count_queries() as again:
        assert client.get(large_url).status_code == 200
    assert again.count == 4, (again.count, again.statements)


def test_each_sessions_figures_are_read_from_an_index_alone(app):
    """The worst flag and peaks of every session (a first view of the patient page) come from
    ix_reading_figures without visiting the table, where each of a long-standing patient's
    readings lies on a page of its own (SQLite's plan; the partial index is PostgreSQL's too)."""
    compiled = history._READING_STATS.params(patient_id=1).compile(
        db.engine, compile_kwargs={"render_postcompile": True}
    )
    plan = sqlite_plan(compiled, compiled.construct_params())
    assert "SEARCH reading USING COVERING INDEX ix_reading_figures (infusion_id=?)" in plan, plan


def test_phq9_before_pairs_as_the_rule_says_on_many_random_series():
    """The pairing (a lookup and a binary search per session) against the rule read literally:
    of the PHQ-9s linked to the session or unlinked within the day before its start, the one
    taken last (ties: the one entered last)."""
    rng = random.Random(9)
    origin = datetime(2026, 1, 5, 9, 0)

    def literal(infusion, phq9s):
        start = history.session_start(infusion)
        window = [
            score
            for score in phq9s
            if score.infusion_id == infusion.id
            or (score.infusion_id is None and start - timedelta(days=1) <= score.taken_at <= start)
        ]
        return window[-1] if window else None

    for _ in range(300):
        sessions = [
            SimpleNamespace(
                id=number,
                started_at=origin + timedelta(hours=rng.randrange(0, 24 * 20)),
                scheduled_for=None,
            )
            for number in range(1, rng.randrange(2, 9))
        ]
        if rng.random() < 0.3:  # not started yet: paired by its planned time
            sessions[0].scheduled_for, sessions[0].started_at = sessions[0].started_at, None
        phq9s = sorted(
            (
                SimpleNamespace(
                    infusion_id=rng.choice([None, None, *[s.id for s in sessions]]),
                    taken_at=origin + timedelta(hours=rng.randrange(0, 24 * 21)),
                )
                for _ in range(rng.randrange(0, 12))
            ),
            key=lambda score: score.taken_at,
        )
        pairing = history.Phq9Pairing(phq9s)
        for infusion in sessions:
            assert pairing.before(infusion) is literal(infusion, phq9s)
