"""Second factor on staff accounts; a reason on each protocol version (issue 9)

Revision ID: 0006_harden
Revises: 0005_devices
Create Date: 2026-11-29 17:45:00
"""
from alembic import op
import sqlalchemy as sa

import infusion_tracker.models


revision = '0006_harden'
down_revision = '0005_devices'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_confirmed_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('recovery_codes', sa.JSON(), nullable=True))
    with op.batch_alter_table('protocol', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_reason', sa.String(length=500), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('protocol', schema=None) as batch_op:
        batch_op.drop_column('change_reason')
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_column('recovery_codes')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_confirmed_at')
        batch_op.drop_column('totp_secret')
