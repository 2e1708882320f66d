"""Alembic environment: runs against the engine the store hands over (no alembic.ini)."""

from alembic import context

from rankwright.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
