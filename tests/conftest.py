"""Session-wide real parts: one embedded broker per test session, settings on temp folders.

`EFIR_TEST_DATABASE=postgres` runs the database tests on the machine's PostgreSQL
(127.0.0.1:5432) instead of SQLite; CI runs the `db` tests both ways.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services import bus
from services.broker import EmbeddedBroker
from services.settings import Settings

PG_ADMIN_URL = os.environ.get("EFIR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The one embedded broker of the session (tests that restart a broker start their own)."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_file=log) as b:
        yield b


def fresh_database_url(folder: Path) -> Iterator[str]:
    """An empty database of its own: a SQLite file in `folder`, or a new PostgreSQL database (dropped
    afterwards) when EFIR_TEST_DATABASE=postgres."""
    if os.environ.get("EFIR_TEST_DATABASE", "sqlite") != "postgres":
        yield f"sqlite:///{folder / f'node-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"efir_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for the session."""
    yield from fresh_database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def base_settings(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    data = tmp_path_factory.mktemp("data")
    settings = Settings(
        data_dir=data,
        kafka_bootstrap=broker.bootstrap,
        database_url=database_url,
        admin_token="test-admin-token",  # type: ignore[arg-type]
        webhook_secret="test-webhook-secret",  # type: ignore[arg-type]
        sandbox_settle_seconds=0.05,
        outbox_poll_seconds=0.05,
        lander_flush_seconds=0.5,
    )
    bus.ensure_topics(settings)
    return settings


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    path.mkdir()
    return path
