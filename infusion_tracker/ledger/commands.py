"""`flask --app infusion_tracker verify-ledger`: the derived balances add up."""

import click

from ..commands import schema_first
from . import services


@click.command("verify-ledger")
@schema_first
def verify_ledger_command():
    """Check every vial's derived balance is ≥ 0 and every milligram is accounted for."""
    problems = services.verify_ledger()
    if not problems:
        click.echo("Ledger OK: every balance is zero or more and the sums match.")
        return
    for problem in problems:
        click.echo(problem, err=True)
    raise click.exceptions.Exit(1)


def register(app) -> None:
    app.cli.add_command(verify_ledger_command)
