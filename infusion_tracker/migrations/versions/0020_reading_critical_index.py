"""The review queue's critical readings read from their own partial index again: with
ix_reading_figures (0019) also covering the reason's statement, SQLite's planner (without
statistics) read every standing reading of the backlog's sessions from that index (51,000 at
`chain`) rather than the few critical ones; severity first, an equality before the range on
the session, makes this one the cheaper in its eyes, and voided_at a column makes it cover the
statement (issue 8: bench/RESULTS.md, Stop 32).

Revision ID: 0020_reading_critical_index
Revises: 0019_reading_figures_index
Create Date: 2026-12-06 23:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0020_reading_critical_index"
down_revision = "0019_reading_figures_index"
branch_labels = None
depends_on = None

# As models.CRITICAL (written out: a migration keeps its values).
CRITICAL = "severity = 'critical'"


def _index(batch_op, columns: list[str]) -> None:
    batch_op.create_index("ix_reading_critical", columns, unique=False,
                          sqlite_where=sa.text(CRITICAL), postgresql_where=sa.text(CRITICAL))


def upgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_critical")
        _index(batch_op, ["severity", "infusion_id", "voided_at"])


def downgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_critical")
        _index(batch_op, ["infusion_id"])
