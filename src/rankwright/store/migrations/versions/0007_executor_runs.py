"""Executor runs: the records of runs on a cluster (Slurm, Ray), written by the agent when it
claims a key and by the run's own wrapper on whatever host the scheduler chose, so that a
run's end, its used compute and its small output files reach the agent through the store
even when the two hosts share no filesystem.

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'executor_runs',
        sa.Column('handle', sa.String(length=200), primary_key=True),
        sa.Column('key', sa.String(length=400), nullable=False),
        sa.Column('engine', sa.String(length=20), nullable=False),
        sa.Column('spec', sa.JSON(), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('job_id', sa.String(length=100), nullable=True),
        sa.Column('claimed_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('host', sa.String(length=200), nullable=True),
        sa.Column('heartbeat_at', sa.Float(), nullable=True),
        sa.Column('ended_at', sa.Float(), nullable=True),
        sa.Column('exit_code', sa.Integer(), nullable=True),
        sa.Column('cpu_seconds', sa.Float(), nullable=True),
        sa.Column('max_rss_mb', sa.Float(), nullable=True),
        sa.Column('cancelled', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('outputs', sa.JSON(), nullable=False),
        sa.Column('log_tail', sa.Text(), nullable=False, server_default=''),
        sa.UniqueConstraint('key', name='uq_executor_runs_key'),
    )
    op.create_index('ix_executor_runs_engine_ended', 'executor_runs', ['engine', 'ended_at'])


def downgrade() -> None:
    op.drop_index('ix_executor_runs_engine_ended', table_name='executor_runs')
    op.drop_table('executor_runs')
