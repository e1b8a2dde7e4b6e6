"""The embedded broker and the bus against a real Tansu process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import TopicPartition

from services import bus
from services.broker import BrokerError, EmbeddedBroker, port_in_use
from services.events import DonationCreated, Envelope
from services.settings import Settings
from tests.conftest import free_port


def test_a_taken_port_is_a_clear_error(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="already taken"):
        EmbeddedBroker(port=broker.port).start()
    assert broker.running


def test_stop_leaves_no_process() -> None:
    b = EmbeddedBroker(port=free_port()).start()
    pid = b._proc.pid  # type: ignore[union-attr]
    b.stop()
    assert not b.running
    assert not port_in_use(b.host, b.port)
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text().lower()


def test_the_broker_dies_with_its_parent(tmp_path) -> None:
    """A parent killed hard (SIGKILL) takes its broker with it: no orphans after a crashed `efir up`."""
    port = free_port()
    script = (
        "import time; from services.broker import EmbeddedBroker;"
        f"EmbeddedBroker(port={port}).start(); print('up', flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert parent.stdout is not None and parent.stdout.readline().strip() == b"up"
    parent.kill()
    parent.wait()
    from services.broker import wait_for_port

    # The port closes once the child got its SIGTERM from the kernel.
    for _ in range(100):
        if not port_in_use("127.0.0.1", port):
            break
        wait_for_port("127.0.0.1", 1, 0.05)
    assert not port_in_use("127.0.0.1", port)


def test_publish_waits_for_acks_and_keys_by_channel(base_settings: Settings) -> None:
    producer = bus.make_producer(base_settings)
    events = [
        Envelope.wrap(
            DonationCreated(donation_id=f"d{i}", amount_minor=1000 + i, currency="RUB"),
            channel_id="bus-test-channel",
            node_id="n",
        )
        for i in range(20)
    ]
    bus.publish(producer, events)
    producer.close()
    consumer = bus.make_consumer(base_settings, None)
    parts = [TopicPartition("donations", p) for p in consumer.partitions_for_topic("donations")]
    consumer.assign(parts)
    consumer.seek_to_beginning()
    mine: list[Envelope] = []
    for _ in range(50):
        for records in consumer.poll(200).values():
            for rec in records:
                if rec.key != b"bus-test-channel":
                    continue  # the topic is shared with other tests; some of them write garbage on purpose
                env = Envelope.from_json(rec.value)
                assert env.channel_id == "bus-test-channel"
                mine.append(env)
        if len(mine) == len(events):
            break
    consumer.close()
    # One key, one partition: the channel's events keep their order.
    assert [e.event_id for e in mine] == [e.event_id for e in events]


def test_publish_to_a_dead_broker_raises() -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    assert not bus.broker_reachable(settings, timeout=0.5)


def test_cluster_id_changes_when_the_broker_restarts_empty() -> None:
    port = free_port()
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}")
    with EmbeddedBroker(port=port) as first:
        bus.ensure_topics(settings)
        producer = bus.make_producer(settings)
        bus.publish(
            producer,
            [
                Envelope.wrap(
                    DonationCreated(donation_id="x", amount_minor=1000, currency="RUB"),
                    channel_id="c",
                    node_id="n",
                )
            ],
        )
        seen_first = bus.cluster_id(producer)
        producer.close()
    with EmbeddedBroker(port=port) as second:
        producer = bus.make_producer(settings)
        bus.ensure_topics(settings)
        bus.publish(
            producer,
            [
                Envelope.wrap(
                    DonationCreated(donation_id="y", amount_minor=1000, currency="RUB"),
                    channel_id="c",
                    node_id="n",
                )
            ],
        )
        assert seen_first == first.cluster_id
        assert bus.cluster_id(producer) == second.cluster_id != first.cluster_id
        producer.close()
