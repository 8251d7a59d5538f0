"""The cursor the app's PostgreSQL connections use: psycopg's, but its `description` is built
only when something reads it.

SQLAlchemy asks for a cursor's description after every statement, and psycopg builds a Column
object for each column of the result on every ask. For a statement it has run before,
SQLAlchemy already keeps what the description tells (the compiled statement's result
metadata) and never looks at it: a session page's first view built 359 Columns nobody read
(bench/RESULTS.md, Stop 32). Imported only when the database is PostgreSQL
(database.engine_options): an app on SQLite never loads psycopg.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.pq import ExecStatus

_TUPLES = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class _Result:
    """What psycopg's Column reads of its cursor, as it was when the result came: the cursor
    may have run another statement by the time a description is read."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class Description(Sequence):
    """A result's columns (psycopg.Column, as the cursor's own description lists them),
    built at the first look."""

    __slots__ = ("_result", "_count", "_columns")

    def __init__(self, cursor: psycopg.Cursor, count: int) -> None:
        self._result = _Result(cursor)
        self._count = count
        self._columns: list[psycopg.Column] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if self._columns is None:
            self._columns = [psycopg.Column(self._result, i) for i in range(self._count)]
        return self._columns[index]

    def __repr__(self) -> str:
        return repr(list(self))


class Cursor(psycopg.Cursor):
    @property
    def description(self) -> Description | None:
        """As psycopg's (None when the statement returned no rows), built when read."""
        result = self.pgresult
        if result and (result.nfields or result.status in _TUPLES):
            return Description(self, result.nfields)
        return None
