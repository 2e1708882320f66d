"""The store: SQLAlchemy models, Alembic migrations and the one session helper.

Only this package touches SQLAlchemy; callers get frozen records back, never rows.
SQLite (WAL) by default at `.rankwright/rankwright.db`; PostgreSQL when `RANKWRIGHT_DB`
holds a `postgresql://` URL.
"""

from rankwright.store.engine import StoreError, StoreUnavailable, database_url, open_store
from rankwright.store.records import CampaignRecord, EventRecord, ExperimentRecord
from rankwright.store.store import Store

__all__ = [
    "CampaignRecord",
    "EventRecord",
    "ExperimentRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "database_url",
    "open_store",
]
