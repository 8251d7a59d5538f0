"""`seed_ledger` fills a ledger for the demo clinic that balances everywhere."""

import random

import sqlalchemy as sa

from infusion_tracker.demo import DEMO_PASSWORD, seed_demo
from infusion_tracker.extensions import db
from infusion_tracker.ledger import services
from infusion_tracker.ledger.demo import seed_ledger
from infusion_tracker.models import InfusionSession, LedgerCount, LedgerEntry, Staff


def test_demo_ledger_balances_and_every_finished_session_reconciles(app, client, login_as):
    seed_demo(2026)
    staff = {s.username: s for s in db.session.scalars(sa.select(Staff))}
    seed_ledger(staff, random.Random(1), DEMO_PASSWORD)
    db.session.commit()
    assert services.verify_ledger() == []
    sessions = db.session.scalars(
        sa.select(InfusionSession).where(InfusionSession.started_at.is_not(None))
    ).all()
    problems = {s.id: services.ledger_problem(s) for s in sessions}
    assert [p for p in problems.values() if p] == []
    kinds = set(db.session.scalars(sa.select(LedgerEntry.kind)))
    assert kinds == {"receipt", "draw", "give", "waste", "vial_waste"}
    (count,) = db.session.scalars(sa.select(LedgerCount)).all()
    assert all(line.matches for line in count.lines)
    login_as("physician")
    page = client.get("/quality/").get_data(as_text=True)
    assert "Depression" in page or "depression" in page
