"""Submission keys of the reading and adverse-event forms: a form posted twice stores once
(issue 9)

Revision ID: 0007_reading_submission_key
Revises: 0006_harden on main; "0005_devices" on the suite branch until the lead merges harden
Create Date: 2026-11-29 18:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007_reading_submission_key"
down_revision = "0007_perf_indexes"
branch_labels = None
depends_on = None


TABLES = ("reading", "adverse_event")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("submission_key", sa.String(length=64), nullable=True)
            )
            batch_op.create_index(
                batch_op.f(f"ix_{table}_submission_key"), ["submission_key"], unique=True
            )


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_submission_key"))
            batch_op.drop_column("submission_key")
