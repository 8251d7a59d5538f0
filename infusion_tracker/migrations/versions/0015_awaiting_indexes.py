"""Partial indexes for the review queue at chain scale: the awaiting sessions in the queue's
order and by id, and the sessions with an override of their own (issue 8: the queue's cost
followed the backlog; timings in bench/RESULTS.md)

Revision ID: 0015_awaiting_indexes
Revises: 0014_reason_indexes
Create Date: 2026-12-03 12:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_awaiting_indexes"
down_revision = "0014_reason_indexes"
branch_labels = None
depends_on = None

# As models.AWAITING and models.SESSION_OVERRIDDEN (written out: a migration keeps its values).
AWAITING = "status = 'discharged' AND signed_at IS NULL"
OVERRIDDEN = (
    "start_override_reason <> '' OR dose_override_reason <> '' OR discharge_override_reason <> ''"
)


def upgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.create_index("ix_infusion_session_awaiting", ["status", "discharged_at", "id"],
                              unique=False, sqlite_where=sa.text(AWAITING),
                              postgresql_where=sa.text(AWAITING))
        batch_op.create_index("ix_infusion_session_awaiting_id", ["status", "id"], unique=False,
                              sqlite_where=sa.text(AWAITING), postgresql_where=sa.text(AWAITING))
        batch_op.create_index("ix_infusion_session_override", ["id"], unique=False,
                              sqlite_where=sa.text(OVERRIDDEN),
                              postgresql_where=sa.text(OVERRIDDEN))


def downgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.drop_index("ix_infusion_session_override")
        batch_op.drop_index("ix_infusion_session_awaiting_id")
        batch_op.drop_index("ix_infusion_session_awaiting")
