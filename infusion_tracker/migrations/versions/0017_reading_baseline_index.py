"""A session's baseline readings not voided, newest first, in a partial index: the reference
each new reading is compared with (readings.latest_baseline) was found by walking back over
every later reading of the session (issue 8: recording into a long session; timings in
bench/RESULTS.md, Stop 22).

Revision ID: 0017_reading_baseline_index
Revises: 0016_reading_newest_index
Create Date: 2026-12-05 22:15:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0017_reading_baseline_index"
down_revision = "0016_reading_newest_index"
branch_labels = None
depends_on = None

# As models.BASELINE (written out: a migration keeps its values).
BASELINE = "phase = 'baseline' AND voided_at IS NULL"


def upgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.create_index("ix_reading_baseline", ["infusion_id", "taken_at", "id"],
                              unique=False, sqlite_where=sa.text(BASELINE),
                              postgresql_where=sa.text(BASELINE))


def downgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_baseline")
