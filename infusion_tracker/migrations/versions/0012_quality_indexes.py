"""Indexes for the quality report at chain scale: sessions by start time (the report's period)
and the critical readings (issue 11; timings in bench/RESULTS.md)

Revision ID: 0012_quality_indexes
Revises: 0011_perf_search
Create Date: 2026-12-02 17:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_quality_indexes"
down_revision = "0011_perf_search"
branch_labels = None
depends_on = None

CRITICAL = "severity = 'critical'"


def upgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.create_index("ix_infusion_session_started_at", ["started_at"], unique=False)
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reading_critical",
            ["infusion_id"],
            unique=False,
            sqlite_where=sa.text(CRITICAL),
            postgresql_where=sa.text(CRITICAL),
        )


def downgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_critical")
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.drop_index("ix_infusion_session_started_at")
