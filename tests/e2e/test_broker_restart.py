"""DESIGN.md's durability rule, end to end: kill the embedded broker and start it empty; every
donation the API acknowledged before the kill still reaches the lake exactly once.

The chain is real: node (outbox relay) -> Tansu -> lander -> Parquet, on a broker of this test's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from pydantic import SecretStr

from ingest_node import payments_sandbox
from pipelines.lander import Lander
from services import bus
from services.broker import EmbeddedBroker
from services.lake import topic_glob
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import ServerThread, donate, fresh_database_url, running_node

pytestmark = [pytest.mark.slow, pytest.mark.db]
WAIT = 90.0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def _lander(settings: Settings) -> Iterator[Lander]:
    lander = Lander(settings, manual_assignment=True)
    stop = threading.Event()
    thread = threading.Thread(target=lander.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield lander
    finally:
        stop.set()
        thread.join(30)


def _landed(lake: Path, channel_id: str) -> dict[str, tuple[int, int]]:
    """event_type -> (rows, distinct event ids) for one channel."""
    if not list(lake.glob("topic=donations/date=*/*.parquet")):
        return {}
    rows = duckdb.sql(
        f"""select event_type, count(*), count(distinct event_id)
            from read_parquet('{topic_glob(lake, "donations")}', hive_partitioning = true)
            where channel_id = '{channel_id}' group by 1"""
    ).fetchall()
    return {t: (n, d) for t, n, d in rows}


@pytest.fixture
def own_stack(base_settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    db = fresh_database_url(tmp_path)
    node_port, payments_port = free_port(), free_port()
    settings = base_settings.model_copy(
        update={
            "data_dir": tmp_path,
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
            "database_url": next(db),
            "node_port": node_port,
            "public_url": f"http://127.0.0.1:{node_port}",
            "payments_port": payments_port,
            "payments_url": f"http://127.0.0.1:{payments_port}",
            "payments_api_key": SecretStr("restart-test-key"),
            "lander_flush_seconds": 0.2,
        }
    )
    yield settings
    db.close()


def test_acknowledged_donations_survive_an_empty_broker_restart(own_stack: Settings) -> None:
    settings = own_stack
    port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    lake = settings.lake_root
    first = EmbeddedBroker(port=port).start()
    bus.ensure_topics(settings)
    sandbox = ServerThread(payments_sandbox.create_app(settings), settings.payments_port).start()
    try:
        with running_node(settings) as node:
            channel = node.new_channel()

            def pay(n: int) -> list[str]:
                ids = []
                for _ in range(n):
                    answer = donate(node, channel)
                    assert answer.status_code == 201, answer.text
                    ids.append(answer.json()["donation_id"])
                for donation_id in ids:
                    assert node.wait_status(donation_id, "succeeded")["status"] == "succeeded"
                return ids

            def all_published() -> bool:
                return node.scalar("select count(*) from outbox where published_at is null") == 0

            # Phase 1: five donations land while the first broker lives.
            with _lander(settings):
                pay(5)
                _until(lambda: _landed(lake, channel).get("donation.processed", (0, 0))[1] == 5, "phase 1")

            # Phase 2: five more are acknowledged and published to the broker, but nobody lands them...
            pay(5)
            _until(all_published, "the relay to publish phase 2")
            # ...and the broker dies, taking them with it (it keeps topics in memory only).
            first.stop()
            second = EmbeddedBroker(port=port).start()
            try:
                assert second.cluster_id != first.cluster_id
                # Phase 3: the node keeps taking donations; the relay republishes phases 1 and 2.
                with _lander(settings) as lander:
                    pay(5)
                    _until(
                        lambda: _landed(lake, channel).get("donation.processed", (0, 0))[0] >= 15,
                        "all fifteen donations in the lake",
                    )
                    time.sleep(1.0)  # let any straggling republished duplicate arrive before counting
                    landed = _landed(lake, channel)
                    assert lander.duplicates_dropped > 0  # phase 1 came back from the relay, dropped
            finally:
                second.stop()
    finally:
        sandbox.stop()
        first.stop()
    # Exactly once: as many rows as distinct ids, fifteen of each event type that moves money.
    assert landed["donation.processed"] == (15, 15)
    assert landed["donation.created"] == (15, 15)
