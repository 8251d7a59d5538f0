"""The suite board's "finished today": indexes on discharged_at and cancelled_at, so the day's
finished sessions are two index ranges, not a scan of every finished session (issue 8)

Revision ID: 0009_board_finished
Revises: 0008_totp_sealed
Create Date: 2026-12-02 17:40:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_board_finished"
down_revision = "0008_totp_sealed"
branch_labels = None
depends_on = None

COLUMNS = ("discharged_at", "cancelled_at")


def upgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.create_index(f"ix_infusion_session_{column}", [column], unique=False)


def downgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.drop_index(f"ix_infusion_session_{column}")
