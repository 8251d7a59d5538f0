"""The quality report's per-session figures, stored under the session's version so that a
year of a chain-sized database is read from them instead of from every reading (issue 11)

Revision ID: 0013_session_figures
Revises: 0012_quality_indexes
Create Date: 2026-12-03 08:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_session_figures"
down_revision = "0012_quality_indexes"
branch_labels = None
depends_on = None


def upgrade():
    # Empty at first: the report computes what is missing (and `flask quality-figures` fills
    # the history in one go).
    op.create_table(
        "session_figures",
        sa.Column("infusion_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("peak_systolic", sa.Integer(), nullable=True),
        sa.Column("baseline_systolic", sa.Integer(), nullable=True),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["infusion_id"], ["infusion_session.id"],
            name=op.f("fk_session_figures_infusion_id_infusion_session"),
        ),
        sa.PrimaryKeyConstraint("infusion_id", name=op.f("pk_session_figures")),
    )


def downgrade():
    op.drop_table("session_figures")
