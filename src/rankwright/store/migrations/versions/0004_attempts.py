"""Attempts: a failed run that the runbook remedies is tried again under the same
experiment; the row keeps which attempt is current, the measured cost of the attempts
before it (charged to the budget), and the triage record (kind, evidence, remedies).

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('prior_cost', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('failure', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_column('failure')
        batch_op.drop_column('prior_cost')
        batch_op.drop_column('attempt')
