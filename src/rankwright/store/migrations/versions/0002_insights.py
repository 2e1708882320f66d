"""Insights: what each finished comparison taught, shared across campaigns.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('insights',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('technique', sa.String(length=200), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('effect', sa.Float(), nullable=False),
    sa.Column('effect_se', sa.Float(), nullable=False),
    sa.Column('seeds', sa.Integer(), nullable=False),
    sa.Column('noise', sa.Float(), nullable=False),
    sa.Column('cost_factor', sa.Float(), nullable=False),
    sa.Column('campaign', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_insights_technique'), ['technique'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('insights', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_insights_technique'))
    op.drop_table('insights')
