"""The quality report's stored per-session figures: filled on the first report and at signing,
read instead of the readings after that, never used once the session has changed, and
checked by `flask quality-figures --verify`."""

import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.infusions.readings import void_reading
from infusion_tracker.models import InfusionSession, Reading, SessionFigures, Staff
from infusion_tracker.quality import services
from tests.conftest import VITALS, run_session
from tests.test_quality import SPECS, seeded  # noqa: F401 (the fixture)


def stored() -> dict[int, SessionFigures]:
    db.session.expire_all()
    return {row.infusion_id: row for row in db.session.scalars(sa.select(SessionFigures))}


def rises(period) -> dict:
    return {(r.protocol, r.infusion_number): (r.sessions, r.median, r.highest)
            for r in services.peak_rise(period)}


def test_first_report_stores_every_sessions_figures_and_the_next_reads_them(
        seeded, count_queries):  # noqa: F811
    assert stored() == {}
    with count_queries() as first:
        report = services.quality_report(seeded)
    figures = stored()
    assert set(figures) == {s["id"] for s in SPECS}
    versions = dict(
        db.session.execute(sa.select(InfusionSession.id, InfusionSession.version)).all())
    assert all(row.version == versions[infusion_id] for infusion_id, row in figures.items())
    p2 = next(s for s in SPECS if s["patient"] == "p2" and s["number"] == 1)
    assert (figures[p2["id"]].peak_systolic, figures[p2["id"]].baseline_systolic) == (185, 120)

    with count_queries() as second:
        again = services.quality_report(seeded)
    # Seven SELECTs each time; the first also stores the figures (one statement), the second
    # finds them all current and writes nothing.
    writes = [s for s in first.statements if s.lstrip().upper().startswith("INSERT")]
    assert len(writes) == 1 and "session_figures" in writes[0]
    assert not [s for s in second.statements if not s.lstrip().upper().startswith("SELECT")]
    assert len(second.statements) == 7
    assert again.peak_rise == report.peak_rise and again.reading_gaps == report.reading_gaps


def test_a_changed_session_is_computed_again_never_read_stale(seeded):  # noqa: F811
    before = rises(seeded)  # stores the figures
    p5 = next(s for s in SPECS if s["patient"] == "p5")
    old_version = stored()[p5["id"]].version
    # Void p5's peak reading (182): its rise falls to the next highest, 3 mmHg.
    peak = db.session.scalar(sa.select(Reading).where(Reading.infusion_id == p5["id"],
                                                      Reading.systolic == 182))
    void_reading(peak, db.session.get(Staff, peak.recorded_by_id), "Cuff on the wrong arm")
    db.session.commit()

    after = rises(seeded)
    assert after[(services.CLINIC, "1")][2] == before[(services.CLINIC, "1")][2]  # p2's 65 stays
    p5_row = stored()[p5["id"]]
    assert p5_row.version > old_version and p5_row.peak_systolic == p5["base"] + 3
    assert after != before


def test_signing_stores_the_signed_version(make_infusion):
    infusion = run_session(make_infusion(), "signed", started_minutes_ago=180)
    row = stored()[infusion.id]
    db.session.refresh(infusion)
    assert row.version == infusion.version
    assert row.baseline_systolic == VITALS["systolic"]


def test_cli_fills_and_verifies(runner, seeded):  # noqa: F811
    result = runner.invoke(args=["quality-figures"])
    assert result.exit_code == 0, result.output
    assert f"Stored the figures of {len(SPECS)} sessions" in result.output
    assert set(stored()) == {s["id"] for s in SPECS}
    db.session.rollback()  # the command's schema check opens its own connection
    result = runner.invoke(args=["quality-figures", "--verify"])
    assert result.exit_code == 0 and f"{len(SPECS)} sessions' stored figures match" in (
        result.output)

    # A stored row edited behind the app's back (same version, wrong figure) is caught.
    victim = SPECS[0]["id"]
    db.session.execute(sa.update(SessionFigures).where(SessionFigures.infusion_id == victim)
                       .values(overdue=SessionFigures.overdue + 1))
    db.session.commit()
    result = runner.invoke(args=["quality-figures", "--verify"])
    assert result.exit_code == 1 and str(victim) in result.output
