"""Each session's worst flag and peak SBP and HR, as the patient page's history sums them
(patients/history._READING_STATS), from a partial index holding every column they read: a
30-session patient's 1,200 readings lie scattered over the table, together in the index
(issue 8: the patient page's first views; timings in bench/RESULTS.md, Stop 31).

Revision ID: 0019_reading_figures_index
Revises: 0018_patient_list_version
Create Date: 2026-12-06 21:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0019_reading_figures_index"
down_revision = "0018_patient_list_version"
branch_labels = None
depends_on = None

# As models.STANDING (written out: a migration keeps its values).
STANDING = "voided_at IS NULL"
COLUMNS = ["infusion_id", "severity", "phase", "systolic", "heart_rate", "voided_at"]


def upgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.create_index("ix_reading_figures", COLUMNS, unique=False,
                              sqlite_where=sa.text(STANDING),
                              postgresql_where=sa.text(STANDING))


def downgrade():
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_figures")
