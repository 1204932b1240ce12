"""Initial schema: triggers, pipeline_runs, block_runs, backfills, secrets, audit_events, workers.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)

    op.create_table('backfills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_uuid', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('start_datetime', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_datetime', sa.DateTime(timezone=True), nullable=False),
    sa.Column('interval_type', sa.String(length=16), nullable=False),
    sa.Column('interval_units', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('total_runs', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backfills'))
    )
    with op.batch_alter_table('backfills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backfills_pipeline_uuid'), ['pipeline_uuid'], unique=False)

    op.create_table('secrets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('scope', sa.String(length=255), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_secrets')),
    sa.UniqueConstraint('scope', 'name', name=op.f('uq_secrets_scope_name'))
    )
    op.create_table('triggers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_uuid', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('schedule_type', sa.String(length=16), nullable=False),
    sa.Column('schedule_interval', sa.String(length=255), nullable=True),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('sla', sa.Integer(), nullable=True),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('catchup', sa.String(length=16), nullable=True),
    sa.Column('envs', sa.JSON(), nullable=False),
    sa.Column('in_code', sa.Boolean(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('last_enabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_execution_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triggers')),
    sa.UniqueConstraint('pipeline_uuid', 'name', name=op.f('uq_triggers_pipeline_uuid_name'))
    )
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triggers_pipeline_uuid'), ['pipeline_uuid'], unique=False)

    op.create_table('workers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    op.create_table('pipeline_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_uuid', sa.String(length=255), nullable=False),
    sa.Column('trigger_id', sa.Integer(), nullable=True),
    sa.Column('backfill_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('execution_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('schedule_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('interval_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('interval_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('event', sa.JSON(), nullable=False),
    sa.Column('partition', sa.String(length=255), nullable=True),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('allow_blocks_to_fail', sa.Boolean(), nullable=False),
    sa.Column('timeout', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('passed_sla', sa.Boolean(), nullable=False),
    sa.Column('log_dir', sa.Text(), nullable=True),
    sa.Column('logs_purged', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['backfill_id'], ['backfills.id'], name=op.f('fk_pipeline_runs_backfill_id_backfills'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['trigger_id'], ['triggers.id'], name=op.f('fk_pipeline_runs_trigger_id_triggers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipeline_runs')),
    sa.UniqueConstraint('backfill_id', 'schedule_date', name=op.f('uq_pipeline_runs_backfill_id_schedule_date')),
    sa.UniqueConstraint('trigger_id', 'schedule_date', name=op.f('uq_pipeline_runs_trigger_id_schedule_date'))
    )
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pipeline_runs_backfill_id'), ['backfill_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipeline_runs_pipeline_uuid'), ['pipeline_uuid'], unique=False)
        batch_op.create_index('ix_pipeline_runs_status_id', ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipeline_runs_trigger_id'), ['trigger_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pipeline_runs_worker_id'), ['worker_id'], unique=False)

    op.create_table('block_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=False),
    sa.Column('block_uuid', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('tests_passed', sa.Integer(), nullable=True),
    sa.Column('tests_total', sa.Integer(), nullable=True),
    sa.Column('partition', sa.String(length=255), nullable=True),
    sa.Column('log_path', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_run_id'], ['pipeline_runs.id'], name=op.f('fk_block_runs_pipeline_run_id_pipeline_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_block_runs')),
    sa.UniqueConstraint('pipeline_run_id', 'block_uuid', name=op.f('uq_block_runs_pipeline_run_id_block_uuid'))
    )
    with op.batch_alter_table('block_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_block_runs_pipeline_run_id'), ['pipeline_run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('block_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_block_runs_pipeline_run_id'))

    op.drop_table('block_runs')
    with op.batch_alter_table('pipeline_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pipeline_runs_worker_id'))
        batch_op.drop_index(batch_op.f('ix_pipeline_runs_trigger_id'))
        batch_op.drop_index('ix_pipeline_runs_status_id')
        batch_op.drop_index(batch_op.f('ix_pipeline_runs_pipeline_uuid'))
        batch_op.drop_index(batch_op.f('ix_pipeline_runs_backfill_id'))

    op.drop_table('pipeline_runs')
    op.drop_table('workers')
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triggers_pipeline_uuid'))

    op.drop_table('triggers')
    op.drop_table('secrets')
    with op.batch_alter_table('backfills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backfills_pipeline_uuid'))

    op.drop_table('backfills')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
