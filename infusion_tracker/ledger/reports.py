"""The ledger's reports: a vial's ledger with its running balance, the stock on a date (the
biennial-inventory shape), the entries of a period, each also as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import InfusionSession, LedgerEntry, LedgerVial, with_staff
from ..timeutil import clinic_day_bounds, format_datetime
from .services import VIAL_SIGN, vial_balances


@dataclass
class VialLine:
    entry: LedgerEntry
    counts: bool  # False once a later entry corrects it
    balance_mcg: int | None  # the vial's balance after this entry (counting entries only)


# What a listed entry names, loaded with it: its vial, who recorded it and the witness (the
# session page's dose panel lists a session's entries with these too).
ENTRY_NAMES = (
    joinedload(LedgerEntry.vial),
    with_staff(LedgerEntry.recorded_by),
    with_staff(LedgerEntry.witness),
)


def _entry_options():
    return (*ENTRY_NAMES, joinedload(LedgerEntry.infusion).joinedload(InfusionSession.patient))


def _corrected_ids(entry_ids) -> set[int]:
    return set(
        db.session.scalars(
            sa.select(LedgerEntry.corrects_id).where(LedgerEntry.corrects_id.in_(entry_ids))
        )
    )


def vial_ledger(vial: LedgerVial) -> list[VialLine]:
    """Every entry against the vial, corrected ones kept and marked, with the running balance."""
    entries = db.session.scalars(
        sa.select(LedgerEntry)
        .where(LedgerEntry.vial_id == vial.id)
        .options(*_entry_options())
        .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
    ).all()
    corrected = _corrected_ids([e.id for e in entries])
    balance, lines = 0, []
    for entry in entries:
        counts = entry.id not in corrected
        if counts:
            balance += VIAL_SIGN[entry.kind] * entry.amount_mcg
        lines.append(VialLine(entry, counts, balance if counts else None))
    return lines


@dataclass
class StockLine:
    vial: LedgerVial
    balance_mcg: int

    @property
    def balance_ml(self) -> float:
        return self.balance_mcg / 1000 / self.vial.strength_mg_per_ml


def stock_on(day: date) -> list[StockLine]:
    """What the safe held at the end of a clinic day, from the entries up to then."""
    _, end = clinic_day_bounds(day)
    balances = {k: v for k, v in vial_balances(at=end).items() if v > 0}
    vials = db.session.scalars(
        sa.select(LedgerVial).where(LedgerVial.id.in_(balances)).order_by(LedgerVial.id)
    )
    return [StockLine(vial, balances[vial.id]) for vial in vials]


def period_entries(start: date, end: date) -> tuple[list[LedgerEntry], set[int]]:
    """Entries whose clinical time falls in [start, end] (clinic days), and which were later
    corrected."""
    begin, _ = clinic_day_bounds(start)
    _, finish = clinic_day_bounds(end)
    entries = db.session.scalars(
        sa.select(LedgerEntry)
        .where(LedgerEntry.occurred_at >= begin, LedgerEntry.occurred_at < finish)
        .options(*_entry_options())
        .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
    ).all()
    return entries, _corrected_ids([e.id for e in entries])


def counting_total(entries: list[LedgerEntry], corrected: set[int], kind: str) -> int:
    return sum(e.amount_mcg for e in entries if e.kind == kind and e.id not in corrected)


# --- CSV -----------------------------------------------------------------------------------


def _cell(value) -> str | int | float:
    """Numbers as numbers; text defused (a cell starting = + - @ would run as a formula)."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return format_datetime(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


ENTRY_HEADER = [
    "Entry ID",
    "When (clinic time)",
    "Vial",
    "Lot",
    "Entry",
    "Amount (mg)",
    "Diluted into (mL)",
    "Session ID",
    "Patient MRN",
    "Recorded by",
    "Witness",
    "Corrects entry ID",
    "Status",
    "Note",
]


def entry_row(entry: LedgerEntry, corrected: bool) -> list:
    infusion = entry.infusion
    return [
        entry.id,
        entry.occurred_at,
        entry.vial.label,
        entry.vial.lot,
        entry.kind_label,
        entry.amount_mcg / 1000,
        entry.diluted_volume_ml,
        entry.infusion_id,
        infusion.patient.mrn if infusion else None,
        entry.recorded_by.display_name,
        entry.witness.display_name if entry.witness else None,
        entry.corrects_id,
        "CORRECTED" if corrected else "counts",
        entry.note,
    ]


def vial_csv(vial: LedgerVial, lines: list[VialLine]) -> str:
    return to_csv(
        [*ENTRY_HEADER, "Balance after (mg)"],
        (
            [*entry_row(line.entry, not line.counts),
             None if line.balance_mcg is None else line.balance_mcg / 1000]
            for line in lines
        ),
    )


def stock_csv(lines: list[StockLine]) -> str:
    return to_csv(
        ["Vial", "Drug", "Strength (mg/mL)", "Vial volume (mL)", "Lot", "Expiry",
         "Balance (mg)", "Balance (mL)"],
        (
            [line.vial.label, line.vial.drug, line.vial.strength_mg_per_ml, line.vial.volume_ml,
             line.vial.lot, line.vial.expiry.isoformat(), line.balance_mcg / 1000,
             round(line.balance_ml, 2)]
            for line in lines
        ),
    )


def period_csv(entries: list[LedgerEntry], corrected: set[int]) -> str:
    return to_csv(ENTRY_HEADER, (entry_row(e, e.id in corrected) for e in entries))
