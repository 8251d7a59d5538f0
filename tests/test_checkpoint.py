"""SQLite's checkpoints run in a thread of each worker process, not inside the commit of
whichever page view finds the write-ahead log past 1,000 pages (issue 8: 100-160 ms in one
view of every 150 or so at `clinic` scale). Seen in the files: with the thread on, the
database file alone (without its WAL) soon holds what was committed; without it, it does not."""

import shutil
import sqlite3
import threading
import time

import pytest

from infusion_tracker import database
from infusion_tracker.extensions import db
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite's write-ahead log")


def audit_rows_in_the_file_alone(app, tmp_path) -> int:
    """Audit rows in a copy of the database file without its WAL: what was checkpointed."""
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    copy = tmp_path / "alone.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "audit_event" not in tables:  # even the schema is still in the WAL
            return 0
        return connection.execute("SELECT count(*) FROM audit_event").fetchone()[0]


def view_patients(client, login_as, make_patient, count=5):
    login_as("np")
    patient = make_patient()
    for _ in range(count):
        assert client.get(f"/patients/{patient.id}").status_code == 200  # an audit row each


@pytest.mark.parametrize("app_config", [{"SQLITE_CHECKPOINT_SECONDS": 0.05}])
def test_a_thread_checkpoints_what_page_views_commit(app, client, login_as, make_patient, tmp_path):
    view_patients(client, login_as, make_patient)
    assert any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    give_up = time.monotonic() + 5
    while audit_rows_in_the_file_alone(app, tmp_path) < 5 and time.monotonic() < give_up:
        time.sleep(0.05)
    assert audit_rows_in_the_file_alone(app, tmp_path) >= 5
    # SQLite's own checkpoint stays as a backstop, far out.
    pages = db.session.connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == database.BACKSTOP_PAGES


def test_without_the_thread_the_views_stay_in_the_log(
    app, client, login_as, make_patient, tmp_path
):
    view_patients(client, login_as, make_patient)
    time.sleep(0.2)
    assert audit_rows_in_the_file_alone(app, tmp_path) == 0
