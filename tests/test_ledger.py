"""The controlled-substance ledger's rules, on the real services and database."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from infusion_tracker.errors import RuleError
from infusion_tracker.extensions import db
from infusion_tracker.ledger import services
from infusion_tracker.models import InfusionEvent, LedgerDiscrepancy, LedgerEntry, LedgerVial
from infusion_tracker.timeutil import clinic_today, utcnow
from tests.conftest import PASSWORD, audit_rows


@pytest.fixture
def staff(make_staff):
    return {
        "np": make_staff("np", username="nina"),
        "pa": make_staff("pa", username="paul"),
        "md": make_staff("physician", username="drmd"),
        "admin": make_staff("admin", username="boss"),
    }


def receive(actor, quantity=1, strength=50.0, volume=10.0, expiry=None):
    return services.receive_vials(
        actor=actor,
        quantity=quantity,
        drug="ketamine",
        strength_mg_per_ml=strength,
        volume_ml=volume,
        lot="LOT42",
        expiry=expiry or clinic_today() + timedelta(days=365),
        supplier="Hikma",
        invoice_number="DEA-222-0001",
    )


def run_pump(infusion, actor, minutes=40, rate=52.5, stop_after=None):
    """Events as the lifecycle writes them: start at `rate` mg/h, stop after some minutes."""
    start = utcnow() - timedelta(minutes=minutes + 5)
    ran = stop_after if stop_after is not None else minutes
    db.session.add_all([
        InfusionEvent(infusion_id=infusion.id, kind="start", occurred_at=start,
                      rate_mg_per_h=rate, recorded_by_id=actor.id),
        InfusionEvent(infusion_id=infusion.id, kind="stop",
                      occurred_at=start + timedelta(minutes=ran), recorded_by_id=actor.id),
    ])
    infusion.status = "recovery"
    infusion.started_at = start
    infusion.ended_at = start + timedelta(minutes=ran)
    db.session.commit()
    db.session.refresh(infusion)


@pytest.fixture
def session(make_infusion, staff):
    # 70 kg × 0.5 mg/kg = 35 mg over 40 min → 52.5 mg/h
    return make_infusion(clinician=staff["np"], physician=staff["md"], status="checked_in",
                         weight_kg=70.0, dose_mg_per_kg=0.5, total_mg=35.0, duration_min=40)


def test_receipt_makes_one_vial_each_with_its_balance_and_audit(staff):
    vials = receive(staff["np"], quantity=3)
    db.session.commit()
    assert [services.vial_balance(v) for v in vials] == [500_000] * 3
    assert len(audit_rows("ledger.received")) == 3


def test_admins_see_reports_but_cannot_draw_or_receive(staff, session):
    vial = receive(staff["np"])[0]
    with pytest.raises(RuleError, match="administrators"):
        services.draw(session, vial, staff["admin"], 35, 100)
    with pytest.raises(RuleError, match="administrators"):
        receive(staff["admin"])


def test_draw_never_takes_a_vial_below_zero(staff, session):
    vial = receive(staff["np"], volume=0.5)[0]  # 25 mg
    with pytest.raises(RuleError, match="holds 25.0 mg") as refused:
        services.draw(session, vial, staff["np"], 35, 100)
    assert refused.value.field == "amount_mg"
    services.draw(session, vial, staff["np"], 25, 100)
    assert services.vial_balance(vial) == 0


def test_an_expired_vial_cannot_be_drawn(staff, session):
    # Received long ago and expired since (written directly: receipt refuses an expired lot).
    vial = LedgerVial(strength_mg_per_ml=50, volume_ml=10, lot="OLD", supplier="S",
                      invoice_number="I", expiry=clinic_today() - timedelta(days=1),
                      received_by_id=staff["np"].id, received_at=utcnow() - timedelta(days=400))
    db.session.add(vial)
    db.session.flush()
    db.session.add(LedgerEntry(vial_id=vial.id, kind="receipt", amount_mcg=500_000,
                               occurred_at=vial.received_at, recorded_by_id=staff["np"].id))
    with pytest.raises(RuleError, match="expired"):
        services.draw(session, vial, staff["np"], 35, 100)


def test_session_balances_draw_give_waste(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    given = services.record_given(session, staff["np"])
    assert given.amount_mcg == 35_000
    assert services.ledger_problem(session) == (
        "Drawn 40.0 mg − given 35.0 mg − wasted 0.0 mg leaves 5.0 mg unaccounted for."
    )
    services.waste_remainder(session, staff["np"], 5, "paul", PASSWORD)
    assert services.session_totals(session.id).in_hand == 0
    assert services.ledger_problem(session) is None
    assert services.vial_balance(vial) == 460_000


def test_given_follows_the_pump_when_stopped_early(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 35, 100)
    run_pump(session, staff["np"], stop_after=20)
    assert services.record_given(session, staff["np"]).amount_mcg == 17_500


def test_the_remainder_is_wasted_only_after_the_given_is_recorded(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    with pytest.raises(RuleError, match="Record the amount given first"):
        services.waste_remainder(session, staff["np"], 5, "paul", PASSWORD)


def test_witness_cannot_be_the_waster(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    services.record_given(session, staff["np"])
    with pytest.raises(RuleError, match="not you") as refused:
        services.waste_remainder(session, staff["np"], 5, "nina", PASSWORD)
    assert refused.value.field == "witness_username"


def test_witness_password_is_checked_and_counts_toward_their_lockout(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    services.record_given(session, staff["np"])
    with pytest.raises(RuleError, match="not the witness's password") as refused:
        services.waste_remainder(session, staff["np"], 5, "paul", "not it")
    assert refused.value.field == "witness_password"
    assert staff["pa"].failed_logins == 1
    assert services.session_totals(session.id).wasted == 0


def test_an_admin_cannot_witness(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    services.record_given(session, staff["np"])
    with pytest.raises(RuleError, match="must be an active"):
        services.waste_remainder(session, staff["np"], 5, "boss", PASSWORD)


def test_waste_cannot_exceed_what_is_in_hand(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    services.record_given(session, staff["np"])
    with pytest.raises(RuleError, match="Only 5.0 mg"):
        services.waste_remainder(session, staff["np"], 6, "paul", PASSWORD)


def test_expired_vial_is_wasted_whole_with_a_witness(staff):
    vial = receive(staff["np"])[0]
    entry = services.waste_vial(vial, staff["np"], "expired", "drmd", PASSWORD)
    assert entry.amount_mcg == 500_000 and entry.witness_id == staff["md"].id
    assert services.vial_balance(vial) == 0
    with pytest.raises(RuleError, match="already empty"):
        services.waste_vial(vial, staff["np"], "broken", "drmd", PASSWORD)


def test_a_correction_keeps_both_entries_and_only_the_newest_counts(staff, session):
    vial = receive(staff["np"])[0]
    first = services.draw(session, vial, staff["np"], 30, 100)
    fixed = services.correct_entry(first, staff["np"], 35, "Typed 30, drew 35")
    db.session.commit()
    entries = db.session.scalars(
        sa.select(LedgerEntry).where(LedgerEntry.kind == "draw").order_by(LedgerEntry.id)
    ).all()
    assert [(e.amount_mcg, e.corrects_id) for e in entries] == [(30_000, None), (35_000, first.id)]
    assert services.vial_balance(vial) == 465_000
    assert services.session_totals(session.id).drawn == 35_000
    # As the session page's dose panel works them out, from the entries it lists.
    assert services.totals_of(entries) == services.session_totals(session.id)
    with pytest.raises(RuleError, match="already corrected"):
        services.correct_entry(first, staff["np"], 20, "again")
    assert fixed.id and audit_rows("ledger.corrected")[0].details["previous_mcg"] == 30_000


def test_a_correction_cannot_take_a_vial_below_zero(staff, session):
    vial = receive(staff["np"], volume=1)[0]  # 50 mg
    first = services.draw(session, vial, staff["np"], 30, 100)
    with pytest.raises(RuleError, match="below zero"):
        services.correct_entry(first, staff["np"], 60, "more")


def test_a_receipt_cannot_be_corrected_above_the_vials_label(staff):
    vial = receive(staff["np"])[0]
    receipt = db.session.scalar(sa.select(LedgerEntry).where(LedgerEntry.vial_id == vial.id))
    with pytest.raises(RuleError, match="at most 500.0 mg"):
        services.correct_entry(receipt, staff["np"], 600, "Typed wrong")
    services.correct_entry(receipt, staff["np"], 0, "Arrived broken; supplier credit")
    assert services.vial_balance(vial) == 0 and services.verify_ledger() == []


def test_count_mismatch_opens_a_discrepancy_until_a_physician_resolves_it(staff):
    good, short = receive(staff["np"], quantity=2)
    count = services.record_count(
        staff["np"], {good.id: 10.0, short.id: 9.5}, "paul", PASSWORD
    )
    assert [line.matches for line in count.lines] == [True, False]
    (open_one,) = services.open_discrepancies()
    assert open_one.vial_id == short.id and open_one.difference_mcg == -25_000
    with pytest.raises(RuleError, match="physician or an administrator"):
        services.resolve_discrepancy(open_one, staff["np"], "found it")
    with pytest.raises(RuleError, match="reason"):
        services.resolve_discrepancy(open_one, staff["md"], "  ")
    services.resolve_discrepancy(open_one, staff["admin"], "Spilled when opening; reported")
    assert services.open_discrepancies() == []


def test_a_count_needs_every_vial_and_a_second_counter(staff):
    vial = receive(staff["np"])[0]
    with pytest.raises(RuleError, match=vial.label):
        services.record_count(staff["np"], {}, "paul", PASSWORD)
    with pytest.raises(RuleError, match="not you"):
        services.record_count(staff["np"], {vial.id: 10.0}, "nina", PASSWORD)


def test_unreconciled_session_blocks_signing_until_a_physician_explains(staff, session):
    vial = receive(staff["np"])[0]
    services.draw(session, vial, staff["np"], 40, 100)
    run_pump(session, staff["np"])
    services.record_given(session, staff["np"])
    assert "unaccounted" in services.ledger_problem(session)
    with pytest.raises(RuleError, match="Only a physician"):
        services.explain_session(session, staff["np"], "bag leaked")
    services.explain_session(session, staff["md"], "Bag leaked at the spike; 5 mg lost")
    assert services.ledger_problem(session) is None
    explained = db.session.scalar(sa.select(LedgerDiscrepancy))
    assert explained.infusion_id == session.id and not explained.is_open


def test_no_draw_for_a_session_that_ran_is_a_problem(staff, session):
    run_pump(session, staff["np"])
    assert services.ledger_problem(session) == (
        "The pump gave 35.0 mg but no draw from the ledger is recorded."
    )


def test_no_draw_for_a_running_infusion_is_a_problem_in_words_the_clock_does_not_move(
    staff, session
):
    """Its amount grows each second; the session page's panel says it, kept apart (live.py)."""
    start = utcnow() - timedelta(minutes=10)
    db.session.add(InfusionEvent(infusion_id=session.id, kind="start", occurred_at=start,
                                 rate_mg_per_h=52.5, recorded_by_id=staff["np"].id))
    session.status, session.started_at = "infusing", start
    db.session.commit()
    assert services.ledger_problem(session) == (
        "The infusion has started but no draw from the ledger is recorded."
    )


def test_verify_ledger_finds_a_negative_balance(staff, session):
    vial = receive(staff["np"], volume=1)[0]
    assert services.verify_ledger() == []
    # Written around the services, as a tampered database would be.
    db.session.add(LedgerEntry(vial_id=vial.id, kind="vial_waste", amount_mcg=60_000,
                               occurred_at=utcnow(), recorded_by_id=staff["np"].id))
    db.session.commit()
    assert services.verify_ledger() == ["V-00001: balance -10.0 mg is below zero."]


def test_verify_ledger_command(runner, staff):
    receive(staff["np"])
    db.session.commit()
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 0 and "Ledger OK" in result.output


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entry SET amount_mcg = 1", "DELETE FROM ledger_entry",
    "UPDATE ledger_vial SET lot = 'x'", "DELETE FROM ledger_vial",
])
def test_the_database_refuses_edits_to_entries_and_vials(staff, statement):
    receive(staff["np"])
    db.session.commit()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        db.session.execute(sa.text(statement))
    db.session.rollback()


def test_running_balances_keep_only_what_was_committed(app, staff):
    """A page view keeps every vial's balance for the next (issue 8); a write that has added
    an entry it may yet roll back sees its own entry but leaves the kept balances alone."""
    (vial,) = receive(staff["np"])
    db.session.commit()

    def viewed():
        with app.test_request_context():  # a page view
            balances = services.running_balances()
            db.session.rollback()
        return balances

    assert viewed() == {vial.id: vial.content_mcg}
    with app.test_request_context(method="POST"):
        services.waste_vial(vial, staff["np"], "broken", "paul", PASSWORD)
        assert services.running_balances() == {vial.id: 0}
        db.session.rollback()  # refused after all
    services.waste_vial(vial, staff["np"], "broken", "paul", PASSWORD)
    db.session.commit()
    assert viewed() == {vial.id: 0} == services.vial_balances()
