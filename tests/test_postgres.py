"""PostgreSQL-specific checks, run whatever backend the rest of the suite uses: the
append-only trigger, tamper detection behind it, and backup refusing to copy PostgreSQL.

Each test works in a schema of its own, so it never disturbs another suite using the same
database. Without a reachable server these tests skip, except under CI=true, where they fail.
"""

import os
import secrets

import psycopg
import pytest
import sqlalchemy as sa

from infusion_tracker import audit, create_app, database
from infusion_tracker.auth.services import create_staff
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent
from tests.conftest import PASSWORD, base_config, login, postgres_reachable

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def pg_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    reason = postgres_reachable(url)
    if reason:
        message = f"PostgreSQL not reachable at {url}: {reason}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def pg_app(pg_url):
    schema = f"it_test_{secrets.token_hex(4)}"
    admin_engine = sa.create_engine(pg_url)
    with admin_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    app = create_app(base_config(url.render_as_string(hide_password=False)))
    try:
        with app.app_context():
            db.create_all()
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin_engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin_engine.dispose()


@pytest.fixture
def rows(pg_app):
    staff = create_staff("nia", "Nia Nurse", "np", PASSWORD)
    for number in range(3):
        audit.record("test.event", actor=staff, details={"n": number})
    db.session.commit()
    ids = list(db.session.scalars(sa.select(AuditEvent.id).order_by(AuditEvent.id)))
    db.session.commit()  # hold no lock: TRUNCATE below would wait for it for ever
    return ids


def raw_connection():
    """A second connection that gives up on a lock rather than waiting for ever."""
    db.session.commit()
    conn = db.engine.connect()
    conn.exec_driver_sql("SET lock_timeout = '5s'")
    return conn


def test_runs_on_postgresql(pg_app):
    assert db.engine.dialect.name == "postgresql"


def test_connections_run_without_jit(pg_app):
    """Compiling plans cost more than running them at chain scale (bench/RESULTS.md)."""
    assert db.session.execute(sa.text("SHOW jit")).scalar() == "off"
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW jit").scalar() == "off"


def one_pooled_backend() -> int:
    """The pool emptied, then one connection made and returned: the server process behind it."""
    db.session.remove()
    db.engine.dispose()
    with db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def end_backend(pg_url: str, pid: int) -> None:
    """The server closes that connection, as a restart or an administrator would."""
    admin = sa.create_engine(pg_url)
    with admin.begin() as connection:
        assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar()
    admin.dispose()


def test_a_pooled_connection_the_server_closed_is_replaced_unseen(pg_app, pg_url, monkeypatch):
    """A connection that lay idle in the pool is pinged before use: one the server closed
    meanwhile (a restart, an administrator) is replaced, and the request never sees it."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    pid = one_pooled_backend()
    end_backend(pg_url, pid)
    assert pg_app.test_client().get("/healthz").status_code == 200
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid


def test_a_connection_closed_moments_after_its_use_costs_one_try_again_never_a_500(
    pg_app, pg_url, rows, monkeypatch
):
    """Returned within PING_AFTER_IDLE_SECONDS, a connection is used unpinged: if the server
    closed it in that moment, the page says nothing was saved, try again (503), and the pool
    is made anew, so the next view is served."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    client = pg_app.test_client()

    def served(request):  # in an app context of its own, as a served request is
        with pg_app.app_context():
            return request()

    assert served(lambda: login(client, "nia")).status_code == 302
    end_backend(pg_url, one_pooled_backend())
    refused = served(lambda: client.get("/patients/"))
    assert refused.status_code == 503
    assert "Nothing was saved; try again." in refused.get_data(as_text=True)
    assert served(lambda: client.get("/patients/")).status_code == 200


def test_a_connection_returned_moments_ago_is_used_without_a_ping(pg_app, monkeypatch):
    """Under load every connection was returned moments ago: pinging each (pool_pre_ping) was
    one round trip of a request's ten or so."""
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 60.0)
    one_pooled_backend()
    client = pg_app.test_client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert pings == []
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert client.get("/healthz").status_code == 200
    assert pings == [1]


def test_a_cursors_description_is_psycopgs_built_when_read(pg_app, rows):
    """postgres_cursor.Cursor: what SQLAlchemy never reads of a statement it ran before is
    not built, and what anything reads is psycopg's own description of that result, even
    after the cursor has run another statement."""
    from infusion_tracker.postgres_cursor import Cursor, Description

    statement = "SELECT id, action, occurred_at, details FROM audit_event ORDER BY id"
    dbapi_connection = db.session.connection().connection.dbapi_connection
    plain = psycopg.Cursor(dbapi_connection)
    plain.execute(statement)
    with dbapi_connection.cursor() as cursor:
        assert isinstance(cursor, Cursor)
        cursor.execute(statement)
        described = cursor.description
        assert isinstance(described, Description) and described._columns is None
        cursor.execute("SELECT 1 AS one")  # the cursor moves on
        assert [tuple(column) for column in described] == [
            tuple(column) for column in plain.description
        ]
        assert [column.name for column in described] == ["id", "action", "occurred_at", "details"]
        assert [column.name for column in cursor.description] == ["one"]
        cursor.execute("SET LOCAL statement_timeout = '5s'")
        assert cursor.description is None
    # Through SQLAlchemy, a statement it has not seen (its result read by name) and one it
    # has (its kept metadata): both give the same rows.
    query = sa.text(f"{statement} LIMIT 2")
    first = [row._mapping["action"] for row in db.session.execute(query)]
    assert first == [row[1] for row in plain.fetchall()[:2]] == ["staff.created", "test.event"]
    assert [row.action for row in db.session.execute(query)] == first


def test_the_review_queue_runs_on_the_plan_kept_for_any_values(pg_app):
    """Planning the queue's statement afresh took three times as long as running it at chain
    scale (bench/RESULTS.md, Stop 22); only its transaction is switched, not the board's."""
    from infusion_tracker.review.services import review_queue

    def mode() -> str:
        return db.session.execute(sa.text("SHOW plan_cache_mode")).scalar()

    assert mode() == "auto"
    review_queue()
    assert mode() == "force_generic_plan"
    db.session.commit()
    assert mode() == "auto"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET action = 'rewritten'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ],
)
def test_trigger_refuses_changes(rows, statement):
    with raw_connection() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        conn.exec_driver_sql(statement)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == len(rows)
    assert audit.verify_chain().ok


def test_tampering_behind_a_disabled_trigger_is_found(rows):
    with raw_connection() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
        conn.exec_driver_sql(
            f"UPDATE audit_event SET details = '{{\"n\": 42}}' WHERE id = {rows[2]}"
        )
        conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_change")
        conn.commit()
    report = audit.verify_chain()
    assert report.broken_at == rows[2]
    result = pg_runner_invoke(["verify-audit"])
    assert result.exit_code == 1 and f"BROKEN at row id {rows[2]}" in result.output


def test_backup_refuses_postgresql(pg_app, tmp_path):
    result = pg_runner_invoke(["backup", str(tmp_path / "copy.db")])
    assert result.exit_code == 1
    assert "uses postgresql" in result.output and "pg_dump" in result.output
    assert not (tmp_path / "copy.db").exists()


def test_timestamps_keep_their_zone(rows):
    event = db.session.get(AuditEvent, rows[0])
    assert event.occurred_at.utcoffset().total_seconds() == 0


def pg_runner_invoke(args):
    from flask import current_app

    return current_app.test_cli_runner().invoke(args=args)
