"""Leases: which agent acts on a campaign now, kept in the store itself so that agents on
several machines sharing one store (team mode) never act on one campaign at once. A
holder renews its lease while it works; a lease whose holder died expires.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=200), primary_key=True),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('token', sa.Integer(), nullable=False),
        sa.Column('acquired_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('leases')
