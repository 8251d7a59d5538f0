"""`flask --app infusion_tracker quality-figures [--verify]`: store the quality report's
per-session figures in one go (after an upgrade or an import), or check the stored ones."""

import click

from ..commands import schema_first
from ..extensions import db
from ..models import SessionFigures
from . import figures

BATCH = 2_000


@click.command("quality-figures")
@click.option("--verify", is_flag=True,
              help="Recompute every stored figure and report those that differ.")
@schema_first
def quality_figures_command(verify: bool):
    """Fill the figures the quality report would otherwise compute on its first view."""
    if verify:
        ids = list(db.session.scalars(db.select(SessionFigures.infusion_id)))
        wrong = [i for start in range(0, len(ids), BATCH)
                 for i in figures.mismatches(ids[start:start + BATCH])]
        if wrong:
            click.echo(f"{len(wrong)} sessions' stored figures differ from their readings: "
                       + ", ".join(map(str, wrong[:20])), err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"Quality figures OK: {len(ids):,} sessions' stored figures match their "
                   "readings.")
        return
    stored = 0
    while ids := figures.stale_ids(BATCH):
        stored += figures.refresh(ids)
        db.session.commit()
    click.echo(f"Stored the figures of {stored:,} sessions; every session's are current.")


def register(app) -> None:
    app.cli.add_command(quality_figures_command)
