"""A name search's two ranges read from indexes that hold what it checks (both name keys,
active) and sorts by (the names, id), instead of an index of each key alone: a page of the
matches is chosen from the index, and only its rows are read. Three letters of a name match
525 patients at `chain`, whose rows, read to sort them, had been most of the search on SQLite
(issue 8: bench/RESULTS.md, Stop 37).

Revision ID: 0021_patient_name_search_indexes
Revises: 0020_reading_critical_index
Create Date: 2026-12-07 14:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0021_patient_name_search_indexes"
down_revision = "0020_reading_critical_index"
branch_labels = None
depends_on = None

# After the two keys: what the search also reads from the index (whether the patient is
# archived, and the names and id its page is sorted by).
ALSO_HELD = ["last_name", "first_name", "active", "id"]


def upgrade():
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_first_name_key")
        batch_op.drop_index("ix_patient_last_name_key")
        batch_op.create_index(
            "ix_patient_first_name_search", ["first_name_key", "last_name_key", *ALSO_HELD]
        )
        batch_op.create_index(
            "ix_patient_last_name_search", ["last_name_key", "first_name_key", *ALSO_HELD]
        )


def downgrade():
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index("ix_patient_last_name_search")
        batch_op.drop_index("ix_patient_first_name_search")
        batch_op.create_index("ix_patient_first_name_key", ["first_name_key"], unique=False)
        batch_op.create_index("ix_patient_last_name_key", ["last_name_key"], unique=False)
