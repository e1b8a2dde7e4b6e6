"""The node's database: engine, sessions and migrations, for SQLite (embedded) and PostgreSQL (scale-out).

SQLite is shared by request threads and the outbox relay thread, so every connection gets WAL, a busy
timeout and enforced foreign keys, and every transaction starts with BEGIN IMMEDIATE: a deferred
transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when another writer
committed in between, while an immediate one simply waits its turn. PostgreSQL needs none of this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session, sessionmaker

from services.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(settings: Settings) -> sa.Engine:
    """One engine per process (or per app in tests), from `settings.sqlalchemy_url`."""
    url = sa.make_url(settings.sqlalchemy_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic configured in code: no alembic.ini at the repository root."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(settings: Settings, engine: sa.Engine | None = None) -> None:
    """Bring the database to the latest migration; safe to run on every start."""
    own = engine is None
    engine = engine or make_engine(settings)
    try:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection if is_sqlite(engine) else None
            if raw is not None:
                # SQLite changes a table by copying it (batch mode): with foreign keys enforced, dropping
                # the old copy fails as soon as other tables point at its rows. The pragma only takes
                # effect outside a transaction, so it is set before alembic begins one.
                raw.execute("PRAGMA foreign_keys=OFF")
            # "heads": each feature (media, chat, money) grows its own migration branch off 0001.
            command.upgrade(alembic_config(connection), "heads")
            connection.commit()
            if raw is not None:
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                raw.execute("PRAGMA foreign_keys=ON")
                if broken:
                    raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")
    finally:
        if own:
            engine.dispose()


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def at_head(engine: sa.Engine) -> bool:
    """True when the database is reachable and carries the latest migration (readiness)."""
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.SQLAlchemyError:
        return False
    return bool(current) and current == head_revisions()
