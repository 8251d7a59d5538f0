"""The audit chain is keyed and anchored (issue 9, defect 2): a hash recomputed without
the key does not verify, and `verify-audit` checks the last checkpoint written outside the
database, so cutting the tail or rewriting and rehashing (even with the key) is found."""

import hashlib
import hmac
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from infusion_tracker import audit
from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent
from tests.test_audit import raw


@pytest.fixture
def checkpoints(tmp_path):
    return tmp_path / "anchors" / "audit_checkpoints"


@pytest.fixture
def trail(app, make_staff):
    staff = make_staff("np", username="nia")
    for number in range(5):
        audit.record("test.event", actor=staff, details={"n": number})
    db.session.commit()
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))


def cli(runner, args):
    """Run a command as from a shell: the test's open transaction ends first (on SQLite it
    would hold the write lock the command's schema check waits for)."""
    db.session.commit()
    return runner.invoke(args=args)


def unkeyed(prev_hash: str, row) -> str:
    """The old, unkeyed SHA-256 that anyone with the source could recompute."""
    payload = json.dumps(
        {
            "prev": prev_hash,
            "at": row.occurred_at.isoformat(),
            "actor_id": row.actor_id,
            "actor": row.actor_name,
            "action": row.action,
            "entity": [row.entity_type, row.entity_id],
            "patient_id": row.patient_id,
            "details": row.details,
            "remote": row.remote_addr,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def plain_rows() -> list[SimpleNamespace]:
    table = AuditEvent.__table__
    rows = db.session.execute(sa.select(table).order_by(table.c.id)).all()
    return [SimpleNamespace(**row._mapping) for row in rows]


def rewrite_from(rows, index: int, details: dict, hasher) -> None:
    """Edit one row and recompute every hash from there with `hasher(prev, row)`."""
    prev = rows[index - 1].hash if index else audit.GENESIS
    for position, row in enumerate(rows[index:], start=index):
        if position == index:
            row.details = details
        row.prev_hash = prev
        row.hash = hasher(prev, row)
        prev = row.hash
        values = json.dumps(row.details).replace("'", "''")
        raw(
            f"UPDATE audit_event SET details = '{values}', prev_hash = '{row.prev_hash}', "
            f"hash = '{row.hash}' WHERE id = {row.id}",
            bypass=True,
        )


def test_the_hash_is_keyed(app, trail):
    row = trail[1]
    assert row.hash != unkeyed(row.prev_hash, row)
    app.config["AUDIT_KEY"] = "another key"
    assert audit.verify_chain().broken_at == trail[0].id


def test_rewriting_and_rehashing_without_the_key_is_found(trail):
    rows = plain_rows()
    rewrite_from(rows, 2, {"n": 99}, unkeyed)
    assert audit.verify_chain().broken_at == rows[2].id


def test_checkpoint_appends_lines_owner_only(runner, trail, checkpoints):
    first = cli(runner, ["audit-checkpoint", "--checkpoints", str(checkpoints)])
    assert first.exit_code == 0 and f"row id {trail[-1].id}" in first.output
    audit.record("test.event", details={"n": "later"})
    db.session.commit()
    cli(runner, ["audit-checkpoint", "--checkpoints", str(checkpoints)])
    lines = checkpoints.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:] == [str(trail[-1].id), trail[-1].hash]
    assert checkpoints.stat().st_mode & 0o777 == 0o600
    result = cli(runner, ["verify-audit", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 0, result.output
    assert "It matches the checkpoint" in result.output


def test_the_default_checkpoint_file_is_in_the_instance_folder(app, runner, trail):
    from pathlib import Path

    path = Path(app.instance_path) / "audit_checkpoints"
    app.config["AUDIT_CHECKPOINT_FILE"] = None
    try:
        assert audit.checkpoint_path() == path
    finally:
        path.unlink(missing_ok=True)


def test_deleting_the_tail_is_found_against_the_checkpoint(runner, trail, checkpoints):
    cli(runner, ["audit-checkpoint", "--checkpoints", str(checkpoints)])
    cut_from, last = trail[3].id, trail[-1].id
    raw(f"DELETE FROM audit_event WHERE id >= {cut_from}", bypass=True)
    assert audit.verify_chain().ok  # the chain alone cannot tell
    result = cli(runner, ["verify-audit", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 1
    assert f"row id {last}" in result.output and "missing" in result.output


def test_rewriting_and_rehashing_with_the_key_is_found_against_the_checkpoint(
    runner, trail, checkpoints
):
    cli(runner, ["audit-checkpoint", "--checkpoints", str(checkpoints)])
    rows = plain_rows()
    rewrite_from(rows, 2, {"n": 99}, audit.row_hash)
    assert audit.verify_chain().ok  # a key holder can rebuild the chain itself
    result = cli(runner, ["verify-audit", "--checkpoints", str(checkpoints)])
    assert result.exit_code == 1
    assert "no longer has the hash" in result.output


def test_the_audit_key_is_generated_once_into_the_instance_folder(tmp_path):
    from infusion_tracker.config import secret_key_from_instance

    key = secret_key_from_instance(str(tmp_path), "audit_key")
    assert secret_key_from_instance(str(tmp_path), "audit_key") == key
    assert (tmp_path / "audit_key").stat().st_mode & 0o777 == 0o600
    assert hmac.compare_digest(key, (tmp_path / "audit_key").read_text().strip())
