"""A rate-limit store shared by every worker process on one machine, in an SQLite file
(issue 9, defect 5).

Flask-Limiter's memory:// store is per process: under gunicorn with 4 workers each worker
counts on its own, so one address got up to 4 × LOGIN_RATE_LIMIT_PER_USERNAME guesses at an
account — more than the lockout threshold, which brought the lockout back as a weapon.
`limits` ships memory, Redis, Memcached and MongoDB stores; this one needs no server: the
workers share a small file in the instance folder (0600), fixed windows, one row per key.
Several machines behind a balancer need a store they all reach (redis://…).
"""

import os
import sqlite3
import time
from contextlib import closing, suppress
from urllib.parse import unquote

from limits.storage import Storage

SCHEME = "instance-sqlite"
# Rows of windows that ended long ago are dropped now and then, not on every request.
PRUNE_EVERY = 500


class SQLiteStorage(Storage):
    """URI: instance-sqlite:///absolute/path/ratelimit.db"""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = unquote(uri.split("://", 1)[1])
        self.calls = 0
        if not os.path.exists(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with suppress(FileExistsError):  # another worker made it first
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("CREATE TABLE IF NOT EXISTS window "
                       "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, ends REAL NOT NULL)")

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def _connect(self) -> sqlite3.Connection:
        # Autocommit; BEGIN IMMEDIATE where a read and a write must not interleave.
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM window WHERE key = ? AND ends <= ?", (key, now))
            db.execute(
                "INSERT INTO window (key, count, ends) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = count + excluded.count",
                (key, amount, now + expiry))
            (count,) = db.execute("SELECT count FROM window WHERE key = ?", (key,)).fetchone()
            self.calls += 1
            if self.calls % PRUNE_EVERY == 0:
                db.execute("DELETE FROM window WHERE ends <= ?", (now,))
            db.execute("COMMIT")
        return count

    def get(self, key: str) -> int:
        with closing(self._connect()) as db:
            row = db.execute("SELECT count FROM window WHERE key = ? AND ends > ?",
                             (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        with closing(self._connect()) as db:
            row = db.execute("SELECT ends FROM window WHERE key = ? AND ends > ?",
                             (key, time.time())).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        try:
            with closing(self._connect()) as db:
                db.execute("SELECT 1 FROM window LIMIT 1")
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with closing(self._connect()) as db:
            return db.execute("DELETE FROM window").rowcount

    def clear(self, key: str) -> None:
        with closing(self._connect()) as db:
            db.execute("DELETE FROM window WHERE key = ?", (key,))
