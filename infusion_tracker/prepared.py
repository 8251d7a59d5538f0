"""A hot read sent as SQL compiled once for the database in use: through SQLAlchemy's connection
(its events see it: the query count, the read-only guard), past its statement cache and its
typing of every value. For rows that are mostly a kept page's key (memo), typed only when the
page is drawn: the review queue's statement cost two to three times as much through the ORM
session as through the driver (bench/RESULTS.md, Stop 30)."""

from __future__ import annotations

import sqlalchemy as sa

from .extensions import db


class PreparedRead:
    """`statement`, built once; the values of its parameters given by name at each run, as the
    driver takes them (whole numbers, text: they are not converted, and a list for IN … is
    not expanded)."""

    def __init__(self, statement: sa.Select):
        self.statement = statement
        self._by_dialect: dict[str, tuple] = {}

    def _compiled(self, dialect) -> tuple:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            typers = tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.statement.selected_columns
            )
            found = self._by_dialect[dialect.name] = (str(compiled), compiled, typers)
        return found

    def rows(self, **values) -> list[tuple]:
        """The rows as the driver gives them (SQLite: times as text)."""
        connection = db.session.connection()
        sql, compiled, _ = self._compiled(connection.dialect)
        params = compiled.construct_params(values)
        if compiled.positional:
            params = tuple(params[name] for name in compiled.positiontup)
        return [tuple(row) for row in connection.exec_driver_sql(sql, params).all()]

    def typed(self, rows: list[tuple]) -> list[tuple]:
        """`rows` as SQLAlchemy would give them (times as aware datetimes)."""
        typers = self._compiled(db.session.get_bind().dialect)[2]
        return [
            tuple(
                value if typer is None else typer(value)
                for typer, value in zip(typers, row, strict=True)
            )
            for row in rows
        ]
