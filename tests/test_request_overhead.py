"""What every request pays (issue 8; bench/RESULTS.md, Stop 15): a request that never touches
the database begins and commits no transaction, /healthz asks the database outside the ORM
session, and the rate limiter's request hooks run only on the views it limits."""

from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from infusion_tracker import create_app, throttle
from infusion_tracker.extensions import db
from tests.conftest import base_config


@contextmanager
def database_traffic():
    """Connections taken from the pool, transactions begun and committed, and statements sent
    through SQLAlchemy (transaction control included) while the block runs."""
    seen = {"checkout": 0, "begin": 0, "commit": 0, "statements": 0}
    engine = db.engine

    def counter(name):
        def count(*args):
            seen[name] += 1

        return count

    listeners = [
        (engine.pool, "checkout", counter("checkout")),
        (engine, "begin", counter("begin")),
        (engine, "commit", counter("commit")),
        (engine, "before_cursor_execute", counter("statements")),
    ]
    for target, name, function in listeners:
        sa.event.listen(target, name, function)
    try:
        yield seen
    finally:
        for target, name, function in listeners:
            sa.event.remove(target, name, function)


def test_healthz_asks_the_database_without_a_transaction(app, client):
    with database_traffic() as seen:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    # SELECT 1 runs on the pooled connection itself: no BEGIN, no COMMIT, no ORM session.
    assert seen == {"checkout": 1, "begin": 0, "commit": 0, "statements": 0}
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_answers_503_while_the_database_does_not(tmp_path):
    unreachable = f"sqlite:///{tmp_path / 'no-such-folder' / 'app.db'}"
    app = create_app(base_config(unreachable))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "database unavailable"}


def test_a_request_that_reads_nothing_opens_no_transaction(app, client):
    with database_traffic() as seen:
        response = client.get("/patients/")  # signed out: sent to the sign-in page
    assert response.status_code == 302
    assert seen == {"checkout": 0, "begin": 0, "commit": 0, "statements": 0}


def test_a_page_view_still_reads_in_one_transaction_and_commits_it(app, client, login_as):
    login_as("np")
    with database_traffic() as seen:
        response = client.get("/protocols/")
    assert response.status_code == 200
    assert seen["begin"] == seen["commit"] == 1


def test_the_limiters_hooks_are_on_every_limited_view(app):
    """throttle.py runs Flask-Limiter's request hooks only where LIMITED_ATTR is set: a view
    limited some other way would lose its deductions (refused attempts would not count)."""
    limited = {
        endpoint for endpoint, view in app.view_functions.items()
        if getattr(view, throttle.LIMITED_ATTR, False)
    }
    wrapped = {
        endpoint for endpoint, view in app.view_functions.items()
        if getattr(view, "__wrapper-limiter-instance", None) == throttle.limiter  # a weak proxy
    }
    assert limited == wrapped == {"auth.login", "two_factor.sign_in", "review.sign"}


@pytest.fixture
def app_wide_limit(tmp_path):
    config = {"RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "2 per minute"}
    app = create_app({**base_config(f"sqlite:///{tmp_path / 'app.db'}"), **config})
    with app.app_context():
        db.create_all()
    return app


def test_an_app_wide_limit_still_applies_to_every_view(app_wide_limit):
    client = app_wide_limit.test_client()
    answers = [client.get("/healthz").status_code for _ in range(3)]
    assert answers == [200, 200, 429]
