"""Rate changes above the protocol's limit: who allowed it and why

Revision ID: 0003_rate_override
Revises: 0002_vocabulary_checks
Create Date: 2026-11-29 18:10:00

Adds infusion_event.override_reason (default '') and override_by_id (nullable, FK staff).
Existing rows get '' and NULL: no earlier rate change was an override.
"""
from alembic import op
import sqlalchemy as sa


revision = "0003_rate_override"
down_revision = "0002_vocabulary_checks"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("infusion_event") as batch:
        batch.add_column(
            sa.Column("override_reason", sa.Text(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("override_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_infusion_event_override_by_id_staff", "staff", ["override_by_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("infusion_event") as batch:
        batch.drop_constraint("fk_infusion_event_override_by_id_staff", type_="foreignkey")
        batch.drop_column("override_by_id")
        batch.drop_column("override_reason")
