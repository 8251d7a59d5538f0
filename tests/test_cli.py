"""The command line: create-staff, verify-audit, backup."""

import sqlite3
from contextlib import closing

import pytest
import sqlalchemy as sa

from infusion_tracker.extensions import db
from infusion_tracker.models import AuditEvent, Staff
from infusion_tracker.passwords import verify_password
from tests.conftest import PASSWORD, login
from tests.test_audit import raw


def staff_named(username: str) -> Staff | None:
    db.session.expire_all()
    return db.session.scalar(sa.select(Staff).where(Staff.username == username))


# --- create-staff ----------------------------------------------------------------------


def test_create_staff_with_password(runner, client):
    result = runner.invoke(
        args=[
            "create-staff",
            "Office",
            "--role",
            "admin",
            "--full-name",
            "Olive Manager",
            "--credentials",
            "MBA",
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Created admin account “office” for Olive Manager, MBA." in result.output
    staff = staff_named("office")
    assert staff.role == "admin" and staff.password_hash.startswith("scrypt:")
    event = db.session.scalars(sa.select(AuditEvent)).one()
    assert (event.action, event.details["via"]) == ("staff.created", "cli")
    assert login(client, "office").headers["Location"] == "/admin/staff/"


def test_create_staff_prompts_for_the_password(runner):
    result = runner.invoke(
        args=["create-staff", "doc", "--role", "physician", "--full-name", "Ada Doctor"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and PASSWORD not in result.output  # hidden input
    assert verify_password(staff_named("doc").password_hash, PASSWORD)


def test_create_staff_prompt_asks_again_on_mismatch(runner):
    other = "another long phrase 99"
    result = runner.invoke(
        args=["create-staff", "doc", "--role", "physician", "--full-name", "Ada Doctor"],
        input=f"{PASSWORD}\n{other}\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert verify_password(staff_named("doc").password_hash, PASSWORD)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--password", "short"], "at least 12 characters"),
        (["--password", "password1234"], "too common"),
        (["--password", PASSWORD, "--full-name", " "], "Enter the full name."),
    ],
)
def test_create_staff_refusals(runner, args, message):
    base = ["create-staff", "nia", "--role", "np", "--full-name", "Nia Nurse"]
    result = runner.invoke(args=base + args)
    assert result.exit_code == 1
    assert message in result.output
    assert staff_named("nia") is None


def test_create_staff_refuses_a_taken_username_in_any_case(runner, make_staff):
    make_staff("np", username="nia")
    result = runner.invoke(
        args=["create-staff", "NIA", "--role", "pa", "--full-name", "X Y", "--password", PASSWORD]
    )
    assert result.exit_code == 1 and "already taken" in result.output


def test_create_staff_refuses_an_unknown_role(runner):
    result = runner.invoke(
        args=["create-staff", "x1", "--role", "root", "--full-name", "X", "--password", PASSWORD]
    )
    assert result.exit_code == 2 and "root" in result.output
    assert staff_named("x1") is None


# --- verify-audit ----------------------------------------------------------------------


def test_verify_audit_ok(runner, make_staff):
    make_staff("np")
    make_staff("pa")
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 0
    assert "Audit chain OK: 2 rows verified." in result.output


def test_verify_audit_broken(runner, make_staff):
    make_staff("np")
    second = make_staff("pa")
    make_staff("physician")
    row_id = db.session.scalar(sa.select(AuditEvent.id).where(AuditEvent.entity_id == second.id))
    raw(f"UPDATE audit_event SET actor_name = 'someone else' WHERE id = {row_id}", bypass=True)
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 1
    assert f"BROKEN at row id {row_id}" in result.output


# --- backup ----------------------------------------------------------------------------


def test_backup(runner, make_staff, tmp_path):
    make_staff("admin", username="office")
    make_staff("np", username="nia")
    destination = tmp_path / "copies" / "backup.db"
    result = runner.invoke(args=["backup", str(destination)])
    if db.engine.dialect.name != "sqlite":
        assert result.exit_code == 1
        assert "pg_dump" in result.output and not destination.exists()
        return
    assert result.exit_code == 0, result.output
    assert "integrity check ok" in result.output
    with closing(sqlite3.connect(destination)) as copy:
        names = [row[0] for row in copy.execute("SELECT username FROM staff ORDER BY username")]
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert names == ["nia", "office"]
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).where(AuditEvent.action == "database.backed_up")
        )
        == 1
    )
    db.session.commit()  # end the count's transaction: on SQLite it holds the write lock
    again = runner.invoke(args=["backup", str(destination)])
    assert again.exit_code == 1 and "already exists" in again.output


# --- backup checked, restore-check (issue 9) -------------------------------------------


def _backup(runner, tmp_path, name="backup.db"):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("backup copies SQLite files; PostgreSQL uses pg_dump (README)")
    destination = tmp_path / name
    result = runner.invoke(args=["backup", str(destination)])
    assert result.exit_code == 0, result.output
    db.session.remove()
    return destination, result.output


def test_backup_counts_rows_and_says_how_to_restore(runner, make_staff, tmp_path):
    make_staff("np", username="nia")
    destination, output = _backup(runner, tmp_path)
    assert "staff 1" in output and "audit_event " in output
    assert f"restore-check {destination}" in output and "-wal" in output


def test_restore_check_passes_a_sound_backup_and_leaves_it_untouched(
    runner, make_staff, tmp_path
):
    make_staff("np", username="nia")
    destination, _ = _backup(runner, tmp_path)
    before = destination.read_bytes()
    files = sorted(tmp_path.iterdir())
    result = runner.invoke(args=["restore-check", str(destination)])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output and "audit chain OK" in result.output
    assert "staff 1" in result.output
    assert destination.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == files


def test_restore_check_finds_a_rewritten_audit_row(runner, make_staff, tmp_path):
    make_staff("np", username="nia")
    destination, _ = _backup(runner, tmp_path)
    with closing(sqlite3.connect(destination)) as copy:
        copy.execute("DROP TRIGGER audit_event_no_update")
        copy.execute("UPDATE audit_event SET actor_name = 'someone else' WHERE id = 1")
        copy.commit()
    result = runner.invoke(args=["restore-check", str(destination)])
    assert result.exit_code == 1
    assert "BROKEN: the audit chain" in result.output and "row id 1" in result.output


def test_restore_check_refuses_a_damaged_file(runner, make_staff, tmp_path):
    make_staff("np", username="nia")
    destination, _ = _backup(runner, tmp_path)
    data = bytearray(destination.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header's tail and the schema page
    destination.write_bytes(bytes(data))
    result = runner.invoke(args=["restore-check", str(destination)])
    assert result.exit_code == 1
    assert "BROKEN:" in result.output and "Traceback" not in result.output


def test_restore_check_needs_the_totp_key_the_secrets_were_sealed_with(
    app, runner, make_staff, tmp_path
):
    from infusion_tracker.sealing import seal

    staff = make_staff("physician", username="md")
    staff.totp_sealed = seal("JBSWY3DPEHPK3PXP", app.config["TOTP_KEY"])
    db.session.commit()
    destination, output = _backup(runner, tmp_path)
    assert "totp_key" in output
    assert runner.invoke(args=["restore-check", str(destination)]).exit_code == 0
    app.config["TOTP_KEY"] = "the key of some other instance"
    result = runner.invoke(args=["restore-check", str(destination)])
    assert result.exit_code == 1
    assert "BROKEN: 1 two-factor secret(s)" in result.output and "TOTP_KEY" in result.output
