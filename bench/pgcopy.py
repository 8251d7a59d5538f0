"""A PostgreSQL dataset from the SQLite one of the same scale: the same rows, table by table,
with PostgreSQL's COPY (psycopg's `cursor.copy`), into the app's own tables.

Generating a scale is single-threaded Python (the plan, `assess_reading`, the HMAC chain) and
costs the same whichever database receives it: about 45 minutes of CPU at `chain`. Copying the
rows of an already-built, verified SQLite dataset costs a few minutes, and `verify-audit` then
proves the copy: a changed timestamp or JSON text would break the chain.

Values go over as SQLite holds them, in COPY's text format: naive UTC timestamps (read in a
session whose time zone is UTC), 0/1 booleans, JSON as its text. Indexes other than the primary
keys are dropped before a table's COPY and built again after it (one sorted build instead of
millions of inserts into each B-tree).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import sqlalchemy as sa

from infusion_tracker.extensions import db

ROWS_PER_REPORT = 1_000_000


def _secondary_indexes(table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no constraint."""
    return [
        (name, definition)
        for name, definition in db.session.execute(
            sa.text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = :table "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            ),
            {"table": table},
        )
    ]


def reset_sequences(tables) -> None:
    """Ids came with the rows; each serial column's sequence continues after the largest."""
    for table in tables:
        if "id" not in table.c:
            continue
        db.session.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table.name}))"
            )
        )


def copy_from_sqlite(sqlite_path: str, progress=print, skip=()) -> dict[str, int]:
    """Replace the rows of every model table (but those in `skip`) of the (migrated)
    PostgreSQL database with the SQLite database's; one transaction, committed by the caller.
    Returns rows per table."""
    tables = [t for t in db.metadata.sorted_tables if t.name not in skip]  # parents first
    # The migrations' own rows (the default protocol) are in the SQLite dataset too. (Only
    # tables holding rows are emptied: the append-only ones refuse even an empty DELETE.)
    for table in reversed(tables):
        if db.session.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            db.session.execute(table.delete())
    db.session.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
    cursor = db.session.connection().connection.driver_connection.cursor()
    counts = {}
    uri = f"file:{sqlite_path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as source, cursor:
        for table in tables:
            started = time.perf_counter()
            columns = ", ".join(f'"{column.name}"' for column in table.columns)
            indexes = _secondary_indexes(table.name)
            for name, _ in indexes:
                db.session.execute(sa.text(f'DROP INDEX "{name}"'))
            rows = 0
            with cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
                for row in source.execute(f'SELECT {columns} FROM "{table.name}"'):
                    copy.write_row(row)
                    rows += 1
                    if rows % ROWS_PER_REPORT == 0:
                        progress(f"  {table.name}: {rows:,} rows")
            for _, definition in indexes:
                db.session.execute(sa.text(definition))
            counts[table.name] = rows
            if rows:
                progress(
                    f"  {table.name}: {rows:,} rows, {len(indexes)} indexes rebuilt, "
                    f"{time.perf_counter() - started:.1f} s"
                )
    reset_sequences(tables)
    return counts
