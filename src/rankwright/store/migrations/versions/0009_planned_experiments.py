"""Planned experiments: every run the approved plan and its revisions planned, by key, with
where its run is, so that a wake finds what is not yet submitted, and whether everything
planned has ended, with indexed queries instead of reading every plan document and
experiment; indexes for a wake's other reads (unfinished runs, the ledger's sums); and the
plan's strategy in a column of its own.

Existing campaigns are indexed from their newest plan and their revisions.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'planned_experiments',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('campaigns.id'), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('arm', sa.String(length=200), nullable=False),
        sa.Column('source', sa.Integer(), nullable=False),
        sa.Column('position', sa.BigInteger(), nullable=False),
        sa.Column('entry', sa.JSON(), nullable=False),
        sa.Column('state', sa.Integer(), nullable=False, server_default='0'),
        sa.UniqueConstraint('campaign_id', 'key', name='uq_planned_campaign_key'),
    )
    op.create_index('ix_planned_campaign_arm', 'planned_experiments', ['campaign_id', 'arm'])
    op.create_index('ix_planned_campaign_state', 'planned_experiments', ['campaign_id', 'state', 'position'])
    # (campaign_id, status) replaces (campaign_id): a planner without statistics took the
    # narrower one for "this campaign's unfinished runs" and scanned every row of the campaign
    op.drop_index('ix_experiments_campaign_id', table_name='experiments')
    op.create_index('ix_experiments_campaign_status', 'experiments', ['campaign_id', 'status'])
    op.create_index('ix_experiments_ledger', 'experiments', ['campaign_id', 'actual_cost', 'prior_cost',
                                                             'reserved_cost'])
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('strategy', sa.JSON(), nullable=True))
    from rankwright.store import models as m
    from rankwright.store.store import planned_rows, put_planned

    session = op.get_bind()  # a connection: the store's helpers take one as well as a session
    for plan_id, plan_body in session.execute(sa.select(m.Plan.id, m.Plan.body)).all():
        session.execute(sa.update(m.Plan).where(m.Plan.id == plan_id).values(strategy=plan_body.get("strategy")))
    for campaign_id, name in session.execute(sa.select(m.Campaign.id, m.Campaign.name)).all():
        body = session.scalars(sa.select(m.Plan.body).where(m.Plan.campaign_id == campaign_id)
                               .order_by(m.Plan.id.desc()).limit(1)).one_or_none()
        if body is None:
            continue
        put_planned(session, campaign_id, planned_rows(name, body.get("experiments", ()), 0))
        for number, revision_body in session.execute(sa.select(m.Revision.number, m.Revision.body).where(
                m.Revision.campaign_id == campaign_id).order_by(m.Revision.number)).all():
            put_planned(session, campaign_id, planned_rows(name, revision_body.get("experiments", ()), number))


def downgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('strategy')
    op.drop_index('ix_experiments_ledger', table_name='experiments')
    op.drop_index('ix_experiments_campaign_status', table_name='experiments')
    op.create_index('ix_experiments_campaign_id', 'experiments', ['campaign_id'])
    op.drop_index('ix_planned_campaign_state', table_name='planned_experiments')
    op.drop_index('ix_planned_campaign_arm', table_name='planned_experiments')
    op.drop_table('planned_experiments')
