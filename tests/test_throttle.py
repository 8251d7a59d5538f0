"""Password attempts limited per address (issue 9, defect 5): one place cannot lock an
account out, a password-spraying address is stopped, both audited; the rest of the suite
runs with the limiter off (RATELIMIT_ENABLED = False in conftest)."""

import pytest

from infusion_tracker.extensions import db
from infusion_tracker.models import Staff
from tests.conftest import PASSWORD, audit_rows, login


@pytest.fixture
def app_config():
    return {
        "RATELIMIT_ENABLED": True,
        "LOGIN_RATE_LIMIT": "6 per 15 minutes",
        "LOGIN_RATE_LIMIT_PER_USERNAME": "4 per 15 minutes",
    }


def wrong(client, username, address="10.0.0.1"):
    return client.post(
        "/login",
        data={"username": username, "password": "not the password 1"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_one_address_cannot_lock_an_account_out(client, make_staff):
    staff = make_staff("np", username="jroe")
    answers = [wrong(client, "jroe").status_code for _ in range(6)]
    assert 429 not in answers[:4] and answers[4:] == [429, 429]
    db.session.refresh(staff)
    assert staff.locked_until is None and staff.failed_logins == 4
    page = wrong(client, "jroe")
    html = page.get_data(as_text=True)
    assert page.status_code == 429 and "Too many attempts" in html
    assert "Retry-After" in page.headers
    throttled = audit_rows("auth.throttled")
    assert throttled and throttled[-1].actor_name == "anonymous (jroe)"
    assert throttled[-1].remote_addr == "10.0.0.1"
    assert throttled[-1].details["path"] == "/login"
    # Another place (or the lockout's own count, from several places) still works as before.
    assert login(client, "jroe").status_code == 302


def test_an_address_trying_many_usernames_is_stopped(client, make_staff):
    for n in range(7):
        make_staff("np", username=f"user{n}")
    answers = [wrong(client, f"user{n}", "10.0.0.2").status_code for n in range(7)]
    assert 429 not in answers[:6]
    assert answers[6] == 429
    # Other addresses are unaffected.
    assert wrong(client, "user0", "10.0.0.3").status_code != 429


def test_successful_sign_ins_do_not_count(client, make_staff):
    make_staff("np", username="jroe")
    for _ in range(8):
        response = client.post(
            "/login",
            data={"username": "jroe", "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "10.0.0.4"},
        )
        assert response.status_code == 302
        client.post("/logout", environ_base={"REMOTE_ADDR": "10.0.0.4"})


def test_lockout_from_several_places_is_still_audited(client, make_staff):
    staff = make_staff("np", username="jroe")
    for n in range(5):
        wrong(client, "jroe", f"10.1.0.{n}")
    db.session.refresh(staff)
    assert staff.locked_until is not None
    assert len(audit_rows("auth.locked_out")) == 1


def test_the_password_on_the_sign_form_is_limited_too(client, login_as, make_infusion):
    physician = login_as("physician")
    infusion = make_infusion(physician=physician, status="discharged")
    answers = [
        client.post(
            f"/infusions/{infusion.id}/sign",
            data={"password": "not the password 1", "version": infusion.version},
        ).status_code
        for _ in range(5)
    ]
    assert 429 in answers
    assert audit_rows("auth.throttled")[-1].actor_id == physician.id
    assert db.session.get(Staff, physician.id) is not None


# --- the store shared by the workers ---------------------------------------------------------


def test_the_default_store_is_a_file_shared_by_every_worker(tmp_path, monkeypatch):
    """Two store objects on one file stand for two gunicorn workers: they count together
    (Flask-Limiter's memory:// would count 1 and 1). The live suite checks the same under
    gunicorn with 4 workers (tests/suite/run_suite.py)."""
    import time

    from limits import parse
    from limits.storage import storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from infusion_tracker import create_app

    monkeypatch.setenv("INFUSION_TRACKER_INSTANCE", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "AUDIT_KEY": "x", "TOTP_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db'}"})
    uri = app.config["RATELIMIT_STORAGE_URI"]
    assert uri == f"instance-sqlite://{tmp_path / 'instance' / 'ratelimit.db'}"
    uri = f"instance-sqlite://{tmp_path / 'limits.db'}"
    one, two = (FixedWindowRateLimiter(storage_from_string(uri)) for _ in range(2))
    limit = parse("4 per 1 minute")
    answers = [(one if n % 2 else two).hit(limit, "10.0.0.1", "jroe") for n in range(6)]
    assert answers == [True] * 4 + [False] * 2
    assert (tmp_path / "limits.db").stat().st_mode & 0o777 == 0o600
    assert one.get_window_stats(limit, "10.0.0.1", "jroe").remaining == 0
    reset_at = two.get_window_stats(limit, "10.0.0.1", "jroe").reset_time
    assert time.time() < reset_at <= time.time() + 60
    other = FixedWindowRateLimiter(storage_from_string(uri))
    assert other.hit(parse("1 per 1 second"), "x")
    time.sleep(1.1)  # the window ends: counting starts again
    assert other.hit(parse("1 per 1 second"), "x")
