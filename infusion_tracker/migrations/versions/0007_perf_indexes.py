"""Indexes for clinic-chain scale: the review queue's "awaiting signature" and a patient's audit
rows in id order (issue 8; plans in bench/RESULTS.md)

Revision ID: 0007_perf_indexes
Revises: 0005_devices (the lead re-points it after 0006_harden)
Create Date: 2026-11-29 18:45:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_perf_indexes"
down_revision = "0006_harden"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.create_index(
            "ix_infusion_session_status_signed", ["status", "signed_at"], unique=False
        )
    # (patient_id, id) serves every lookup the single-column index did.
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_patient", ["patient_id", "id"], unique=False)
        batch_op.drop_index("ix_audit_event_patient_id")


def downgrade():
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_patient_id", ["patient_id"], unique=False)
        batch_op.drop_index("ix_audit_event_patient")
    with op.batch_alter_table("infusion_session", schema=None) as batch_op:
        batch_op.drop_index("ix_infusion_session_status_signed")
