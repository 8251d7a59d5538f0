"""Patient search and the audit log by date, served by indexes (issue 8): normalised name
keys with their indexes, the patient list's order as an index, and the audit log's time
index extended by id (a date-filtered page is read from it in order, not sorted).

Revision ID: 0011_perf_search
Revises: 0010_run_on
Create Date: 2026-12-02 18:00:00

"""
import unicodedata

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011_perf_search"
down_revision = "0010_run_on"
branch_labels = None
depends_on = None

BATCH = 1000


def name_key(name):
    """models.name_key as written on 2026-12-02 (a migration keeps meaning what it meant)."""
    folded = unicodedata.normalize("NFKD", name or "").casefold()
    return "".join(char for char in folded if char.isalnum())[:80]


def upgrade():
    with op.batch_alter_table("patient", schema=None) as batch_op:
        for column in ("first_name_key", "last_name_key"):
            batch_op.add_column(
                sa.Column(column, sa.String(length=80), server_default="", nullable=False)
            )
    bind = op.get_bind()
    patient = sa.table(
        "patient",
        sa.column("id", sa.Integer),
        sa.column("first_name", sa.String),
        sa.column("last_name", sa.String),
        sa.column("first_name_key", sa.String),
        sa.column("last_name_key", sa.String),
    )
    rows = bind.execute(sa.select(patient.c.id, patient.c.first_name, patient.c.last_name)).all()
    update = (
        patient.update()
        .where(patient.c.id == sa.bindparam("pid"))
        .values(first_name_key=sa.bindparam("first"), last_name_key=sa.bindparam("last"))
    )
    for start in range(0, len(rows), BATCH):
        bind.execute(
            update,
            [
                {"pid": row.id, "first": name_key(row.first_name), "last": name_key(row.last_name)}
                for row in rows[start : start + BATCH]
            ],
        )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index("ix_patient_first_name_key", ["first_name_key"], unique=False)
        batch_op.create_index("ix_patient_last_name_key", ["last_name_key"], unique=False)
        # (last_name, first_name, id) serves every lookup the last_name index did.
        batch_op.create_index(
            "ix_patient_name_order", ["last_name", "first_name", "id"], unique=False
        )
        batch_op.drop_index("ix_patient_last_name")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_occurred", ["occurred_at", "id"], unique=False)
        batch_op.drop_index("ix_audit_event_occurred_at")


def downgrade():
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_occurred_at", ["occurred_at"], unique=False)
        batch_op.drop_index("ix_audit_event_occurred")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index("ix_patient_last_name", ["last_name"], unique=False)
        batch_op.drop_index("ix_patient_name_order")
        batch_op.drop_index("ix_patient_last_name_key")
        batch_op.drop_index("ix_patient_first_name_key")
        batch_op.drop_column("last_name_key")
        batch_op.drop_column("first_name_key")
