"""`flask seed-demo` builds a believable clinic through the services."""

import sqlalchemy as sa

from infusion_tracker import audit
from infusion_tracker.extensions import db
from infusion_tracker.models import (
    AdverseEvent,
    Assessment,
    InfusionSession,
    Patient,
    Protocol,
    Reading,
    Staff,
)


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_seed_demo_builds_the_clinic_and_prints_logins(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    for username in ("office", "drpatel", "jroe", "mchen"):
        assert username in result.output
    roles = set(db.session.scalars(sa.select(Staff.role)))
    assert roles == {"admin", "physician", "np", "pa"}
    assert count(Patient) == 50
    assert count(Protocol) == 2
    assert count(InfusionSession, InfusionSession.status == "discharged") >= 40
    in_progress = ("infusing", "paused", "recovery", "stopped_early")
    assert count(InfusionSession, InfusionSession.status.in_(in_progress)) == 2
    assert count(InfusionSession, InfusionSession.status == "planned") == 2
    assert count(InfusionSession, InfusionSession.signed_at.is_not(None)) >= 30
    # Ketamine raises BP: some readings are flagged, and there is at least one adverse event.
    assert count(Reading, Reading.severity == "abnormal") > 0
    assert count(Reading) > 500
    assert count(AdverseEvent) >= 1
    assert count(Assessment, Assessment.instrument == "phq9") > 50
    assert audit.verify_chain().ok


def test_seed_demo_refuses_a_database_with_patients(runner, make_patient):
    make_patient()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "already holds patients" in result.output
