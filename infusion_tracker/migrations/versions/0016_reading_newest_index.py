"""A session's readings indexed by time and then id, the order that picks "the latest reading"
(queries.NEWEST_FIRST): PostgreSQL can then take the newest from the index alone, where with
(infusion_id, taken_at) it sorted every reading sharing the newest time (SQLite's index
already ends with the rowid). Issue 8: the board's latest readings; timings in bench/RESULTS.md.

Revision ID: 0016_reading_newest_index
Revises: 0015_awaiting_indexes
Create Date: 2026-12-04 19:40:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0016_reading_newest_index"
down_revision = "0015_awaiting_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_infusion_taken")
        batch_op.create_index(
            "ix_reading_infusion_taken", ["infusion_id", "taken_at", "id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_infusion_taken")
        batch_op.create_index("ix_reading_infusion_taken", ["infusion_id", "taken_at"], unique=False)
