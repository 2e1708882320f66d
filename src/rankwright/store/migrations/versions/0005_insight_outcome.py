"""Insight outcome: besides a measured effect, an insight may say that a technique could
not be measured in its context because it diverged (unstable) or could not run (invalid),
so that it is not proposed again there.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.String(length=20), nullable=False, server_default='measured'))


def downgrade() -> None:
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.drop_column('outcome')
