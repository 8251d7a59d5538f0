"""CLI (`flask --app infusion_tracker …`): create-staff, verify-audit, backup, restore-check,
seed-demo.

Add a command by appending it to COMMANDS. Every command first builds or upgrades the schema
through the migrations (ensure_schema, shared with run.py), so any of them works first on a
new instance.
"""

import functools
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
from .errors import RuleError
from .extensions import db
from .models import ROLES


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


@click.command("verify-audit")
@schema_first
def verify_audit_command():
    """Check the audit trail's hash chain; exit 1 at the first broken row."""
    report = audit.verify_chain()
    if report.ok:
        click.echo(f"Audit chain OK: {report.rows} rows verified.")
        return
    click.echo(
        f"Audit chain BROKEN at row id {report.broken_at} (row {report.rows} in order): "
        f"{report.reason}. Rows from there on cannot be trusted.",
        err=True,
    )
    raise click.exceptions.Exit(1)


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
        f"-shm files, copy the backup to {source_path}, and start the app again."
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
    from . import create_app

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
        settings = {**current_app.config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{copy}"}
        with create_app(settings).app_context():
            report = audit.verify_chain()
            db.session.remove()
            db.engine.dispose()
    if not report.ok:
        click.echo(
            f"BROKEN: the audit chain of {backup} breaks at row id {report.broken_at}: "
            f"{report.reason}.",
            err=True,
        )
        raise click.exceptions.Exit(1)
    click.echo(f"OK: {backup} passes its integrity check; audit chain OK "
               f"({report.rows} rows verified).")


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
    create_staff_command, verify_audit_command, backup_command, restore_check_command,
    seed_demo_command,
]


def register(app) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
