"""SQLite connection settings: WAL, busy timeout, foreign keys, full sync, and write
transactions that take the write lock before they write (BEGIN IMMEDIATE) so concurrent
writers wait instead of failing with "database is locked". Page views begin a plain (deferred)
read transaction, read-only, so they neither block each other nor wait for the writers (WAL);
what they write (their audit row) waits for unit_of_work.finish. A write request reads as a
page view does until its first write, or until it reads what PostgreSQL would lock (SELECT …
FOR UPDATE): only then does it take the lock, in a new transaction, so it holds the lock for
its writes, not for signing in and checking its form (bench/RESULTS.md, Stop 23). Commands
outside a request take it at once. The database files are readable by their owner only.

Writers wait in a queue (QueuedWrites): SQLite's own busy handler polls, sleeping up to
100 ms between tries, so a writer that finds the lock taken sleeps on long after it is free;
with every page view appending its audit row, that sleep was most of the tail of the
response times under load (bench/RESULTS.md, Stop 16).

Checkpoints (copying the WAL's pages into the database file) run in a thread of each worker
process (checkpoint_forever), not in whichever commit finds the WAL past SQLite's 1,000 pages:
that commit, often a page view's audit row, took 100-160 ms at `clinic` scale, one view in
every 150 or so (bench/RESULTS.md, Stop 18).

A page view's own audit rows commit without waiting for the disk (unit_of_work.lazy_commit:
synchronous=NORMAL for that transaction); every other write waits for it (synchronous=FULL,
set again on the connection's next write).

And no connection crosses a fork: gunicorn --preload builds the app in its master and forks
the workers from it, so each worker starts with an empty pool of its own."""

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref

import sqlalchemy as sa
from flask import Flask, has_request_context
from sqlalchemy.engine import Engine

from . import unit_of_work
from .extensions import db

BUSY_TIMEOUT_MS = 10_000
PRIVATE_FILE = 0o600
QUEUE_POLL_S = 0.0001
# The statements that begin or guard a transaction rather than read or write (this module's,
# and the audit chain's lock on PostgreSQL): not counted as a page's queries.
TRANSACTION_CONTROL = (
    "BEGIN",
    "PRAGMA synchronous",
    "SELECT pg_advisory_xact_lock",
)
# With the checkpoint thread on, SQLite's own checkpoint stays as a backstop this far out,
# should the thread not keep up (or not run: a command outside any request).
BACKSTOP_PAGES = 10_000
# On a SQLite write transaction's connection: it has read, and will take the write lock at
# its first write.
LOCK_PENDING = "write_lock_pending"
# On a SQLite connection: its transaction is a page view's, which only reads.
READ_ONLY = "read_only"


def make_private(database_path: str) -> None:
    """Owner-only database, WAL and SHM. SQLite gives a new WAL or SHM file the database
    file's mode, so fixing the main file before WAL is switched on covers them too."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(database_path + suffix, PRIVATE_FILE)


class QueuedWrites(sqlite3.Connection):
    """A SQLite connection whose write transactions take their turn on a lock file beside the
    database (flock) before BEGIN IMMEDIATE, and give it up once the transaction has
    committed or rolled back. A writer whose turn has not come looks again every tenth of a
    millisecond instead of SQLite's 1, 2, 5 … 100 ms (a writer holds the lock for about two;
    16 writers recorded 284-297 readings a second looking every half a millisecond, 331 now,
    as many as with a blocking wait: bench/RESULTS.md, Stop 24); after the busy timeout it
    goes on to BEGIN IMMEDIATE, where SQLite's own wait decides, as before (so a connection
    that waits on another one of the same thread fails, as it did, rather than hanging)."""

    queue_path: str | None = None  # None: an in-memory database, one connection
    checkpoint_path: str | None = None  # the database, when a thread checkpoints it
    _queue_fd: int | None = None
    _queued = False

    def wait_turn_to_write(self) -> None:
        if self.queue_path is None:
            return
        if self._queue_fd is None:
            self._queue_fd = os.open(self.queue_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(self._queue_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > give_up:
                    return
                time.sleep(QUEUE_POLL_S)
            else:
                self._queued = True
                return

    def _next_writer(self) -> None:
        if self._queued:
            self._queued = False
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._next_writer()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._next_writer()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._next_writer()
            if self._queue_fd is not None:
                os.close(self._queue_fd)
                self._queue_fd = None


# --- Checkpoints in a thread ------------------------------------------------------------------

_checkpoint_every: dict[str, float] = {}  # database path -> seconds between checkpoints
_checkpointers: set[tuple[int, str]] = set()  # (process id, database path) with a thread
_checkpointers_lock = threading.Lock()


def checkpoint_forever(path: str, seconds: float) -> None:
    """Every `seconds`, copy the committed WAL pages into the database file. PASSIVE: it
    waits for no reader or writer (those go on meanwhile), and a checkpoint already running
    in another process makes it wait for the next turn. Ends when the file is gone."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA synchronous = FULL")
        while os.path.exists(path):
            time.sleep(seconds)
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()


def _ensure_checkpointer(path: str) -> None:
    """One thread per process and database, started from a request: so never in gunicorn's
    master, whose threads a forked worker would not have (and whose locks it might inherit
    held)."""
    key = (os.getpid(), path)
    if key in _checkpointers:  # every transaction asks: no lock on the way
        return
    with _checkpointers_lock:
        if key in _checkpointers:
            return
        _checkpointers.add(key)
    threading.Thread(
        target=checkpoint_forever,
        args=(path, _checkpoint_every[path]),
        name="sqlite-checkpoint",
        daemon=True,
    ).start()


def engine_options(app: Flask) -> None:
    """SQLite connections are QueuedWrites, and are not pinged before use (a file has no
    server to drop them; the ping was a statement per transaction). A file database is
    checkpointed by a thread when SQLITE_CHECKPOINT_SECONDS is set. PostgreSQL connections'
    cursors are postgres_cursor.Cursor, and a connection is pinged before use only after
    it has lain idle (ping_if_idle)."""
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    if url.get_backend_name() == "postgresql":
        from .postgres_cursor import Cursor  # psycopg: loaded for PostgreSQL only

        connect_args = {"cursor_factory": Cursor}
    elif url.get_backend_name() == "sqlite":
        seconds = app.config.get("SQLITE_CHECKPOINT_SECONDS")
        if seconds and url.database and url.database != ":memory:":
            _checkpoint_every[os.path.realpath(url.database)] = seconds
        connect_args = {"factory": QueuedWrites}
    else:
        return
    options["connect_args"] = {**options.get("connect_args", {}), **connect_args}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


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
            if isinstance(dbapi_connection, QueuedWrites):
                dbapi_connection.queue_path = path + "-writers"
                real_path = os.path.realpath(path)
                if real_path in _checkpoint_every:
                    dbapi_connection.checkpoint_path = real_path
                    cursor.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
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
    if conn.dialect.name != "sqlite":
        return
    # Straight to the driver: these run at every transaction's start, where SQLAlchemy's own
    # execute (its events, its context) cost more than SQLite's work (issue 8).
    dbapi_connection = conn.connection.dbapi_connection
    checkpoint_path = getattr(dbapi_connection, "checkpoint_path", None)
    if checkpoint_path and has_request_context():
        _ensure_checkpointer(checkpoint_path)
    info = conn.connection.info
    info[LOCK_PENDING] = False
    # Read-only as well: a write here could not take the write lock once another connection
    # had committed ("database is locked" at once, whatever the busy timeout), so a page
    # view's writes wait for unit_of_work.finish, and one that does not fails in every test
    # instead of now and then under load (_refuse_writes_in_reads).
    info[READ_ONLY] = unit_of_work.is_read_request()
    if info[READ_ONLY]:
        dbapi_connection.execute("BEGIN")
        return
    synchronous = "NORMAL" if unit_of_work.lazy_commit() else "FULL"
    if info.get("synchronous", "FULL") != synchronous:
        dbapi_connection.execute(f"PRAGMA synchronous = {synchronous}")
        info["synchronous"] = synchronous
    if has_request_context():
        # A write request reads first (who is signed in, the form's session) and takes the
        # lock at its first write (_lock_at_first_write), so writers wait for each other only
        # for their writes.
        dbapi_connection.execute("BEGIN")
        info[LOCK_PENDING] = True
        return
    _begin_immediate(dbapi_connection)


def _begin_immediate(dbapi_connection, end_reads: bool = False) -> None:
    """Begin holding the write lock, in the writers' queue (`end_reads`: after ending the read
    transaction begun before). A failure ("database is locked") is raised as SQLAlchemy's
    error, which the unit of work and the error pages answer."""
    try:
        if end_reads:
            dbapi_connection.execute("COMMIT")
        if isinstance(dbapi_connection, QueuedWrites):
            dbapi_connection.wait_turn_to_write()
        dbapi_connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, error) from error


def _takes_write_lock(statement: str, context) -> bool:
    """Whatever is not a plain read: a write, a savepoint (which the lock must not end), or a
    read that locks its rows on PostgreSQL (SELECT … FOR UPDATE, not written for SQLite)."""
    if statement.lstrip()[:6].upper() not in ("SELECT", "PRAGMA"):
        return True
    compiled = getattr(context, "compiled", None)
    return getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None


def _writes(statement: str, context) -> bool:
    """An INSERT, UPDATE or DELETE built by SQLAlchemy (whatever it begins with: a WITH), or
    a statement written out that begins with a word that writes."""
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        return True
    return statement.lstrip().split(None, 1)[0].upper() in _WRITE_WORDS


_WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER"})


@sa.event.listens_for(Engine, "before_cursor_execute")
def _lock_at_first_write(conn, cursor, statement, parameters, context, executemany):
    info = conn.info
    if info.get(LOCK_PENDING) and _takes_write_lock(statement, context):
        _take_write_lock(conn)
    elif info.get(READ_ONLY) and _writes(statement, context):
        _refuse_writes_in_reads(statement, parameters)


def _refuse_writes_in_reads(statement: str, parameters) -> None:
    """A page view's read transaction refuses a write, as SQLite's PRAGMA query_only would, in
    its words. Not the pragma itself: setting it (or any flag pragma) expires every prepared
    statement of the connection, so each transaction prepared its statements again (the
    review queue's 0.17 -> 0.76 ms of SQLite's time; bench/RESULTS.md, Stop 30)."""
    raise sa.exc.OperationalError(
        statement, parameters, sqlite3.OperationalError("attempt to write a readonly database")
    )


def _take_write_lock(conn) -> None:
    """End the transaction's reads and begin again holding the write lock: SQLite refuses a
    write from a snapshot older than the last commit ("database is locked", at once). What was
    read before is then as PostgreSQL's READ COMMITTED would have it: the rows a write depends
    on are read again under the lock (guards.lock, SELECT … FOR UPDATE, audit.lock_chain)."""
    conn.info[LOCK_PENDING] = False
    _begin_immediate(conn.connection.dbapi_connection, end_reads=True)


def take_write_lock(session) -> None:
    """Where PostgreSQL takes a lock of its own (an advisory lock), a SQLite write transaction
    takes the database's write lock now, if it does not hold it yet."""
    connection = session.connection()
    if connection.info.get(LOCK_PENDING):
        _take_write_lock(connection)


@sa.event.listens_for(Engine, "begin")
def _postgresql_begin(conn):
    """A page view's transaction on PostgreSQL reads one snapshot, read-only, as SQLite's
    does: what a page keeps drawn under a fingerprint it read first (patients/page.py, the
    board) is then drawn from the very state that fingerprint names, never from a later
    commit. psycopg puts both in the BEGIN it sends (no round trip); a read-only transaction
    is never refused for serialization, and a page view's writes wait for unit_of_work.finish,
    which begins a transaction of its own."""
    if conn.dialect.name != "postgresql":
        return
    # Imported here: an app on SQLite never loads psycopg (a tenth of a second of start-up).
    from psycopg import IsolationLevel

    reading = unit_of_work.is_read_request()
    if conn.connection.info.get("snapshot_reads", False) != reading:
        dbapi_connection = conn.connection.dbapi_connection
        dbapi_connection.isolation_level = IsolationLevel.REPEATABLE_READ if reading else None
        dbapi_connection.read_only = True if reading else None
        conn.connection.info["snapshot_reads"] = reading


def flush_log(session) -> None:
    """Put every committed transaction on disk, lazy ones included (unit_of_work.lazy_commit):
    before the audit trail's latest row is anchored outside the database."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # A transaction with an id waits on commit for the log up to its own end, which
        # holds every lazy commit before it.
        connection.exec_driver_sql("SELECT pg_current_xact_id()")
        session.commit()
        return
    for _seq, name, path in connection.exec_driver_sql("PRAGMA database_list").all():
        if name == "main" and path and os.path.exists(path + "-wal"):
            fd = os.open(path + "-wal", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _empty_pools_in_child() -> None:
    """In a forked child, drop the pools inherited from the parent without closing their
    connections (SQLAlchemy's recipe for os.fork): two processes on one connection would
    mix their conversations, and closing it would end the parent's too."""
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_empty_pools_in_child)


# A pooled PostgreSQL connection returned this recently is used again without a ping: no
# restart of the server is this quick, so one that outlived a restart has lain idle longer
# and is pinged (and replaced). One the server ends within this moment (an administrator)
# costs its view a 503, nothing saved, and the pool is made anew (tests/test_postgres.py).
# SQLAlchemy's pool_pre_ping pinged at every checkout: one round trip in ten of a recorded
# reading, two in a page view (its audit row's transaction checks out again).
PING_AFTER_IDLE_SECONDS = 0.25
_RETURNED_AT = "returned_at"


def ping_if_idle(engine: Engine):
    """The pool's checkout hook for `engine`: ping a connection that was returned more than
    PING_AFTER_IDLE_SECONDS ago. A dead one is replaced (the pool checks out again on
    DisconnectionError), as with pool_pre_ping."""

    def checkout(dbapi_connection, record, proxy) -> None:
        if time.monotonic() - record.info.get(_RETURNED_AT, 0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.DisconnectionError(str(error)) from error

    return checkout


def note_returned(dbapi_connection, record) -> None:
    """A connection just made, or returned to the pool, is known to be alive now."""
    record.info[_RETURNED_AT] = time.monotonic()


def init_app(app: Flask) -> None:
    with app.app_context():
        _engines.update(db.engines.values())
        for engine in db.engines.values():
            if engine.dialect.name == "postgresql":
                sa.event.listen(engine, "checkout", ping_if_idle(engine))
                sa.event.listen(engine, "connect", note_returned)
                sa.event.listen(engine, "checkin", note_returned)
