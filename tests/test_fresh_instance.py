"""A newcomer's first commands: each CLI command, run FIRST on an empty instance folder as a
real `python -m flask` process, builds the schema through the migrations and does its job."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infusion_tracker.commands import COMMANDS
from infusion_tracker.demo import DEMO_PASSWORD, STAFF
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parent.parent


def flask(instance: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INFUSION_TRACKER_INSTANCE": str(instance)}
    for name in ("DATABASE_URL", "SECRET_KEY", "FLASK_APP"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "infusion_tracker", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


FIRST_RUNS = {
    "verify-audit": ([], "Audit chain OK: 0 rows verified."),
    "create-staff": (
        ["office", "--role", "admin", "--full-name", "Olive Martinez", "--password", PASSWORD],
        "Created admin account “office” for Olive Martinez.",
    ),
    "backup": (["copy.db"], "integrity check ok"),
    "seed-demo": ([], "Demo clinic created."),
    "audit-checkpoint": ([], "The audit trail is empty; nothing to checkpoint."),
}
# PostgreSQL only, run by the tables' owner after `db upgrade`: refused on SQLite.
POSTGRESQL_ONLY = {"grant-app-role"}


# Commands that work on a file they are given, never on the instance (tests/test_cli.py).
NOT_ON_THE_INSTANCE = {"restore-check"}


def test_every_command_is_tried_first():
    expected = set(FIRST_RUNS) | POSTGRESQL_ONLY | NOT_ON_THE_INSTANCE
    assert {command.name for command in COMMANDS} == expected


def test_grant_app_role_on_sqlite_is_refused_plainly(tmp_path):
    result = flask(tmp_path / "instance", "grant-app-role", "clinic_app")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert "grant-app-role is for PostgreSQL installations." in result.stderr


@pytest.mark.parametrize("name", FIRST_RUNS)
def test_a_command_run_first_on_an_empty_instance_builds_the_schema(tmp_path, name):
    instance = tmp_path / "instance"
    args, expected = FIRST_RUNS[name]
    if name == "backup":
        args = [str(tmp_path / "copy.db")]
    output = ok(flask(instance, name, *args))
    assert expected in output
    assert (instance / "infusion_tracker.db").exists()
    if name == "seed-demo":
        # SPEC §7: each login as `USERNAME ROLE` on its own line, the password in quotes.
        logins = re.findall(r"^(\S+) (admin|physician|np|pa)$", output, re.MULTILINE)
        assert logins == [(username, role) for username, _, _, role in STAFF]
        assert f'"{DEMO_PASSWORD}"' in output
    # The schema is whole: the next command finds what the first one wrote, chain intact.
    assert re.search(r"Audit chain OK: \d+ rows verified\.", ok(flask(instance, "verify-audit")))

