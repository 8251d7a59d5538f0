"""SQLite connection settings: WAL, busy timeout, foreign keys, full sync, and write
transactions that take the write lock up front (BEGIN IMMEDIATE) so concurrent writers wait
instead of failing with "database is locked". Page views begin a plain (deferred) read
transaction, so they neither block each other nor wait for the writers (WAL). The database
files are readable by their owner only."""

import contextlib
import os
import sqlite3

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import unit_of_work

BUSY_TIMEOUT_MS = 10_000
PRIVATE_FILE = 0o600


def make_private(database_path: str) -> None:
    """Owner-only database, WAL and SHM. SQLite gives a new WAL or SHM file the database
    file's mode, so fixing the main file before WAL is switched on covers them too."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(database_path + suffix, PRIVATE_FILE)


@sa.event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, connection_record):
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for _seq, name, path in cursor.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            make_private(path)
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


@sa.event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN" if unit_of_work.is_read_request() else "BEGIN IMMEDIATE")
