"""The database itself refuses UPDATE and DELETE on the ledger's entries and vials: a
correction is a new entry, never an edit (installed by migration 0004_ledger and, for tests
built with create_all, by the after_create hooks below)."""

import sqlalchemy as sa

from ..models import LedgerEntry, LedgerVial

TABLES = ("ledger_entry", "ledger_vial")


def ddl(dialect_name: str, table: str) -> list[str]:
    if dialect_name == "sqlite":
        return [
            f"""CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
            for verb in ("UPDATE", "DELETE")
        ]
    if dialect_name == "postgresql":
        return [
            """CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
               BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$
               LANGUAGE plpgsql""",
            f"""CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()""",
        ]
    return []


def _install(target, connection, **kw):
    for statement in ddl(connection.dialect.name, target.name):
        connection.exec_driver_sql(statement)


for _model in (LedgerEntry, LedgerVial):
    sa.event.listen(_model.__table__, "after_create", _install)
