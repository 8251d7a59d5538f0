"""The audit trail: hash chain, tamper detection, and the database refusing UPDATE/DELETE
(on whichever backend the suite runs; tests/test_postgres.py covers PostgreSQL always)."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from infusion_tracker import audit
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent


def dialect() -> str:
    return db.engine.dialect.name


def raw(sql: str, *, bypass: bool = False) -> None:
    """Run SQL on its own connection; with bypass, switch the append-only trigger off first
    (SQLite: drop it; PostgreSQL: disable it for this transaction)."""
    db.session.commit()  # release SQLite's write lock held by the test's own session
    with db.engine.begin() as conn:
        if dialect() == "postgresql":
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # fail, never hang
        if bypass and dialect() == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_event_no_delete")
        if bypass and dialect() == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change")
        conn.exec_driver_sql(sql)
        if bypass and dialect() == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_change")


@pytest.fixture
def chain(app, make_staff):
    staff = make_staff("np", username="nia")  # writes staff.created
    for number in range(4):
        audit.record("test.event", actor=staff, details={"n": number})
    db.session.commit()
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))


def test_rows_link_to_the_one_before(chain):
    assert chain[0].prev_hash == audit.GENESIS
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.prev_hash == before.hash
        assert after.occurred_at >= before.occurred_at
    assert len({row.hash for row in chain}) == len(chain)
    report = audit.verify_chain()
    assert report.ok and report.rows == 5


def test_an_altered_row_is_found(chain):
    target = chain[2]
    raw("UPDATE audit_event SET details = '{\"n\": 99}' WHERE id = " + str(target.id), bypass=True)
    report = audit.verify_chain()
    assert not report.ok
    assert report.broken_at == target.id
    assert "contents" in report.reason


def test_a_rewritten_hash_breaks_the_next_link(chain):
    target = chain[1]
    raw(f"UPDATE audit_event SET hash = '{'f' * 64}' WHERE id = {target.id}", bypass=True)
    assert audit.verify_chain().broken_at == target.id


def test_a_deleted_row_is_found(chain):
    raw(f"DELETE FROM audit_event WHERE id = {chain[2].id}", bypass=True)
    report = audit.verify_chain()
    assert report.broken_at == chain[3].id
    assert "does not link" in report.reason


def test_verify_reads_in_batches(chain):
    assert audit.verify_chain(batch=2).rows == len(chain)
    raw(f"UPDATE audit_event SET action = 'x.y' WHERE id = {chain[4].id}", bypass=True)
    assert audit.verify_chain(batch=2).broken_at == chain[4].id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET action = 'rewritten'",
        "DELETE FROM audit_event",
    ],
)
def test_the_database_refuses_update_and_delete(chain, statement):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        raw(statement)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == len(chain)
    assert audit.verify_chain().ok


def test_the_orm_cannot_edit_a_row_either(chain):
    row = db.session.get(AuditEvent, chain[0].id)
    row.action = "rewritten"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    assert audit.verify_chain().ok


def test_details_of_any_type_survive_the_round_trip(app, make_staff):
    staff = make_staff("np")
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    audit.record(
        "test.event",
        actor=staff,
        details={"when": when, "day": when.date(), "ids": {3, 1}, 7: (1, 2), "x": 1.5},
    )
    db.session.commit()
    db.session.expire_all()
    row = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "test.event")).one()
    assert row.details == {
        "when": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "ids": [1, 3],
        "7": [1, 2],
        "x": 1.5,
    }
    assert audit.verify_chain().ok


def test_anonymous_actor_keeps_the_attempted_username(app):
    event = audit.record("auth.login_failed", attempted_username="ghost")
    assert event.actor_id is None and event.actor_name == "anonymous (ghost)"
    assert audit.record("auth.login_failed").actor_name == "anonymous"


def test_snapshot_and_changes(app, make_staff):
    staff = make_staff("np", full_name="Nia Nurse")
    before = audit.snapshot(staff, ("full_name", "role", "created_at"))
    assert isinstance(before["created_at"], str)
    staff.full_name = "Nia Smith"
    after = audit.snapshot(staff, ("full_name", "role", "created_at"))
    assert audit.changes(before, after) == {"full_name": ["Nia Nurse", "Nia Smith"]}
    db.session.rollback()


def test_append_only_ddl_names_the_triggers():
    assert any("audit_event_no_update" in sql for sql in audit.append_only_ddl("sqlite"))
    assert any("audit_event_no_change" in sql for sql in audit.append_only_ddl("postgresql"))
    assert audit.append_only_ddl("mysql") == []
