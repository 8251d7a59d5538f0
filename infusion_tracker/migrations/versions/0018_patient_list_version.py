"""The patient list's version: one row the database moves (triggers) on every write to
`patient`, under which a worker keeps pages of search results (patients/services.search_page;
issue 8: a name prefix at chain scale matches hundreds of patients, sorted on every search;
timings in bench/RESULTS.md, Stop 23).

Revision ID: 0018_patient_list_version
Revises: 0017_reading_baseline_index
Create Date: 2026-12-06 00:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0018_patient_list_version"
down_revision = "0017_reading_baseline_index"
branch_labels = None
depends_on = None

# As models.PATIENT_LIST_TRIGGERS (written out: a migration keeps its values).
NEXT_SQLITE = (
    "UPDATE patient_list_version SET version = max(version + 1, "
    "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
)
TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER patient_list_{event.lower()} AFTER {event} ON patient "
        f"BEGIN {NEXT_SQLITE}; END"
        for event in ("INSERT", "UPDATE", "DELETE")
    ],
    "postgresql": [
        """CREATE OR REPLACE FUNCTION patient_list_changed() RETURNS trigger AS $$
           BEGIN
             UPDATE patient_list_version SET version = greatest(version + 1,
               (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
             RETURN NULL;
           END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER patient_list_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
           ON patient FOR EACH STATEMENT EXECUTE FUNCTION patient_list_changed()""",
    ],
}
DROP = {
    "sqlite": [f"DROP TRIGGER patient_list_{event}" for event in ("insert", "update", "delete")],
    "postgresql": [
        "DROP TRIGGER patient_list_changed ON patient",
        "DROP FUNCTION patient_list_changed()",
    ],
}


def upgrade():
    table = op.create_table(
        "patient_list_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])
    for statement in TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade():
    for statement in DROP.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    op.drop_table("patient_list_version")
