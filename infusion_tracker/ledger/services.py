"""The controlled-substance ledger's rules (issue 11, in the shape of 21 CFR 1304.22).

Every milligram is an entry: a receipt puts a vial in the safe, a draw takes some out for a
session, the pump gives it, the remainder is wasted in front of a witness, and an expired or
broken vial is wasted whole. Balances are never stored: they are sums over the entries that
no later entry corrects (each worker keeps a running sum for the pages that list the safe,
running_balances). Amounts are whole micrograms so every sum is exact.

Services add, flush and audit; the caller commits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from werkzeug.security import check_password_hash

from .. import audit, unit_of_work
from ..auth.services import count_failed_password, find_staff
from ..errors import RuleError
from ..extensions import db
from ..infusions import guards
from ..infusions.queries import pump_run
from ..memo import app_kept
from ..models import (
    CLINICAL_ROLES,
    ROLE_ADMIN,
    ROLE_PHYSICIAN,
    VIAL_WASTE_REASONS,
    InfusionSession,
    LedgerCount,
    LedgerCountLine,
    LedgerDiscrepancy,
    LedgerEntry,
    LedgerVial,
    Staff,
)
from ..timeutil import clinic_today, utcnow

# How each kind moves the vial's balance and the session's drawn-but-not-yet-accounted amount.
VIAL_SIGN = {"receipt": 1, "draw": -1, "vial_waste": -1, "give": 0, "waste": 0}
SESSION_SIGN = {"receipt": 0, "draw": 1, "vial_waste": 0, "give": -1, "waste": -1}
DRAW_STATUSES = ("planned", "checked_in", "infusing", "paused")
FINISHED_STATUSES = ("recovery", "stopped_early", "discharged")
MAX_VIALS_PER_RECEIPT = 50
NOTE_MAX = 2000


def mcg(mg: float) -> int:
    return round(mg * 1000)


def mg_text(amount_mcg: int) -> str:
    """Micrograms as the ledger writes them: mg with one decimal, more when needed."""
    mg = amount_mcg / 1000
    text = f"{mg:.1f}" if amount_mcg % 100 == 0 else f"{mg:.3f}".rstrip("0")
    return f"{text} mg"


# --- Derived balances ---------------------------------------------------------------------------


def effective(upto: int | None = None):
    """Entries no later entry corrects: the ones that count (among the entries up to id
    `upto`, when given)."""
    correction = aliased(LedgerEntry)
    corrects = correction.corrects_id == LedgerEntry.id
    if upto is not None:
        corrects = sa.and_(corrects, correction.id <= upto)
    return ~sa.exists().where(corrects)


def _signed(signs: dict[str, int]):
    return sa.case(
        *((LedgerEntry.kind == kind, LedgerEntry.amount_mcg * sign)
          for kind, sign in signs.items()),
        else_=0,
    )


def vial_balances(
    vial_ids=None, at: datetime | None = None, upto: int | None = None
) -> dict[int, int]:
    """{vial id: micrograms in the vial}, from the entries (as of `at`, when given; counting
    the entries up to id `upto`, when given)."""
    query = (
        sa.select(LedgerEntry.vial_id, sa.func.sum(_signed(VIAL_SIGN)))
        .where(effective(upto))
        .group_by(LedgerEntry.vial_id)
    )
    if vial_ids is not None:
        query = query.where(LedgerEntry.vial_id.in_(list(vial_ids)))
    if at is not None:
        query = query.where(LedgerEntry.occurred_at <= at)
    if upto is not None:
        query = query.where(LedgerEntry.id <= upto)
    return {vial_id: int(total or 0) for vial_id, total in db.session.execute(query)}


# --- Balances kept by each worker -------------------------------------------------------------


@dataclass
class _Running:
    """Every vial's balance as of entry `upto` (its `stamp`: that entry's created_at), and the
    vials with something left in them, picked out once per change rather than per view."""

    upto: int = 0
    stamp: datetime | None = None
    by_vial: Mapping[int, int] = field(default_factory=dict)
    in_safe: Mapping[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_NEWEST = sa.select(LedgerEntry.id, LedgerEntry.created_at).order_by(LedgerEntry.id.desc()).limit(1)
_SINCE = (
    sa.select(
        LedgerEntry.id,
        LedgerEntry.vial_id,
        LedgerEntry.kind,
        LedgerEntry.amount_mcg,
        LedgerEntry.corrects_id,
    )
    .where(LedgerEntry.id > sa.bindparam("after"), LedgerEntry.id <= sa.bindparam("upto"))
    .order_by(LedgerEntry.id)
)
_CORRECTED = sa.select(
    LedgerEntry.id, LedgerEntry.vial_id, LedgerEntry.kind, LedgerEntry.amount_mcg
).where(LedgerEntry.id.in_(sa.bindparam("ids", expanding=True)))


def running_balances() -> Mapping[int, int]:
    """{vial id: micrograms} of every vial, as vial_balances() sums them, without summing the
    whole ledger on every page that lists the safe (the session page does, for its draw
    form: at `clinic` scale that sum cost 90 ms a view).

    Each worker keeps the balances as of an entry and adds the entries written since: the
    ledger only grows (a correction is a new entry, which takes its target's place), and
    entries commit in id order (_add), so the entries after the kept one are exactly what
    changed. The newest entry's time tells apart another history with as many entries (a
    restored backup): then, or when the ledger has fewer entries than kept, it sums afresh.
    Only a page view keeps them: a write may hold entries it has yet to commit or roll back."""
    return _balances()[0]


def newest_entry() -> tuple[int, datetime] | None:
    """The ledger's newest entry (id, created_at): a new one on any change to the ledger."""
    newest = db.session.execute(_NEWEST).first()
    return None if newest is None else tuple(newest)


def _balances() -> tuple[Mapping[int, int], Mapping[int, int]]:
    """(every vial's balance, the vials with something left): running_balances()."""
    if not unit_of_work.is_read_request():
        by_vial = vial_balances()
        return by_vial, _positive(by_vial)
    newest = db.session.execute(_NEWEST).first()
    if newest is None:
        return {}, {}
    running = app_kept("ledger_balances", _Running)
    with running.lock:
        if newest.id == running.upto and newest.created_at == running.stamp:
            return running.by_vial, running.in_safe
        if newest.id > running.upto and running.stamp is not None:
            by_vial = dict(running.by_vial)
            _add_entries(by_vial, running.upto, newest.id)
        else:
            by_vial = vial_balances(upto=newest.id)
        # Read-only: every view shares them until the next entry.
        running.by_vial = MappingProxyType(by_vial)
        running.in_safe = MappingProxyType(_positive(by_vial))
        running.upto, running.stamp = newest.id, newest.created_at
        return running.by_vial, running.in_safe


def _positive(by_vial: Mapping[int, int]) -> dict[int, int]:
    return {vial_id: balance for vial_id, balance in by_vial.items() if balance > 0}


def _add_entries(by_vial: dict[int, int], after: int, upto: int) -> None:
    rows = db.session.execute(_SINCE, {"after": after, "upto": upto}).all()
    known = {row.id: row for row in rows}
    wanted = [row.corrects_id for row in rows if row.corrects_id and row.corrects_id not in known]
    if wanted:
        known.update({row.id: row for row in db.session.execute(_CORRECTED, {"ids": wanted})})
    for row in rows:
        if row.corrects_id:  # the corrected entry no longer counts
            target = known[row.corrects_id]
            by_vial[target.vial_id] -= VIAL_SIGN[target.kind] * target.amount_mcg
        by_vial[row.vial_id] = (
            by_vial.get(row.vial_id, 0) + VIAL_SIGN[row.kind] * row.amount_mcg
        )


def vial_balance(vial: LedgerVial) -> int:
    return vial_balances([vial.id]).get(vial.id, 0)


@dataclass
class SessionTotals:
    drawn: int = 0
    given: int = 0
    wasted: int = 0
    gives: int = 0  # how many give entries count (one is expected)

    @property
    def in_hand(self) -> int:
        """Drawn − given − wasted: zero when the session balances."""
        return self.drawn - self.given - self.wasted


# Every entry of a session, as totals_of takes them: built once, the session a parameter.
_SESSION_ENTRIES = sa.select(
    LedgerEntry.id, LedgerEntry.kind, LedgerEntry.amount_mcg, LedgerEntry.corrects_id
).where(LedgerEntry.infusion_id == sa.bindparam("infusion_id"))


def totals_of(entries: Iterable) -> SessionTotals:
    """A session's totals from every entry of the session (each with its id, kind, amount_mcg
    and corrects_id), the entries no later one corrects counting: a correction is written
    against the corrected entry's session (correct_entry), so the session's entries hold every
    chain. The session page's dose panel passes the entries it lists."""
    entries = list(entries)
    corrected = {entry.corrects_id for entry in entries if entry.corrects_id}
    totals = SessionTotals()
    for entry in entries:
        if entry.id in corrected:
            continue
        if entry.kind == "draw":
            totals.drawn += entry.amount_mcg
        elif entry.kind == "give":
            totals.given += entry.amount_mcg
            totals.gives += 1
        elif entry.kind == "waste":
            totals.wasted += entry.amount_mcg
    return totals


def session_totals(infusion_id: int) -> SessionTotals:
    return totals_of(db.session.execute(_SESSION_ENTRIES, {"infusion_id": infusion_id}))


def session_vial(infusion_id: int) -> LedgerVial | None:
    """The vial of the session's latest draw: its give and waste are written against it."""
    return db.session.scalar(
        sa.select(LedgerVial)
        .join(LedgerEntry, LedgerEntry.vial_id == LedgerVial.id)
        .where(LedgerEntry.infusion_id == infusion_id, LedgerEntry.kind == "draw", effective())
        .order_by(LedgerEntry.occurred_at.desc(), LedgerEntry.id.desc())
        .limit(1)
    )


# --- The pump ---------------------------------------------------------------------------------


def pump_mg_given(infusion: InfusionSession, until: datetime) -> float:
    """What the pump delivered by `until` (mg, clinical.round_mg): clinical.pump_run."""
    return pump_run(infusion, until).given_mg


# --- Who may do what ------------------------------------------------------------------------


def ensure_clinician(actor: Staff) -> None:
    if actor.role not in CLINICAL_ROLES:
        raise RuleError(
            "Only nurse practitioners, physician assistants and physicians handle controlled "
            "substances; administrators see the ledger reports."
        )


def verify_second_person(
    actor: Staff, username: str, password: str, *, role_word: str = "witness"
) -> Staff:
    """The second clinician confirms with their OWN password (never a checkbox), and is
    never the person doing the act. A wrong password counts toward their lockout."""
    field = f"{role_word.replace(' ', '_')}_username"
    if not (username or "").strip():
        raise RuleError(f"Enter the {role_word}'s username.", field=field)
    person = find_staff(username)
    if person is None or not person.active or person.role not in CLINICAL_ROLES:
        raise RuleError(
            f"The {role_word} must be an active nurse practitioner, physician assistant or "
            "physician.",
            field=field,
        )
    if person.id == actor.id:
        raise RuleError(
            f"The {role_word} must be a second clinician, not you.",
            field=field,
        )
    if person.is_locked():
        raise RuleError(f"The {role_word}'s account is locked.", field=field)
    if not check_password_hash(person.password_hash, password or ""):
        count_failed_password(person, f"ledger {role_word} password wrong")
        raise RuleError(
            f"That is not the {role_word}'s password.",
            field=f"{role_word.replace(' ', '_')}_password",
        )
    return person


# --- Writes -----------------------------------------------------------------------------------


def _add(entry: LedgerEntry, action: str, **details) -> LedgerEntry:
    # Under the audit chain's lock (held to the commit) the entry's id is taken, so entries
    # commit in id order: what running_balances() relies on to count each entry once.
    audit.lock_chain()
    db.session.add(entry)
    db.session.flush()
    infusion = entry.infusion if entry.infusion_id else None
    audit.record(
        action,
        entity=entry,
        actor=db.session.get(Staff, entry.recorded_by_id),
        patient_id=infusion.patient_id if infusion else None,
        details=audit_details(entry, **details),
    )
    return entry


def audit_details(entry, **details) -> dict:
    """What an entry's audit row records of it (`entry`: a LedgerEntry, or any object with
    its columns: bench/seed.py writes rows in bulk), and the action's own `details`."""
    return {
        "kind": entry.kind,
        "vial_id": entry.vial_id,
        "infusion_id": entry.infusion_id,
        "amount_mcg": entry.amount_mcg,
        "witness_id": entry.witness_id,
        "corrects_id": entry.corrects_id,
        **details,
    }


def _positive_mcg(amount_mg: float | None, field: str, what: str) -> int:
    if amount_mg is None or amount_mg <= 0:
        raise RuleError(f"Enter the {what} in mg (more than 0).", field=field)
    return mcg(amount_mg)


def _ensure_in_vial(vial: LedgerVial, amount: int, field: str) -> None:
    balance = vial_balance(vial)
    if amount > balance:
        raise RuleError(
            f"Vial {vial.label} holds {mg_text(balance)}; {mg_text(amount)} cannot come out of "
            "it (a balance never goes below zero).",
            field=field,
        )


def receive_vials(
    *,
    actor: Staff,
    quantity: int,
    drug: str,
    strength_mg_per_ml: float,
    volume_ml: float,
    lot: str,
    expiry: date,
    supplier: str,
    invoice_number: str,
    at: datetime | None = None,
) -> list[LedgerVial]:
    """Put `quantity` identical vials in the safe, each with its own identity and receipt."""
    ensure_clinician(actor)
    if not 1 <= quantity <= MAX_VIALS_PER_RECEIPT:
        raise RuleError(
            f"Quantity must be between 1 and {MAX_VIALS_PER_RECEIPT}.", field="quantity"
        )
    if strength_mg_per_ml is None or strength_mg_per_ml <= 0:
        raise RuleError("Strength must be more than 0 mg/mL.", field="strength_mg_per_ml")
    if volume_ml is None or volume_ml <= 0:
        raise RuleError("Volume must be more than 0 mL.", field="volume_ml")
    if expiry < clinic_today():
        raise RuleError("This lot has already expired; it cannot be received.", field="expiry")
    at = at or utcnow()
    vials = []
    for _ in range(quantity):
        vial = LedgerVial(
            drug=drug,
            strength_mg_per_ml=strength_mg_per_ml,
            volume_ml=volume_ml,
            lot=lot.strip(),
            expiry=expiry,
            supplier=supplier.strip(),
            invoice_number=invoice_number.strip(),
            received_by_id=actor.id,
            received_at=at,
        )
        db.session.add(vial)
        db.session.flush()
        _add(
            LedgerEntry(
                vial_id=vial.id,
                kind="receipt",
                amount_mcg=vial.content_mcg,
                occurred_at=at,
                recorded_by_id=actor.id,
                note=f"Invoice/form {vial.invoice_number}",
            ),
            "ledger.received",
            lot=vial.lot,
            invoice=vial.invoice_number,
        )
        vials.append(vial)
    return vials


def draw(
    infusion: InfusionSession,
    vial: LedgerVial,
    actor: Staff,
    amount_mg: float | None,
    diluted_volume_ml: float | None,
    at: datetime | None = None,
) -> LedgerEntry:
    """Take `amount_mg` from the vial for the session, diluted into `diluted_volume_ml`."""
    ensure_clinician(actor)
    guards.begin_row_change(infusion, actor.id)
    if infusion.status not in DRAW_STATUSES:
        raise RuleError(
            f"A dose is drawn before or during the infusion; this session is "
            f"{infusion.status_label.lower()}."
        )
    amount = _positive_mcg(amount_mg, "amount_mg", "amount drawn")
    if diluted_volume_ml is None or diluted_volume_ml <= 0:
        raise RuleError(
            "Enter the volume the dose is diluted into (mL).", field="diluted_volume_ml"
        )
    if vial.expiry < clinic_today():
        raise RuleError(
            f"Vial {vial.label} expired on {vial.expiry:%d %b %Y}; waste it, do not draw from it.",
            field="vial_id",
        )
    _ensure_in_vial(vial, amount, "amount_mg")
    return _add(
        LedgerEntry(
            vial_id=vial.id,
            infusion_id=infusion.id,
            infusion=infusion,
            kind="draw",
            amount_mcg=amount,
            diluted_volume_ml=diluted_volume_ml,
            occurred_at=at or utcnow(),
            recorded_by_id=actor.id,
        ),
        "ledger.drawn",
        diluted_volume_ml=diluted_volume_ml,
    )


def record_given(infusion: InfusionSession, actor: Staff, now: datetime | None = None):
    """Enter what the pump delivered (from the infusion's events and rates) as given."""
    ensure_clinician(actor)
    guards.begin_row_change(infusion, actor.id)
    if infusion.status not in FINISHED_STATUSES:
        raise RuleError("The amount given is recorded once the infusion has stopped.")
    totals = session_totals(infusion.id)
    if totals.gives:
        raise RuleError("The amount given is already recorded; correct that entry instead.")
    vial = session_vial(infusion.id)
    if vial is None:
        raise RuleError("Record the draw first: nothing was drawn for this session.")
    now = now or utcnow()
    amount = mcg(pump_mg_given(infusion, infusion.ended_at or now))
    if amount > totals.in_hand:
        raise RuleError(
            f"The pump gave {mg_text(amount)} but only {mg_text(totals.in_hand)} was drawn and "
            "not yet accounted for: correct the draw first."
        )
    return _add(
        LedgerEntry(
            vial_id=vial.id,
            infusion_id=infusion.id,
            infusion=infusion,
            kind="give",
            amount_mcg=amount,
            occurred_at=now,
            recorded_by_id=actor.id,
            note="From the pump's events and rates",
        ),
        "ledger.given",
    )


def waste_remainder(
    infusion: InfusionSession,
    actor: Staff,
    amount_mg: float | None,
    witness_username: str,
    witness_password: str,
    note: str = "",
) -> LedgerEntry:
    """Waste what was drawn and not given, in front of a second clinician."""
    ensure_clinician(actor)
    guards.begin_row_change(infusion, actor.id)
    if infusion.status not in (*FINISHED_STATUSES, "cancelled"):
        raise RuleError("The remainder is wasted once the infusion has stopped.")
    amount = _positive_mcg(amount_mg, "amount_mg", "amount wasted")
    totals = session_totals(infusion.id)
    if not totals.gives and infusion.status != "cancelled":
        # Otherwise the remainder is a guess: the pump's dose decides what is left.
        raise RuleError("Record the amount given first; the remainder follows from it.")
    if amount > totals.in_hand:
        raise RuleError(
            f"Only {mg_text(totals.in_hand)} drawn for this session is not yet given or wasted.",
            field="amount_mg",
        )
    witness = verify_second_person(actor, witness_username, witness_password)
    vial = session_vial(infusion.id)
    return _add(
        LedgerEntry(
            vial_id=vial.id,
            infusion_id=infusion.id,
            infusion=infusion,
            kind="waste",
            amount_mcg=amount,
            witness_id=witness.id,
            note=(note or "").strip()[:NOTE_MAX],
            occurred_at=utcnow(),
            recorded_by_id=actor.id,
        ),
        "ledger.wasted",
    )


def waste_vial(
    vial: LedgerVial,
    actor: Staff,
    reason: str,
    witness_username: str,
    witness_password: str,
    note: str = "",
) -> LedgerEntry:
    """An expired or broken vial: everything left in it is wasted, witnessed."""
    ensure_clinician(actor)
    if reason not in VIAL_WASTE_REASONS:
        raise RuleError("Choose why the vial is wasted.", field="reason")
    if reason == "other" and not (note or "").strip():
        raise RuleError("Say why the vial is wasted.", field="note")
    balance = vial_balance(vial)
    if balance <= 0:
        raise RuleError(f"Vial {vial.label} is already empty.")
    witness = verify_second_person(actor, witness_username, witness_password)
    return _add(
        LedgerEntry(
            vial_id=vial.id,
            kind="vial_waste",
            amount_mcg=balance,
            waste_reason=reason,
            witness_id=witness.id,
            note=(note or "").strip()[:NOTE_MAX],
            occurred_at=utcnow(),
            recorded_by_id=actor.id,
        ),
        "ledger.vial_wasted",
        reason=reason,
    )


def correct_entry(
    entry: LedgerEntry,
    actor: Staff,
    amount_mg: float | None,
    reason: str,
    witness_username: str = "",
    witness_password: str = "",
) -> LedgerEntry:
    """A new entry of the same kind that replaces `entry` (amount 0 = entered in error).
    Both stay; only the newest of a chain counts. Wastes need a witness again."""
    ensure_clinician(actor)
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason for the correction.", field="reason")
    if amount_mg is None or amount_mg < 0:
        raise RuleError(
            "Enter the correct amount in mg (0 if entered in error).", field="amount_mg"
        )
    if db.session.scalar(sa.select(LedgerEntry.id).where(LedgerEntry.corrects_id == entry.id)):
        raise RuleError("This entry was already corrected; correct the newest entry instead.")
    if entry.infusion_id is not None:
        guards.begin_row_change(entry.infusion, actor.id)
    amount = mcg(amount_mg)
    if entry.kind == "receipt" and amount > entry.vial.content_mcg:
        raise RuleError(
            f"Vial {entry.vial.label} holds at most {mg_text(entry.vial.content_mcg)} by its "
            "label; receive another vial instead.",
            field="amount_mg",
        )
    delta = amount - entry.amount_mcg
    # The vial and the session must still balance at zero or more after the change.
    vial = entry.vial
    vial_change = VIAL_SIGN[entry.kind] * delta
    if vial_change < 0 and -vial_change > vial_balance(vial):
        raise RuleError(
            f"Vial {vial.label} holds {mg_text(vial_balance(vial))}; this correction would take "
            "it below zero.",
            field="amount_mg",
        )
    if entry.infusion_id is not None:
        session_change = SESSION_SIGN[entry.kind] * delta
        if session_change < 0 and -session_change > session_totals(entry.infusion_id).in_hand:
            raise RuleError(
                "After this correction the session would have given or wasted more than was "
                "drawn.",
                field="amount_mg",
            )
    witness_id = None
    if entry.kind in ("waste", "vial_waste"):
        witness_id = verify_second_person(actor, witness_username, witness_password).id
    return _add(
        LedgerEntry(
            vial_id=entry.vial_id,
            infusion_id=entry.infusion_id,
            infusion=entry.infusion,
            kind=entry.kind,
            amount_mcg=amount,
            diluted_volume_ml=entry.diluted_volume_ml,
            waste_reason=entry.waste_reason,
            witness_id=witness_id,
            note=reason[:NOTE_MAX],
            corrects_id=entry.id,
            occurred_at=entry.occurred_at,
            recorded_by_id=actor.id,
        ),
        "ledger.corrected",
        reason=reason,
        previous_mcg=entry.amount_mcg,
    )


# --- Counts and discrepancies -------------------------------------------------------------------


def vials_in_safe() -> list[tuple[LedgerVial, int]]:
    """Every vial with something left in it, with its balance."""
    balances = _balances()[1]
    if not balances:
        return []
    vials = db.session.scalars(
        sa.select(LedgerVial).where(LedgerVial.id.in_(balances)).order_by(LedgerVial.id)
    )
    return [(vial, balances[vial.id]) for vial in vials]


def record_count(
    actor: Staff,
    counted_ml: dict[int, float | None],
    second_username: str,
    second_password: str,
    note: str = "",
) -> LedgerCount:
    """The safe counted by two staff: expected (from the ledger) against counted, per vial.
    Each mismatch opens a discrepancy."""
    ensure_clinician(actor)
    in_safe = vials_in_safe()
    missing = [vial.label for vial, _ in in_safe if counted_ml.get(vial.id) is None]
    if missing:
        raise RuleError(f"Enter the counted volume of every vial: {', '.join(missing)}.")
    if any(value < 0 for value in counted_ml.values() if value is not None):
        raise RuleError("A counted volume cannot be negative.")
    second = verify_second_person(
        actor, second_username, second_password, role_word="second counter"
    )
    now = utcnow()
    count = LedgerCount(
        counted_at=now,
        counted_by_id=actor.id,
        second_counter_id=second.id,
        note=(note or "").strip()[:NOTE_MAX],
    )
    db.session.add(count)
    db.session.flush()
    mismatches = 0
    for vial, expected in in_safe:
        # Compared at the volume's precision (0.01 mL): what the counter can read.
        counted = mcg(round(counted_ml[vial.id], 2) * vial.strength_mg_per_ml)
        expected_ml = round(expected / 1000 / vial.strength_mg_per_ml, 2)
        line = LedgerCountLine(
            count_id=count.id, vial_id=vial.id, expected_mcg=expected, counted_mcg=counted
        )
        db.session.add(line)
        if round(counted_ml[vial.id], 2) != expected_ml:
            mismatches += 1
            db.session.flush()
            _open_discrepancy(
                actor,
                vial_id=vial.id,
                count_line_id=line.id,
                expected_mcg=expected,
                found_mcg=counted,
                description=(
                    f"Count of {vial.label}: expected {expected_ml:.2f} mL "
                    f"({mg_text(expected)}), counted {counted_ml[vial.id]:.2f} mL "
                    f"({mg_text(counted)})."
                ),
            )
    audit.record(
        "ledger.counted",
        entity=count,
        actor=actor,
        details={"vials": len(in_safe), "mismatches": mismatches, "second_counter": second.id},
    )
    return count


def _open_discrepancy(actor: Staff, **fields) -> LedgerDiscrepancy:
    discrepancy = LedgerDiscrepancy(opened_at=utcnow(), opened_by_id=actor.id, **fields)
    db.session.add(discrepancy)
    db.session.flush()
    audit.record(
        "ledger.discrepancy_opened",
        entity=discrepancy,
        actor=actor,
        details={"description": discrepancy.description},
    )
    return discrepancy


def resolve_discrepancy(discrepancy: LedgerDiscrepancy, actor: Staff, reason: str) -> None:
    """Closed only by a physician or an administrator, with the reason in words."""
    if actor.role not in (ROLE_PHYSICIAN, ROLE_ADMIN):
        raise RuleError("Only a physician or an administrator resolves a discrepancy.")
    if not discrepancy.is_open:
        raise RuleError("This discrepancy is already resolved.")
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Give the reason the discrepancy is resolved.", field="reason")
    discrepancy.resolved_at = utcnow()
    discrepancy.resolved_by_id = actor.id
    discrepancy.resolution = reason[:NOTE_MAX]
    audit.record(
        "ledger.discrepancy_resolved", entity=discrepancy, actor=actor, details={"reason": reason}
    )


def open_discrepancies() -> list[LedgerDiscrepancy]:
    return list(
        db.session.scalars(
            sa.select(LedgerDiscrepancy)
            .where(LedgerDiscrepancy.resolved_at.is_(None))
            .order_by(LedgerDiscrepancy.opened_at)
        )
    )


# --- The session's reconciliation and the signing gate -------------------------------------------


def _session_shortfall(infusion: InfusionSession, totals: SessionTotals) -> str | None:
    if infusion.status == "cancelled" and not totals.drawn:
        return None
    if not totals.drawn and infusion.started_at and infusion.ended_at is None:
        # Not the amount, which grows with the clock: the session page says it (live.py).
        return "The infusion has started but no draw from the ledger is recorded."
    pump = mcg(pump_mg_given(infusion, infusion.ended_at or utcnow()))
    if not totals.drawn:
        if pump:
            return f"The pump gave {mg_text(pump)} but no draw from the ledger is recorded."
        return None
    if infusion.status in FINISHED_STATUSES:
        if not totals.gives:
            return "The amount given is not recorded in the ledger."
        if totals.given != pump:
            return (
                f"The ledger says {mg_text(totals.given)} given; the pump's events say "
                f"{mg_text(pump)}."
            )
    if totals.in_hand and infusion.status in (*FINISHED_STATUSES, "cancelled"):
        return (
            f"Drawn {mg_text(totals.drawn)} − given {mg_text(totals.given)} − wasted "
            f"{mg_text(totals.wasted)} leaves {mg_text(totals.in_hand)} unaccounted for."
        )
    return None


def _explained(infusion_id: int, totals: SessionTotals) -> LedgerDiscrepancy | None:
    """A physician's recorded reason for exactly the session's present figures."""
    return db.session.scalar(
        sa.select(LedgerDiscrepancy)
        .where(
            LedgerDiscrepancy.infusion_id == infusion_id,
            LedgerDiscrepancy.resolved_at.is_not(None),
            LedgerDiscrepancy.expected_mcg == totals.drawn,
            LedgerDiscrepancy.found_mcg == totals.given + totals.wasted,
        )
        .order_by(LedgerDiscrepancy.id.desc())
        .limit(1)
    )


def ledger_problem(infusion: InfusionSession, totals: SessionTotals | None = None) -> str | None:
    """Why the session cannot be signed yet for the ledger's sake, or None.

    The signing service calls this: an unreconciled session is refused unless a physician
    recorded why it does not balance (`explain_session`). `totals`: session_totals() when the
    caller has them already (the session page's panel: one query fewer)."""
    if totals is None:
        totals = session_totals(infusion.id)
    problem = _session_shortfall(infusion, totals)
    if problem is None or _explained(infusion.id, totals) is not None:
        return None
    return problem


def explain_session(infusion: InfusionSession, actor: Staff, reason: str) -> LedgerDiscrepancy:
    """The physician records why the session does not balance; it is kept as a discrepancy
    opened and resolved at once, so it appears in the ledger's history."""
    if actor.role != ROLE_PHYSICIAN:
        raise RuleError("Only a physician records why a session's ledger does not balance.")
    guards.begin_row_change(infusion, actor.id)
    totals = session_totals(infusion.id)
    problem = _session_shortfall(infusion, totals)
    if problem is None:
        raise RuleError("The session balances; there is nothing to explain.")
    reason = (reason or "").strip()
    if not reason:
        raise RuleError("Say why the session does not balance.", field="reason")
    vial = session_vial(infusion.id)
    discrepancy = _open_discrepancy(
        actor,
        vial_id=vial.id if vial else None,
        infusion_id=infusion.id,
        expected_mcg=totals.drawn,
        found_mcg=totals.given + totals.wasted,
        description=f"Session {infusion.id}: {problem}",
    )
    resolve_discrepancy(discrepancy, actor, reason)
    return discrepancy


# --- verify-ledger ----------------------------------------------------------------------------


def verify_ledger() -> list[str]:
    """Every vial's derived balance is ≥ 0 and ≤ what it held; every session gave and wasted
    no more than it drew; and every microgram received is in a vial, given, wasted or in
    hand."""
    problems = []
    vials = {v.id: v for v in db.session.scalars(sa.select(LedgerVial))}
    balances = vial_balances()
    for vial_id, balance in balances.items():
        vial = vials[vial_id]
        if balance < 0:
            problems.append(f"{vial.label}: balance {mg_text(balance)} is below zero.")
        if balance > vial.content_mcg:
            problems.append(f"{vial.label}: balance {mg_text(balance)} exceeds its content.")
    session_rows = db.session.execute(
        sa.select(LedgerEntry.infusion_id, sa.func.sum(_signed(SESSION_SIGN)))
        .where(effective(), LedgerEntry.infusion_id.is_not(None))
        .group_by(LedgerEntry.infusion_id)
    ).all()
    in_hand = 0
    for infusion_id, amount in session_rows:
        in_hand += int(amount)
        if amount < 0:
            problems.append(
                f"Session {infusion_id}: gave or wasted {mg_text(-int(amount))} more than drawn."
            )
    by_kind = dict(
        db.session.execute(
            sa.select(LedgerEntry.kind, sa.func.sum(LedgerEntry.amount_mcg))
            .where(effective())
            .group_by(LedgerEntry.kind)
        ).all()
    )
    received = int(by_kind.get("receipt") or 0)
    accounted = (
        sum(balances.values())
        + int(by_kind.get("give") or 0)
        + int(by_kind.get("waste") or 0)
        + int(by_kind.get("vial_waste") or 0)
        + in_hand
    )
    if received != accounted:
        problems.append(
            f"Received {mg_text(received)} but vials, given, wasted and in hand add up to "
            f"{mg_text(accounted)}."
        )
    return problems
