"""CLI: create-staff, seed-demo, backup, verify-audit (`flask --app infusion_tracker …`)."""

import sqlite3
from pathlib import Path

import click
from flask import current_app

from . import audit
from .errors import RuleError
from .extensions import db
from .models import ROLES


@click.command("create-staff")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--full-name", required=True)
@click.option("--credentials", default="")
@click.option("--password", help="Prompted for (hidden) when not given.")
def create_staff_command(username, role, full_name, credentials, password):
    """Create a staff account (the first admin, or any other)."""
    from .auth.services import create_staff

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        staff = create_staff(username, full_name, role, password, credentials=credentials)
    except RuleError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Created {staff.role} account “{staff.username}” for {staff.display_name}.")


@click.command("verify-audit")
def verify_audit_command():
    """Check the audit trail's hash chain; exit 1 at the first broken row."""
    report = audit.verify_chain()
    if report.ok:
        click.echo(f"Audit chain intact: {report.rows} rows verified.")
        return
    click.echo(f"Audit chain BROKEN at row id {report.broken_at}: {report.reason}.", err=True)
    raise SystemExit(1)


@click.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(destination: Path):
    """A consistent online copy of the SQLite database (safe while the app runs)."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        raise click.ClickException(
            "backup copies the embedded SQLite database; use pg_dump for PostgreSQL."
        )
    if destination.exists():
        raise click.ClickException(f"{destination} already exists; choose a new file name.")
    source_path = engine.url.database
    destination.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source_path) as source, sqlite3.connect(destination) as target:
        source.backup(target)
    with sqlite3.connect(destination) as check:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise click.ClickException(f"Backup written but integrity check says: {result}")
    click.echo(f"Backed up {source_path} to {destination} (integrity ok).")
    current_app.logger.info("database backed up to %s", destination)


def register(app) -> None:
    for command in (create_staff_command, verify_audit_command, backup_command):
        app.cli.add_command(command)
