"""The outbox relay against a broker of its own that goes down and comes back EMPTY."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from ingest_node.db import make_engine, make_session_factory, migrate
from ingest_node.models import OutboxRow
from ingest_node.outbox import OutboxRelay, enqueue
from services.broker import EmbeddedBroker
from services.events import DonationCreated, Envelope
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import WAIT_SECONDS, read_events

pytestmark = [pytest.mark.db, pytest.mark.slow]


def _event(n: int) -> Envelope:
    return Envelope.wrap(
        DonationCreated(donation_id=f"relay-test-{n}", amount_minor=1000 + n, currency="RUB"),
        channel_id=f"relay-ch-{n % 2}",
        node_id="relay-test",
    )


def _wait(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_relay_survives_an_outage_and_republishes_to_an_emptied_broker(
    base_settings: Settings, fresh_db: str
) -> None:
    port = free_port()
    settings = base_settings.model_copy(
        update={"database_url": fresh_db, "kafka_bootstrap": f"127.0.0.1:{port}", "outbox_batch": 3}
    )
    migrate(settings)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)

    def add(events: list[Envelope]) -> None:
        with sessions.begin() as session:
            for event in events:
                enqueue(session, event)

    def rows() -> list[OutboxRow]:
        with sessions() as session:
            return list(session.execute(sa.select(OutboxRow).order_by(OutboxRow.id)).scalars())

    first_events = [_event(n) for n in range(5)]
    add(first_events)
    relay = OutboxRelay(settings, sessions)
    first = EmbeddedBroker(port=port).start()
    second: EmbeddedBroker | None = None
    try:
        relay.start()
        assert _wait(lambda: all(r.published_at is not None for r in rows()))
        assert {r.published_cluster_id for r in rows()} == {first.cluster_id}
        ids = {e.event_id for e in first_events}
        got = read_events(settings, lambda evs: ids <= {e.event_id for e in evs})
        assert ids <= {e.event_id for e in got}

        first.stop()
        during_outage = _event(99)
        add([during_outage])
        failures = relay.failures
        assert _wait(lambda: relay.failures > failures)  # it tried, and failed
        (late,) = [r for r in rows() if r.event_id == during_outage.event_id]
        assert late.published_at is None  # never marked without an acknowledgement

        second = EmbeddedBroker(port=port).start()
        assert second.cluster_id != first.cluster_id
        assert _wait(lambda: {r.published_cluster_id for r in rows()} == {second.cluster_id})
        assert all(r.published_at is not None for r in rows())
        everything = ids | {during_outage.event_id}
        got = read_events(settings, lambda evs: everything <= {e.event_id for e in evs})
        assert everything <= {e.event_id for e in got}
        # Republished rows keep their first publication time (the lander's dedup window counts from it).
        assert relay.metrics.outbox_republished._value.get() >= len(first_events)
    finally:
        relay.stop()
        first.stop()
        if second is not None:
            second.stop()
        engine.dispose()
