"""seed-demo fills a ledger (ledger.demo.seed_ledger) that balances everywhere, so the demo
physician can sign every finished session."""

import sqlalchemy as sa

from infusion_tracker.demo import seed_demo
from infusion_tracker.extensions import db
from infusion_tracker.ledger import services
from infusion_tracker.models import InfusionSession, LedgerCount, LedgerEntry


def test_demo_ledger_balances_and_every_finished_session_reconciles(app, client, login_as):
    seed_demo(2026)
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
