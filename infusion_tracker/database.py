"""SQLite connection settings: WAL, busy timeout, foreign keys, full sync, and write
transactions that take the write lock up front (BEGIN IMMEDIATE) so concurrent writers wait
instead of failing with "database is locked". Page views begin a plain (deferred) read
transaction, so they neither block each other nor wait for the writers (WAL). The database
files are readable by their owner only.

And no connection crosses a fork: gunicorn --preload builds the app in its master and forks
the workers from it, so each worker starts with an empty pool of its own."""

import contextlib
import os
import sqlite3
import weakref

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Engine

from . import unit_of_work
from .extensions import db

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


@sa.event.listens_for(Engine, "connect")
def _postgresql_connect(dbapi_connection, connection_record):
    """No JIT on the app's PostgreSQL connections: it compiles every plan whose estimate
    crosses jit_above_cost, and at chain scale that cost the review queue and the quality
    report hundreds of milliseconds of compiling per request, more than running them
    (bench/RESULTS.md, Stop 15)."""
    if not type(dbapi_connection).__module__.startswith("psycopg"):
        return
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()


@sa.event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN" if unit_of_work.is_read_request() else "BEGIN IMMEDIATE")


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _empty_pools_in_child() -> None:
    """In a forked child, drop the pools inherited from the parent without closing their
    connections (SQLAlchemy's recipe for os.fork): two processes on one connection would
    mix their conversations, and closing it would end the parent's too."""
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_empty_pools_in_child)


def init_app(app: Flask) -> None:
    with app.app_context():
        _engines.update(db.engines.values())
