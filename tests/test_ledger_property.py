"""Property: any sequence of receipts, draws, gives, wastes and corrections keeps every derived
balance (summed from the entries, and the worker's running sum) equal to an independent tally
of the accepted entries, never below zero, and every microgram received is in a vial, given,
wasted or still in hand."""

from datetime import timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infusion_tracker.errors import RuleError
from infusion_tracker.extensions import db
from infusion_tracker.ledger import services
from infusion_tracker.models import InfusionEvent, LedgerEntry
from infusion_tracker.timeutil import clinic_today, utcnow
from tests.conftest import PASSWORD, reset_schema

SESSIONS = 2
operation = st.one_of(
    st.tuples(st.just("receive"), st.sampled_from([0.5, 1.0, 2.0, 10.0])),
    st.tuples(st.just("draw"), st.integers(0, SESSIONS - 1), st.integers(0, 5),
              st.integers(1, 60)),
    st.tuples(st.just("finish"), st.integers(0, SESSIONS - 1)),
    st.tuples(st.just("give"), st.integers(0, SESSIONS - 1)),
    st.tuples(st.just("waste"), st.integers(0, SESSIONS - 1), st.integers(1, 30)),
    st.tuples(st.just("vial_waste"), st.integers(0, 5)),
    st.tuples(st.just("correct"), st.integers(0, 30), st.integers(0, 60)),
)


class Tally:
    """What the ledger must say, kept by the test from the entries it saw accepted."""

    def __init__(self):
        self.vial: dict[int, int] = {}
        self.in_hand: dict[int, int] = {}
        self.received = self.given = self.wasted = 0

    def apply(self, kind, vial_id, infusion_id, amount, sign=1):
        amount *= sign
        if kind == "receipt":
            self.received += amount
            self.vial[vial_id] = self.vial.get(vial_id, 0) + amount
        elif kind == "draw":
            self.vial[vial_id] -= amount
            self.in_hand[infusion_id] = self.in_hand.get(infusion_id, 0) + amount
        elif kind == "vial_waste":
            self.vial[vial_id] -= amount
            self.wasted += amount
        elif kind == "give":
            self.in_hand[infusion_id] -= amount
            self.given += amount
        elif kind == "waste":
            self.in_hand[infusion_id] -= amount
            self.wasted += amount


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(operation, max_size=14))
def test_any_sequence_keeps_the_ledger_whole(
    app, make_staff, make_protocol, make_infusion, operations
):
    db.session.remove()  # the previous example's transaction, so the schema can be rebuilt
    reset_schema()
    nurse = make_staff("np", username="nurse")
    make_staff("pa", username="witness")
    sessions = []
    protocol = make_protocol()
    for _ in range(SESSIONS):
        infusion = make_infusion(protocol=protocol, clinician=nurse, status="checked_in",
                                 weight_kg=70.0, dose_mg_per_kg=0.5, total_mg=35.0,
                                 duration_min=40)
        start = utcnow() - timedelta(hours=2)
        db.session.add_all([
            InfusionEvent(infusion_id=infusion.id, kind="start", occurred_at=start,
                          rate_mg_per_h=52.5, recorded_by_id=nurse.id),
            InfusionEvent(infusion_id=infusion.id, kind="stop",
                          occurred_at=start + timedelta(minutes=40), recorded_by_id=nurse.id),
        ])
        sessions.append(infusion)
    db.session.commit()
    vials, entries, tally = [], [], Tally()

    for op in operations:
        try:
            if op[0] == "receive":
                (vial,) = services.receive_vials(
                    actor=nurse, quantity=1, drug="ketamine", strength_mg_per_ml=50,
                    volume_ml=op[1], lot="L1", expiry=clinic_today() + timedelta(days=90),
                    supplier="S", invoice_number="I1",
                )
                vials.append(vial)
                new = [db.session.scalars(
                    sa.select(LedgerEntry).where(LedgerEntry.vial_id == vial.id)).one()]
            elif op[0] == "draw" and vials:
                vial = vials[op[2] % len(vials)]
                new = [services.draw(sessions[op[1]], vial, nurse, op[3], 100)]
            elif op[0] == "finish":
                sessions[op[1]].status = "recovery"
                sessions[op[1]].ended_at = utcnow() - timedelta(minutes=80)
                db.session.commit()
                continue
            elif op[0] == "give":
                new = [services.record_given(sessions[op[1]], nurse)]
            elif op[0] == "waste":
                new = [services.waste_remainder(sessions[op[1]], nurse, op[2], "witness",
                                                PASSWORD)]
            elif op[0] == "vial_waste" and vials:
                new = [services.waste_vial(vials[op[1] % len(vials)], nurse, "broken",
                                           "witness", PASSWORD)]
            elif op[0] == "correct" and entries:
                old = entries[op[1] % len(entries)]
                new = [services.correct_entry(old, nurse, op[2], "Recount", "witness", PASSWORD)]
                tally.apply(old.kind, old.vial_id, old.infusion_id, old.amount_mcg, sign=-1)
                entries.remove(old)
            else:
                continue
        except RuleError:
            db.session.rollback()  # a refusal leaves nothing behind
            continue
        db.session.commit()
        for entry in new:
            tally.apply(entry.kind, entry.vial_id, entry.infusion_id, entry.amount_mcg)
            entries.append(entry)

        balances = services.vial_balances()
        assert {v.id: balances.get(v.id, 0) for v in vials} == tally.vial
        # The worker's running sum: carried forward entry by entry, or summed afresh when the
        # database is another (each example rebuilds it), says the same.
        with app.test_request_context():  # a page view's
            running = services.running_balances()
            db.session.rollback()  # its read-only transaction ends with it
        assert {v.id: running.get(v.id, 0) for v in vials} == tally.vial
        assert all(balance >= 0 for balance in balances.values())
        for infusion in sessions:
            totals = services.session_totals(infusion.id)
            assert totals.in_hand == tally.in_hand.get(infusion.id, 0) >= 0
            # The session page's dose panel works them out from the entries it lists.
            listed = db.session.scalars(
                sa.select(LedgerEntry).where(LedgerEntry.infusion_id == infusion.id)
            )
            assert services.totals_of(listed) == totals
        assert tally.received == (
            sum(tally.vial.values()) + tally.given + tally.wasted + sum(tally.in_hand.values())
        )
        assert services.verify_ledger() == []
