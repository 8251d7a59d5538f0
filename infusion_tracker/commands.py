"""CLI (`flask --app infusion_tracker …`): create-staff, verify-audit, backup, restore-check,
seed-demo.

Add a command by appending it to COMMANDS. Every command first builds or upgrades the schema
through the migrations (ensure_schema, shared with run.py), so any of them works first on a
new instance.
"""

import functools
import os
import re
import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import click
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import upgrade

from . import audit
from .database import PRIVATE_FILE
from .errors import RuleError
from .extensions import db
from .models import ROLES
from .sealing import WrongSealKey, unseal


def ensure_schema() -> None:
    """Build a new database, or bring an older one up to date, through the migrations (as
    `flask db upgrade`); a database already at the newest migration is left alone quietly."""
    with db.engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        if tables and "alembic_version" not in tables:
            return  # built straight from the models (the test suite's db.create_all)
        current = set()
        if "alembic_version" in tables:
            query = sa.text("SELECT version_num FROM alembic_version")
            current = set(connection.execute(query).scalars())
    config = current_app.extensions["migrate"].migrate.get_config()
    if current != set(ScriptDirectory.from_config(config).get_heads()):
        upgrade()


def schema_first(command):
    """Run ensure_schema before the command's body."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        ensure_schema()
        return command(*args, **kwargs)

    return wrapped


@click.command("create-staff")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--full-name", required=True)
@click.option("--credentials", default="", help="Printed after the name, e.g. MD or APRN.")
@click.option("--password", help="Prompted for (hidden, twice) when not given.")
@schema_first
def create_staff_command(username, role, full_name, credentials, password):
    """Create a staff account (the first admin, or any other)."""
    from .auth.services import create_staff

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        staff = create_staff(
            username, full_name, role, password, credentials=credentials, via="cli"
        )
    except RuleError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Created {staff.role} account “{staff.username}” for {staff.display_name}.")


CHECKPOINT_FILE = click.option(
    "--checkpoints",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint file (default: AUDIT_CHECKPOINT_FILE or instance/audit_checkpoints).",
)


@click.command("verify-audit")
@CHECKPOINT_FILE
@schema_first
def verify_audit_command(checkpoints: Path | None):
    """Check the audit trail's keyed hash chain and its last checkpoint; exit 1 if broken."""
    report = audit.verify_chain()
    if not report.ok:
        click.echo(
            f"Audit chain BROKEN at row id {report.broken_at} (row {report.rows} in order): "
            f"{report.reason}. Rows from there on cannot be trusted.",
            err=True,
        )
        raise click.exceptions.Exit(1)
    mark = audit.last_checkpoint(checkpoints)
    if mark is None:
        click.echo(
            f"Audit chain OK: {report.rows} rows verified. "
            "No checkpoint yet: run audit-checkpoint on a schedule."
        )
        return
    problem = audit.check_against(mark)
    if problem:
        click.echo(f"Audit chain BROKEN against the last checkpoint: {problem}.", err=True)
        raise click.exceptions.Exit(1)
    click.echo(
        f"Audit chain OK: {report.rows} rows verified. "
        f"It matches the checkpoint of {mark.at} (row id {mark.row_id})."
    )


@click.command("audit-checkpoint")
@CHECKPOINT_FILE
@schema_first
def audit_checkpoint_command(checkpoints: Path | None):
    """Append the chain's latest row id and hash to the checkpoint file (run it on a
    schedule, e.g. hourly from cron, and copy the file off the machine)."""
    mark = audit.write_checkpoint(checkpoints)
    if mark is None:
        click.echo("The audit trail is empty; nothing to checkpoint.")
        return
    click.echo(
        f"Checkpoint written to {audit.checkpoint_path(checkpoints)}: "
        f"row id {mark.row_id}, hash {mark.hash[:16]}…"
    )


@click.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@schema_first
def backup_command(destination: Path):
    """A consistent online copy of the SQLite database (safe while the app runs)."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        raise click.ClickException(
            f"backup copies the embedded SQLite database, but this installation uses "
            f"{engine.dialect.name}. Back PostgreSQL up with its own tools (pg_dump)."
        )
    source_path = engine.url.database
    if not source_path or source_path == ":memory:":
        raise click.ClickException("The database is in memory; there is no file to back up.")
    if destination.exists():
        raise click.ClickException(f"{destination} already exists; choose a new file name.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Created empty and owner-only before SQLite writes a byte (its journal inherits the mode).
    os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    # SQLite's online backup API copies a consistent snapshot, even with writers active.
    with (
        closing(sqlite3.connect(source_path)) as source,
        closing(sqlite3.connect(destination)) as target,
    ):
        source.backup(target)
    problem, counts = _check_copy(destination)
    if problem:
        raise click.ClickException(f"Backup written but its integrity check says: {problem}")
    # Who took a copy of the records, and where to, belongs in the trail.
    audit.record("database.backed_up", details={"destination": str(destination.resolve()),
                                                "rows": counts})
    db.session.commit()
    click.echo(f"Backed up {source_path} to {destination} (integrity check ok).")
    click.echo("Rows: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    click.echo(
        f"To restore: stop the app, check the copy with `flask --app infusion_tracker "
        f"restore-check {destination}`, move the database aside together with its -wal and "
        f"-shm files, copy the backup to {source_path}, and start the app again. On another "
        f"machine, bring the instance's audit_key and totp_key too (or the same AUDIT_KEY and "
        f"TOTP_KEY): the audit chain is keyed with the first and does not verify without it; "
        f"the two-factor secrets are sealed with the second and do not open without it."
    )


def _check_copy(path: Path) -> tuple[str | None, dict[str, int]]:
    """PRAGMA integrity_check and the row count of every table of an SQLite file."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
        result = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            return result, {}
        tables = [name for (name,) in copy.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        # Names come from the file's own catalogue, quoted: nothing typed reaches this SQL.
        counts = {t: copy.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return None, counts


@click.command("restore-check")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_check_command(backup: Path):
    """Open an SQLite backup and check it would restore: integrity, row counts, the audit
    chain. The backup itself is left untouched (the checks run on a scratch copy)."""
    try:
        problem, counts = _check_copy(backup)
    except sqlite3.DatabaseError as error:
        problem, counts = str(error), {}
    if problem:
        click.echo(f"BROKEN: {backup} is not a sound SQLite database ({problem}).", err=True)
        raise click.exceptions.Exit(1)
    click.echo("Rows: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "restore-check.db"
        shutil.copyfile(backup, copy)
        engine = sa.create_engine(f"sqlite:///{copy}")
        try:
            with engine.connect() as connection:
                report = audit.verify_chain(connection=connection)
                unopened = _sealed_secrets_unopened(connection)
        finally:
            engine.dispose()
    if not report.ok:
        click.echo(
            f"BROKEN: the audit chain of {backup} breaks at row id {report.broken_at}: "
            f"{report.reason}.",
            err=True,
        )
        raise click.exceptions.Exit(1)
    if unopened:
        click.echo(
            f"BROKEN: {unopened} two-factor secret(s) in {backup} do not open with this "
            f"instance's TOTP_KEY (instance/totp_key): bring the key of the instance the "
            f"backup came from.",
            err=True,
        )
        raise click.exceptions.Exit(1)
    click.echo(f"OK: {backup} passes its integrity check; audit chain OK "
               f"({report.rows} rows verified); two-factor secrets open with this TOTP_KEY.")


def _sealed_secrets_unopened(connection) -> int:
    """How many sealed TOTP keys of a copy this instance's TOTP_KEY cannot open."""
    columns = {column["name"] for column in sa.inspect(connection).get_columns("staff")}
    if "totp_sealed" not in columns:  # a copy from before 0008: nothing sealed yet
        return 0
    key = current_app.config["TOTP_KEY"]
    sealed = connection.execute(
        sa.text("SELECT totp_sealed FROM staff WHERE totp_sealed IS NOT NULL")).scalars()
    unopened = 0
    for value in sealed:
        try:
            unseal(value, key)
        except WrongSealKey:
            unopened += 1
    return unopened


ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def app_role_grants(role: str) -> list[str]:
    """What the application's PostgreSQL role may do, granted by the role that owns the
    tables (the one that runs the migrations): read and write the clinical tables, only read
    and append the audit trail. Not owning audit_event, it cannot disable its trigger."""
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]


@click.command("grant-app-role")
@click.argument("role")
def grant_app_role_command(role: str):
    """PostgreSQL: run as the table owner (after `db upgrade`) to give the app's own login
    role what it needs and no more; run it again after each upgrade that adds tables."""
    if db.engine.dialect.name != "postgresql":
        raise click.ClickException("grant-app-role is for PostgreSQL installations.")
    if not ROLE_NAME.match(role):
        raise click.ClickException(f"{role!r} is not a plain PostgreSQL role name.")
    for statement in app_role_grants(role):
        db.session.execute(sa.text(statement))
    db.session.commit()
    click.echo(f"Granted {role}: read/write on the tables, read and append on audit_event.")


@click.command("seed-demo")
@click.option("--seed", default=2026, show_default=True, help="Random seed for the demo data.")
@schema_first
def seed_demo_command(seed: int):
    """Fill an empty database with a realistic demo clinic and print its logins."""
    from .demo import DEMO_PASSWORD, seed_demo

    try:
        accounts = seed_demo(seed)
    except (ValueError, RuleError) as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo("Demo clinic created. Sign in as any of these (USERNAME ROLE):")
    for username, role in accounts.items():
        click.echo(f"{username} {role}")
    click.echo(f'Password for all of them: "{DEMO_PASSWORD}"')


COMMANDS = [
    create_staff_command,
    verify_audit_command,
    audit_checkpoint_command,
    backup_command,
    restore_check_command,
    grant_app_role_command,
    seed_demo_command,
]


def register(app) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
