"""Partial indexes for the review queue's and the quality report's reasons: overridden
events, stops with a reason, PHQ-9 item 9 flags (issue 8: on PostgreSQL at chain scale the
queue hashed whole tables to find a handful of rows; timings in bench/RESULTS.md)

Revision ID: 0014_reason_indexes
Revises: 0013_session_figures
Create Date: 2026-12-03 09:35:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0014_reason_indexes"
down_revision = "0013_session_figures"
branch_labels = None
depends_on = None

OVERRIDDEN = "override_reason <> ''"
REASONED_STOP = "kind = 'stop' AND reason <> ''"


def upgrade():
    with op.batch_alter_table("infusion_event", schema=None) as batch_op:
        batch_op.create_index("ix_infusion_event_override", ["infusion_id"], unique=False,
                              sqlite_where=sa.text(OVERRIDDEN),
                              postgresql_where=sa.text(OVERRIDDEN))
        batch_op.create_index("ix_infusion_event_reasoned_stop", ["infusion_id"], unique=False,
                              sqlite_where=sa.text(REASONED_STOP),
                              postgresql_where=sa.text(REASONED_STOP))
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.create_index("ix_assessment_physician_flag", ["infusion_id"], unique=False,
                              sqlite_where=sa.text("flag_physician IS 1"),
                              postgresql_where=sa.text("flag_physician IS TRUE"))


def downgrade():
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_index("ix_assessment_physician_flag")
    with op.batch_alter_table("infusion_event", schema=None) as batch_op:
        batch_op.drop_index("ix_infusion_event_reasoned_stop")
        batch_op.drop_index("ix_infusion_event_override")
