"""Where the store lives and how its schema is brought up to date.

The schema is owned by Alembic revisions in `migrations/versions`; `open_store` upgrades a
new database to the head revision, and refuses (with the command to run) a database whose
revision this version of Rankwright does not know.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect

DEFAULT_PATH = Path(".rankwright/rankwright.db")
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0009"  # the newest revision in migrations/versions (a test keeps the two equal)


class StoreError(RuntimeError):
    """The store cannot be used as it is; the message says what to do."""


class StoreUnavailable(RuntimeError):
    """The store cannot be reached now (server down, file locked or unopenable): a fault of
    the environment that may pass, not of what is stored; an idempotent step may be retried."""


def store_failure(exc: Exception, url: Any) -> Exception:
    """The error to raise for a database error: transient ones apart from the rest."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    cause = getattr(exc, "orig", None) or exc
    where = _safe_url(url)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return StoreUnavailable(f"the store at {where} is unavailable: {type(cause).__name__}: "
                                f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''}")
    return StoreError(f"the store at {where} cannot be used: {type(cause).__name__}: {cause}; if the file is "
                      "damaged, restore it from a backup or point RANKWRIGHT_DB at another store")


def _safe_url(url: Any) -> str:
    """The URL without its password (it goes into messages and logs)."""
    try:
        return repr(url.render_as_string(hide_password=True)) if hasattr(url, "render_as_string") else repr(str(url))
    except Exception:  # noqa: BLE001
        return "(the store)"


def database_url(root: Path = Path(".")) -> str:
    """`RANKWRIGHT_DB` when set (e.g. postgresql://...), else SQLite under `root`."""
    url = os.environ.get("RANKWRIGHT_DB")
    if url:
        return url
    return f"sqlite:///{(root / DEFAULT_PATH).resolve()}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # how long a writer waits for another's lock before the operation fails (a wake
        # retries a failed step: see `cli.campaign.run`)
        wait_s = float(os.environ.get("RANKWRIGHT_DB_LOCK_WAIT_S", "30"))
        engine = create_engine(url, connect_args={"timeout": wait_s})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the head revision (a no-op when it is there)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def _stored_revision(engine: Engine) -> str | None:
    """The revision the database says it is at, read with one query (no Alembic): a wake
    opens the store every time, and Alembic's import and script walk cost 0.1-0.2 s."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):  # no such table: a new database, or not ours
        return None


def open_store(url: str | None = None):
    """A `Store` on `url` (default: `database_url()`), its schema at the head revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from rankwright.store.store import Store

    engine = make_engine(url or database_url())
    try:
        if _stored_revision(engine) == HEAD:  # the usual case: nothing to check, nothing to upgrade
            return Store(engine)
    except SQLAlchemyError as exc:
        raise store_failure(exc, engine.url) from None
    from alembic.script import ScriptDirectory

    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise store_failure(exc, engine.url) from None
    script = ScriptDirectory.from_config(_alembic_config(engine))
    if revision is not None and revision not in {r.revision for r in script.walk_revisions()}:
        raise StoreError(
            f"the store at {engine.url!r} has schema revision {revision!r}, which this version of "
            "Rankwright does not know: it was written by a newer version; upgrade Rankwright"
        )
    if revision is None and inspect(engine).get_table_names():
        raise StoreError(f"the database at {engine.url!r} holds tables that are not a Rankwright store")
    upgrade(engine)
    return Store(engine)
