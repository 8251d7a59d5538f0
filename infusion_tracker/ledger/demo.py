"""`seed_ledger`: a believable controlled-substance ledger for the demo clinic's sessions.

It writes history, so it dates each entry at the clinical moment (the draw before the start,
the give and the witnessed waste after the stop) and writes the rows directly, audited, rather
than through the services that refuse signed sessions and stamp the present time.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

import sqlalchemy as sa

from ..extensions import db
from ..models import InfusionSession, LedgerEntry, LedgerVial, Staff
from ..timeutil import utcnow
from . import services

STRENGTH, VOLUME = 50.0, 10.0  # ketamine 50 mg/mL × 10 mL: 500 mg a vial
BOX = 10
LOW_STOCK_MCG = 2_500_000  # half a box: time to reorder


def _receive(
    actor: Staff, at, rng: random.Random, expiry_days: int = 540, count: int = BOX
) -> list[LedgerVial]:
    lot = f"KET{rng.randrange(10000, 99999)}"
    invoice = f"DEA222-{rng.randrange(100000, 999999)}"
    vials = []
    for _ in range(count):
        vial = LedgerVial(drug="ketamine", strength_mg_per_ml=STRENGTH, volume_ml=VOLUME, lot=lot,
                          expiry=(at + timedelta(days=expiry_days)).date(),
                          supplier="Hikma Pharmaceuticals", invoice_number=invoice,
                          received_by_id=actor.id, received_at=at)
        db.session.add(vial)
        db.session.flush()
        services._add(LedgerEntry(vial_id=vial.id, kind="receipt", amount_mcg=vial.content_mcg,
                                  occurred_at=at, recorded_by_id=actor.id,
                                  note=f"Invoice/form {invoice}"),
                      "ledger.received", lot=lot, invoice=invoice)
        vials.append(vial)
    return vials


def _waste_dregs(vial: LedgerVial, stock: dict[int, int], infusion: InfusionSession,
                 clinicians: list[Staff]) -> None:
    """Too little left for a dose: wasted whole, witnessed, before the next vial is opened."""
    if stock[vial.id] <= 0:
        return
    actor = infusion.clinician
    witness = next(s for s in clinicians if s.id != actor.id)
    services._add(LedgerEntry(vial_id=vial.id, kind="vial_waste", amount_mcg=stock[vial.id],
                              waste_reason="other", witness_id=witness.id,
                              note="Too little left for a dose",
                              occurred_at=infusion.started_at - timedelta(minutes=14),
                              recorded_by_id=actor.id), "ledger.vial_wasted")
    stock[vial.id] = 0


def seed_ledger(staff: dict[str, Staff], rng: random.Random, password: str) -> None:
    """Receipts, a draw for every started session, the pump's dose given and the remainder
    wasted with a second clinician; one expired vial wasted, and today's count (`password`
    is the demo accounts' password: the second counter confirms with it)."""
    sessions = db.session.scalars(
        sa.select(InfusionSession)
        .where(InfusionSession.started_at.is_not(None))
        .order_by(InfusionSession.started_at)
    ).all()
    if not sessions:
        return
    clinicians = [s for s in staff.values() if s.is_clinician]
    first = sessions[0].started_at - timedelta(days=2)
    # A vial from an old lot, expired on the shelf and wasted in front of a witness.
    (old,) = _receive(clinicians[0], first - timedelta(days=400), rng, expiry_days=390, count=1)
    services._add(LedgerEntry(vial_id=old.id, kind="vial_waste", amount_mcg=old.content_mcg,
                              waste_reason="expired", witness_id=clinicians[1].id,
                              occurred_at=first, recorded_by_id=clinicians[0].id,
                              note="Found expired at the monthly check"), "ledger.vial_wasted")
    shelf = _receive(clinicians[0], first, rng)
    stock = {vial.id: vial.content_mcg for vial in shelf}
    for infusion in sessions:
        # Whole milligrams, never less than the order: the rest is wasted after the stop.
        drawn = services.mcg(math.ceil(infusion.total_mg or 35.0))
        while not shelf or stock[shelf[0].id] < drawn:
            if shelf:
                _waste_dregs(shelf.pop(0), stock, infusion, clinicians)
            if not shelf:
                shelf = _receive(clinicians[0], infusion.started_at - timedelta(days=1), rng)
                stock.update({v.id: v.content_mcg for v in shelf})
        vial = shelf[0]
        actor = infusion.clinician
        witness = next(s for s in clinicians if s.id != actor.id)
        stock[vial.id] -= drawn
        services._add(LedgerEntry(vial_id=vial.id, infusion_id=infusion.id, infusion=infusion,
                                  kind="draw", amount_mcg=drawn, diluted_volume_ml=100.0,
                                  occurred_at=infusion.started_at - timedelta(minutes=12),
                                  recorded_by_id=actor.id), "ledger.drawn")
        if infusion.ended_at is None:
            continue  # still running: given and wasted once it stops
        given = services.mcg(services.pump_mg_given(infusion, infusion.ended_at))
        services._add(LedgerEntry(vial_id=vial.id, infusion_id=infusion.id, infusion=infusion,
                                  kind="give", amount_mcg=given, occurred_at=infusion.ended_at,
                                  recorded_by_id=actor.id,
                                  note="From the pump's events and rates"), "ledger.given")
        if drawn > given:
            services._add(LedgerEntry(vial_id=vial.id, infusion_id=infusion.id,
                                      infusion=infusion, kind="waste", amount_mcg=drawn - given,
                                      witness_id=witness.id,
                                      occurred_at=infusion.ended_at + timedelta(minutes=4),
                                      recorded_by_id=actor.id), "ledger.wasted")
    # The clinic reorders when the safe runs low: a box arrived two days ago.
    if sum(stock.get(vial.id, 0) for vial in shelf) < LOW_STOCK_MCG:
        _receive(clinicians[0], utcnow() - timedelta(days=2), rng)
    # Today's end-of-day count by two clinicians: it matches.
    counted = {vial.id: balance / 1000 / vial.strength_mg_per_ml
               for vial, balance in services.vials_in_safe()}
    services.record_count(clinicians[0], counted, clinicians[1].username, password,
                          note="End-of-day count")
