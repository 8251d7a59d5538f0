"""The two-factor key sealed at rest with TOTP_KEY (issue 9): staff.totp_secret (clear) becomes
staff.totp_sealed (Fernet), and the keys already enrolled are sealed; downgrade opens them.

Run with the instance's TOTP_KEY in place (by default instance/totp_key, created on first
start): secrets sealed here open only with that key.

Revision ID: 0008_totp_sealed
Revises: 0007_reading_submission_key
Create Date: 2026-12-02 18:00:00
"""
from alembic import op
import sqlalchemy as sa
from flask import current_app

from infusion_tracker.sealing import seal, unseal


revision = "0008_totp_sealed"
down_revision = "0007_reading_submission_key"
branch_labels = None
depends_on = None


def _rewrite(source: str, target: str, change) -> None:
    staff = sa.table("staff", sa.column("id", sa.Integer), sa.column(source, sa.String),
                     sa.column(target, sa.String))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(staff.c.id, staff.c[source]).where(staff.c[source].is_not(None))).all()
    key = current_app.config["TOTP_KEY"]
    for staff_id, value in rows:
        connection.execute(
            staff.update().where(staff.c.id == staff_id).values({target: change(value, key)}))


def upgrade():
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_sealed", sa.String(length=255), nullable=True))
    _rewrite("totp_secret", "totp_sealed", seal)
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("totp_secret")


def downgrade():
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
    _rewrite("totp_sealed", "totp_secret", unseal)
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("totp_sealed")
