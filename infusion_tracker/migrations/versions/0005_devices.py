"""Monitor devices, their messages and proposed readings

Revision ID: 0005_devices
Revises: 0004_ledger (on main; "0001" on the hl7 branch until the lead merges it)
Create Date: 2026-11-29 17:28:57.430761

"""
from alembic import op
import sqlalchemy as sa

import infusion_tracker.models


# revision identifiers, used by Alembic.
revision = '0005_devices'
# On main this follows 0004_ledger; the branch it was written on had only 0001.
down_revision = "0004_ledger"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('room', sa.String(length=40), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('identifier', sa.String(length=120), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('revoked_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff.id'], name=op.f('fk_device_created_by_id_staff')),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['staff.id'], name=op.f('fk_device_revoked_by_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_device_token_hash'))
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_identifier'), ['identifier'], unique=False)

    op.create_table('device_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('received_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('via', sa.String(length=10), nullable=False),
    sa.Column('control_id', sa.String(length=64), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('infusion_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('AA','AE','AR')", name=op.f('ck_device_message_outcome')),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_device_message_device_id_device')),
    sa.ForeignKeyConstraint(['infusion_id'], ['infusion_session.id'], name=op.f('fk_device_message_infusion_id_infusion_session')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_message'))
    )
    with op.batch_alter_table('device_message', schema=None) as batch_op:
        batch_op.create_index('ix_device_message_device_received', ['device_id', 'received_at'], unique=False)

    op.create_table('proposed_reading',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('infusion_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('observed_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('phase', sa.String(length=20), nullable=False),
    sa.Column('systolic', sa.Float(), nullable=True),
    sa.Column('diastolic', sa.Float(), nullable=True),
    sa.Column('mean_arterial', sa.Float(), nullable=True),
    sa.Column('heart_rate', sa.Float(), nullable=True),
    sa.Column('resp_rate', sa.Float(), nullable=True),
    sa.Column('spo2', sa.Float(), nullable=True),
    sa.Column('temperature_c', sa.Float(), nullable=True),
    sa.Column('unknown', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reading_id', sa.Integer(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', infusion_tracker.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('proposed','accepted','dismissed')", name=op.f('ck_proposed_reading_status')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['staff.id'], name=op.f('fk_proposed_reading_decided_by_id_staff')),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], name=op.f('fk_proposed_reading_device_id_device')),
    sa.ForeignKeyConstraint(['infusion_id'], ['infusion_session.id'], name=op.f('fk_proposed_reading_infusion_id_infusion_session')),
    sa.ForeignKeyConstraint(['message_id'], ['device_message.id'], name=op.f('fk_proposed_reading_message_id_device_message')),
    sa.ForeignKeyConstraint(['reading_id'], ['reading.id'], name=op.f('fk_proposed_reading_reading_id_reading')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proposed_reading')),
    sa.UniqueConstraint('reading_id', name=op.f('uq_proposed_reading_reading_id'))
    )
    with op.batch_alter_table('proposed_reading', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposed_reading_infusion_id'), ['infusion_id'], unique=False)



def downgrade():
    with op.batch_alter_table('proposed_reading', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposed_reading_infusion_id'))

    op.drop_table('proposed_reading')
    with op.batch_alter_table('device_message', schema=None) as batch_op:
        batch_op.drop_index('ix_device_message_device_received')

    op.drop_table('device_message')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_identifier'))

    op.drop_table('device')
