"""SQLite writers take turns on a lock file beside the database (database.QueuedWrites,
issue 8): a writer waits while another holds its turn and goes once that one has committed,
rolled back or closed; readers never queue; and a writer waiting on its own thread still
fails after the busy timeout, as it did before, instead of hanging."""

import fcntl
import os
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from infusion_tracker import database
from infusion_tracker.extensions import db
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(
    bool(TEST_DATABASE_URL), reason="SQLite's write queue (PostgreSQL queues writers itself)"
)


def queue_path() -> str:
    return db.engine.url.database + "-writers"


def turn_is_free() -> bool:
    """Whether a writer arriving now would go straight in (a fresh descriptor asks)."""
    fd = os.open(queue_path(), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def writing() -> sa.Connection:
    """A connection of the app's pool in a write transaction (outside a request: a write)."""
    connection = db.engine.connect()
    connection.begin()
    connection.exec_driver_sql("UPDATE staff SET failed_logins = failed_logins")
    return connection


@pytest.fixture
def quiet(app, make_staff):
    make_staff("np")
    db.session.commit()  # the test's own session holds no turn


def test_a_writer_waits_for_its_turn_and_goes_when_it_is_given_up(quiet):
    first = writing()
    assert not turn_is_free()
    done = threading.Event()
    engine = db.engine  # the thread has no app context

    def second_writer():
        with engine.connect() as connection:
            connection.begin()
            connection.exec_driver_sql("UPDATE staff SET failed_logins = failed_logins + 1")
            connection.commit()
        done.set()

    thread = threading.Thread(target=second_writer, daemon=True)
    thread.start()
    assert not done.wait(0.3), "the second writer did not wait for its turn"
    first.commit()
    first.close()
    assert done.wait(5), "the second writer was not let in after the first committed"
    thread.join(5)
    assert turn_is_free()
    assert db.session.scalar(sa.text("SELECT max(failed_logins) FROM staff")) == 1


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_every_way_a_write_transaction_ends_gives_up_the_turn(quiet, ending):
    connection = writing()
    assert not turn_is_free()
    getattr(connection, ending)()
    assert turn_is_free()
    connection.close()


def test_readers_do_not_queue(app, client, quiet, login_as):
    login_as("np")
    holder = writing()
    try:
        answer = client.get("/protocols/")  # a page view with no audit row: reads only
        assert answer.status_code == 200
    finally:
        holder.rollback()
        holder.close()


def test_a_writer_waiting_on_its_own_thread_fails_after_the_busy_timeout(
    quiet, monkeypatch
):
    """The wait is bounded: a second connection of the same thread (which can never get the
    turn) polls for the busy timeout, then SQLite's own wait refuses it."""
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    holder = writing()
    db.engine.pool.dispose()  # the next connection is made with the short busy timeout
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        writing()
    assert time.monotonic() - started < 5
    holder.rollback()
    holder.close()


def test_the_queue_file_is_private(quiet):
    writing().close()
    assert os.stat(queue_path()).st_mode & 0o777 == 0o600


def test_an_in_memory_database_does_not_queue():
    connection = sqlite3.connect(":memory:", factory=database.QueuedWrites)
    connection.queue_path = None
    connection.wait_turn_to_write()
    connection.execute("BEGIN IMMEDIATE")
    connection.commit()
    connection.close()
