"""Per-session figures from the readings, for the quality report: peak systolic during the
surge, the last baseline systolic, and the intervals between infusion-phase readings.

Computing them means a window over every reading of the period (1.9 million for a year of a
chain), so each session's figures are stored (`SessionFigures`) under the session's version.
Every change to a session's readings makes a new version of the session (guards), so a stored
row whose version no longer matches is never used: it is computed again and replaced. A
signed session's figures are stored when it is signed; the report computes and stores the
rest the first time it needs them; `flask quality-figures` fills or checks them in one go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from .. import unit_of_work
from ..extensions import db
from ..models import InfusionSession, Protocol, Reading, SessionFigures
from ..patients.history import SURGE_PHASES

# A reading is overdue when it comes later than the protocol's interval plus this grace.
OVERDUE_GRACE = timedelta(minutes=1)
# The last baseline systolic is found by `max(position * SPAN + systolic)` over the session's
# baseline readings (position in charting order): the same window as the intervals, so the
# readings are sorted once. Systolic is a validated 40-300 mmHg, well below SPAN.
SPAN = 100_000
FIGURES = ("peak_systolic", "baseline_systolic", "intervals", "overdue", "interval_seconds")


@dataclass(slots=True)
class SessionReadings:
    """One session of the period, from its readings."""

    protocol: str
    infusion_number: int
    patient_id: int
    rise: int | None  # peak surge systolic minus the last baseline systolic
    gaps: int  # intervals between consecutive infusion-phase readings
    overdue: int  # of them, longer than the protocol's interval plus the grace
    gap_seconds: float


def epoch_seconds(column):
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.extract("epoch", column)
    return sa.func.julianday(column) * 86400


def _computed(sessions_where) -> sa.Subquery:
    """The figures of the sessions matching `sessions_where`, from their non-voided readings:
    one window (per session and phase, in charting order) gives each reading its place and
    the seconds since the previous one of its phase; one grouping per session sums them."""
    at = epoch_seconds(Reading.taken_at)
    window = {"partition_by": (Reading.infusion_id, Reading.phase),
              "order_by": (Reading.taken_at, Reading.id)}
    ordered = (
        sa.select(
            Reading.infusion_id,
            Reading.phase,
            Reading.systolic,
            (Protocol.reading_interval_infusion_min * 60 + OVERDUE_GRACE.total_seconds()).label(
                "limit"
            ),
            (at - sa.func.lag(at).over(**window)).label("gap"),
            sa.func.row_number().over(**window).label("position"),
        )
        .join(InfusionSession, InfusionSession.id == Reading.infusion_id)
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .where(sessions_where, Reading.voided_at.is_(None),
               Reading.phase.in_(("baseline", *SURGE_PHASES)))
        .subquery()
    )
    systolic = ordered.c.systolic.is_not(None)
    gap = sa.case((ordered.c.phase == "infusion", ordered.c.gap))
    return (
        sa.select(
            ordered.c.infusion_id,
            sa.func.max(sa.case((sa.and_(ordered.c.phase.in_(SURGE_PHASES), systolic),
                                 ordered.c.systolic))).label("peak"),
            sa.func.max(sa.case((sa.and_(ordered.c.phase == "baseline", systolic),
                                 ordered.c.position * SPAN + ordered.c.systolic))).label("base"),
            sa.func.count(gap).label("gaps"),
            sa.func.sum(sa.case((gap > ordered.c.limit, 1), else_=0)).label("overdue"),
            sa.func.sum(gap).label("seconds"),
        )
        .group_by(ordered.c.infusion_id)
        .subquery()
    )


def _current(stored) -> sa.ColumnElement[bool]:
    """`stored` (SessionFigures or an alias) holds the figures of the session's version now."""
    return sa.and_(stored.infusion_id == InfusionSession.id,
                   stored.version == InfusionSession.version)


def _columns(stored, computed: sa.Subquery) -> list:
    """The stored figures, then the same figures computed from the readings (for _figures)."""
    return [*(getattr(stored, name) for name in FIGURES),
            computed.c.peak, computed.c.base, computed.c.gaps, computed.c.overdue,
            computed.c.seconds]


def _figures(peak, base, gaps, overdue, seconds) -> dict:
    return {
        "peak_systolic": None if peak is None else int(peak),
        "baseline_systolic": None if base is None else int(base) % SPAN,
        "intervals": int(gaps or 0),
        "overdue": int(overdue or 0),
        "interval_seconds": float(seconds or 0),
    }


def _store(rows: list[dict]) -> None:
    """Insert or replace figures: two reports (or a report and a signature) may store the
    same session's at once."""
    if not rows:
        return
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(SessionFigures)
    db.session.execute(
        insert.on_conflict_do_update(
            index_elements=[SessionFigures.infusion_id],
            set_={name: insert.excluded[name] for name in ("version", *FIGURES)},
        ),
        rows,
    )


def session_readings(sessions_where) -> list[SessionReadings]:
    """Every session matching `sessions_where` (a condition on InfusionSession) with its
    figures: stored ones where they match the session's version, computed in the same
    statement for the others (then stored). One statement, and one more to store."""
    stored = aliased(SessionFigures)
    current = _current(stored)
    computed = _computed(sa.and_(sessions_where, ~sa.exists().where(current)))
    # Plain rows from the connection (a year of a chain is 57,000 of them): no ORM result.
    rows = db.session.connection().execute(
        sa.select(
            InfusionSession.id, InfusionSession.version, Protocol.name,
            InfusionSession.series_number, InfusionSession.patient_id,
            stored.infusion_id.is_not(None).label("is_stored"),
            *_columns(stored, computed),
        )
        .join(Protocol, Protocol.id == InfusionSession.protocol_id)
        .outerjoin(stored, current)
        .outerjoin(computed, computed.c.infusion_id == InfusionSession.id)
        .where(sessions_where)
    )
    result, new = [], []
    for (infusion_id, version, name, number, patient_id, is_stored,
         peak, base, gaps, overdue, seconds, *computed_values) in rows:
        if not is_stored:
            figures = _figures(*computed_values)
            new.append({"infusion_id": infusion_id, "version": version, **figures})
            peak, base, gaps, overdue, seconds = figures.values()
        # Positional: 57,000 of these at chain scale.
        result.append(SessionReadings(
            name, number, patient_id, None if peak is None or base is None else peak - base,
            gaps, overdue, seconds,
        ))
    if new:
        # In a page view, just after it: its transaction must not write (on SQLite it could not
        # take the write lock once another connection had committed).
        unit_of_work.write(lambda: _store(new))
    return result


def refresh(infusion_ids: Iterable[int]) -> int:
    """Store the figures of these sessions where the stored ones are missing or out of date;
    how many sessions were looked at."""
    ids = list(infusion_ids)
    if not ids:
        return 0
    return len(session_readings(InfusionSession.id.in_(ids)))


def stale_ids(limit: int) -> list[int]:
    """Up to `limit` sessions that have no stored figures for their current version."""
    return list(db.session.scalars(
        sa.select(InfusionSession.id)
        .where(~sa.exists().where(_current(SessionFigures)))
        .order_by(InfusionSession.id)
        .limit(limit)
    ))


def mismatches(infusion_ids: Iterable[int]) -> list[int]:
    """Of these sessions, those whose stored figures for their current version differ from
    what their readings give now (the check of `flask quality-figures --verify`)."""
    ids = list(infusion_ids)
    if not ids:
        return []
    computed = _computed(InfusionSession.id.in_(ids))
    wrong = []
    for infusion_id, *values in db.session.execute(
        sa.select(SessionFigures.infusion_id, *_columns(SessionFigures, computed))
        .join(InfusionSession, _current(SessionFigures))
        .outerjoin(computed, computed.c.infusion_id == SessionFigures.infusion_id)
        .where(SessionFigures.infusion_id.in_(ids))
    ):
        stored = dict(zip(FIGURES, values[:len(FIGURES)], strict=True))
        fresh = _figures(*values[len(FIGURES):])
        seconds = stored.pop("interval_seconds") - fresh.pop("interval_seconds")
        if stored != fresh or abs(seconds) > 0.01:
            wrong.append(infusion_id)
    return wrong
