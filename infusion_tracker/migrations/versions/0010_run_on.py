"""Infusion event kind "run_on": why an infusion goes on past its planned minutes (issue 10)

Revision ID: 0010_run_on
Revises: 0009_board_finished
Create Date: 2026-12-02 18:00:00

The reason is an infusion event like a pause or a stop: appended, audited, never overwritten.
Only the CHECK constraint on infusion_event.kind changes (SQLite: batch mode rebuilds the
table, as 0002 did).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "0010_run_on"
down_revision = "0009_board_finished"
branch_labels = None
depends_on = None

# Written out (see 0002): this migration keeps meaning what it meant when written.
BEFORE = "kind IN ('start','pause','resume','rate_change','stop')"
AFTER = "kind IN ('start','pause','resume','rate_change','stop','run_on')"


class RunOnEventsPresent(RuntimeError):
    """Run-on reasons are on record: a downgrade would have to delete clinical history."""


def _replace(condition: str) -> None:
    with op.batch_alter_table("infusion_event") as batch:
        batch.drop_constraint(op.f("ck_infusion_event_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_infusion_event_kind"), condition)


def upgrade():
    _replace(AFTER)


def downgrade():
    count = op.get_bind().exec_driver_sql(
        "SELECT COUNT(*) FROM infusion_event WHERE kind = 'run_on'"
    ).scalar()
    if count:
        raise RunOnEventsPresent(
            f"{count} run-on reason(s) are recorded; they are not deleted to downgrade."
        )
    _replace(BEFORE)
