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


def test_seed_demo_is_clinically_believable(app):
    from infusion_tracker.demo import PAIN_INDICATIONS, WEIGHT_DRIFT_KG, seed_demo
    from infusion_tracker.protocols.services import DEFAULT_PROTOCOL, PAIN_PROTOCOL

    seed_demo()
    db.session.commit()
    weights: dict[int, list[float]] = {}
    pain_sessions = 0
    for infusion in db.session.scalars(sa.select(InfusionSession)):
        pain = infusion.patient.indication in PAIN_INDICATIONS
        pain_sessions += pain
        # Fibromyalgia, CRPS and small-fiber neuropathy run on the pain protocol, never the
        # depression one (and the other way round).
        expected = PAIN_PROTOCOL if pain else DEFAULT_PROTOCOL
        assert infusion.protocol.name == expected["name"], infusion.patient.indication
        weights.setdefault(infusion.patient_id, []).append(infusion.weight_kg)
    assert pain_sessions >= 5
    assert sum(len(series) > 1 for series in weights.values()) >= 15
    for series in weights.values():
        # A kg or two across a series, not 30 % in three weeks.
        assert max(series) - min(series) <= 2 * WEIGHT_DRIFT_KG
