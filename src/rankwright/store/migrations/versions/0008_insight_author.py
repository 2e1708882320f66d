"""Insight author: who learned it (the engineer who approved the campaign), so that a team
sharing one insights database sees who learned what, from which campaign.

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author', sa.String(length=200), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.drop_column('author')
