"""Migrations upgrade a database that already holds data, not only an empty one.

The donation-rules branch changes the donations table's status check; on SQLite that copies the table,
which must not trip over the rows that other tables point at.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from ingest_node.db import alembic_config, at_head, make_engine, migrate
from services.settings import Settings

pytestmark = pytest.mark.db
EARLIER_HEADS = ("0002_chat", "0002_ingest", "0002_money")
NOW = "2026-01-01 00:00:00"


def test_upgrading_a_database_with_donations_keeps_them(fresh_db: str, base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={"database_url": fresh_db})
    engine = make_engine(settings)
    with engine.connect() as connection:
        for revision in EARLIER_HEADS:
            command.upgrade(alembic_config(connection), revision)
        connection.commit()
    with engine.begin() as conn:
        conn.execute(
            sa.text("insert into channels (channel_id, name, created_at) values ('c1', 'C', :t)"), {"t": NOW}
        )
        conn.execute(
            sa.text(
                "insert into donations (donation_id, channel_id, amount_minor, currency, message, status,"
                " created_at, updated_at) values ('d1', 'c1', 1000, 'RUB', '', 'succeeded', :t, :t)"
            ),
            {"t": NOW},
        )
        conn.execute(
            sa.text(
                "insert into idempotency_keys (key, request_hash, donation_id, created_at)"
                " values ('key-00001', 'h', 'd1', :t)"
            ),
            {"t": NOW},
        )
    assert not at_head(engine)
    migrate(settings, engine)
    assert at_head(engine)
    with engine.begin() as conn:
        assert conn.execute(sa.text("select status from donations")).scalars().all() == ["succeeded"]
        assert conn.execute(sa.text("select donation_id from idempotency_keys")).scalars().all() == ["d1"]
        # The new status is allowed after the upgrade.
        conn.execute(sa.text("update donations set status = 'held'"))
    engine.dispose()
