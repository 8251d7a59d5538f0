"""Row locks and the audit chain's lock on PostgreSQL: a transaction that holds a lock on a
staff account and then waits for the chain's lock must not hold up a transaction that holds the
chain's lock and appends a row naming that account (its foreign key takes a KEY SHARE lock on
the account's row). Found by the benchmark: a sign-in and an export's audit row of the same
user deadlocked ("deadlock detected", 503).

Runs in the suite's PostgreSQL run (TEST_DATABASE_URL); the SQLite run skips it."""

import threading
import time

import pytest
import sqlalchemy as sa

from infusion_tracker import audit
from infusion_tracker.auth import services as auth_services
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, Staff
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def on_postgresql():
    if not TEST_DATABASE_URL:
        pytest.skip("row locks and advisory locks of PostgreSQL (TEST_DATABASE_URL)")


def in_thread(app, work) -> tuple[threading.Thread, dict]:
    answer: dict = {}

    def run():
        with app.app_context():
            try:
                answer["result"] = work()
            except Exception as error:  # noqa: BLE001 - the test reads what failed
                answer["error"] = error
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, answer


def test_a_sign_in_holding_its_account_does_not_hold_up_an_audit_row_naming_it(app, make_staff):
    """The sign-in locks the account while it checks the password (a tenth of a second or
    more): an audit row of the same user, appended meanwhile under the chain's lock, goes on."""
    nurse = make_staff("np")
    staff_id, username = nurse.id, nurse.username
    db.session.commit()
    assert auth_services.find_staff(username, for_update=True) is not None  # held, uncommitted

    def append():
        audit.record("test.elsewhere", actor=db.session.get(Staff, staff_id))
        db.session.commit()
        return "appended"

    thread, answer = in_thread(app, append)
    thread.join(timeout=5)
    waited = thread.is_alive()
    db.session.rollback()  # the sign-in ends
    thread.join(timeout=10)
    assert not waited, "the audit row waited for the sign-in's lock on the account"
    assert answer == {"result": "appended"}


def test_signing_out_while_another_request_appends_a_row_naming_the_user_is_no_deadlock(
    app, client, login_as
):
    """Signing out changes the account's session token (a unique column, so its row lock is
    the strongest): it waits for the chain's lock before it writes that change, not after."""
    nurse = login_as("np")
    staff_id = nurse.id
    db.session.commit()
    other = db.engine.connect()
    other.begin()
    other.execute(sa.text("SELECT pg_advisory_xact_lock(7201001)"))  # audit.lock_chain's

    thread, answer = in_thread(app, lambda: client.post("/logout").status_code)
    time.sleep(0.5)  # the sign-out is waiting for the chain's lock
    started = time.monotonic()
    try:
        other.execute(sa.insert(AuditEvent.__table__).values(
            occurred_at=sa.func.now(), created_at=sa.func.now(), actor_id=staff_id,
            actor_name="x", action="test.elsewhere", entity_type="", details={},
            remote_addr="", prev_hash="", hash="",
        ))
        inserted = time.monotonic() - started
    finally:
        other.rollback()  # nothing of it stays; the chain's lock is free
        other.close()
    thread.join(timeout=10)
    assert inserted < 0.5, f"the row naming the user waited {inserted:.1f} s"
    assert answer == {"result": 302}


def test_locking_a_session_does_not_hold_up_another_session_on_the_same_protocol(
    app, make_infusion, make_protocol
):
    """guards.lock reads the session with its protocol (whose limits a reading is checked
    against) but locks the session's row alone: a writer on another session of the protocol
    goes on."""
    from infusion_tracker.infusions import guards

    protocol = make_protocol()
    first, second = make_infusion(protocol=protocol), make_infusion(protocol=protocol)
    first_id, second_id = first.id, second.id
    db.session.commit()
    assert guards.lock(first_id).protocol is not None  # held, uncommitted

    def lock_second():
        infusion = guards.lock(second_id)
        limits = infusion.protocol.limits
        db.session.rollback()
        return limits is not None

    thread, answer = in_thread(app, lock_second)
    thread.join(timeout=5)
    waited = thread.is_alive()
    db.session.rollback()
    thread.join(timeout=10)
    assert not waited, "locking one session waited for another on the same protocol"
    assert answer == {"result": True}
