"""Lander throughput against its floor: a bare kafka-python consumer reading the same topic.

Produces N `donation.processed` events to the donations topic of a private embedded broker, then in
the same run measures (1) a bare consumer (manual assignment, no group, records only counted: the
most a Python reader of this broker can do) and (2) the lander (`pipelines.lander.Lander`, manual
assignment), which also validates each envelope, deduplicates by event_id and writes Parquet files
with manifests. Reported: rows/s of each and the lander's share of the floor.

    uv run python benchmarks/lander_vs_consumer.py [--events 100000]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from pipelines.lander import Lander  # noqa: E402
from services import bus  # noqa: E402
from services.broker import EmbeddedBroker  # noqa: E402
from services.events import DonationProcessed, Envelope  # noqa: E402
from services.lake import manifests  # noqa: E402
from services.money import Currency  # noqa: E402
from services.settings import Settings  # noqa: E402

TOPIC = "donations"
CHANNELS = [f"bench-{i}" for i in range(16)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def produce(settings: Settings, count: int, batch: int = 5_000) -> float:
    """Send `count` donation.processed events; returns the seconds it took (acks waited for)."""
    producer = bus.make_producer(settings, linger_ms=20, batch_size=256 * 1024)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        for first in range(0, count, batch):
            events = [
                Envelope.wrap(
                    DonationProcessed(
                        donation_id=str(uuid.uuid4()),
                        payment_id=f"pay_{i}",
                        amount_minor=45_000 + i % 1000,
                        currency=Currency.RUB,
                        donor_name=None if i % 4 == 0 else "Алексей",
                        message="Спасибо за стрим!",
                        settled_at=now,
                    ),
                    channel_id=CHANNELS[i % len(CHANNELS)],
                    node_id="bench",
                    occurred_at=now,
                )
                for i in range(first, min(first + batch, count))
            ]
            bus.publish(producer, events, timeout=60)
    finally:
        producer.close()
    return time.perf_counter() - started


def bare_consumer(settings: Settings, count: int, timeout: float) -> float:
    """Seconds for a bare consumer to read `count` records from the beginning of every partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_poll_records=5_000,
    )
    try:
        partitions = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        deadline = started + timeout
        while seen < count and time.perf_counter() < deadline:
            for records in consumer.poll(200).values():
                seen += len(records)
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    if seen < count:
        raise SystemExit(f"bare consumer read only {seen} of {count} records in {timeout}s")
    return elapsed


def lander(settings: Settings, lake: Path, count: int, timeout: float) -> tuple[float, int]:
    """Seconds for the lander to land `count` rows (files and manifests written); and files written."""
    landed = Lander(settings, topics=[TOPIC], manual_assignment=True, lake=lake)
    started = time.perf_counter()
    landed.start()
    try:
        deadline = started + timeout
        while landed.rows_landed < count and time.perf_counter() < deadline:
            if landed.poll_once() == 0:
                landed.flush_all()  # nothing more to read: land the partial buffers now
        elapsed = time.perf_counter() - started
    finally:
        landed.close()
    rows = sum(m.rows for m in manifests(lake, TOPIC))
    if rows < count:
        raise SystemExit(f"the lander landed only {rows} of {count} rows in {timeout}s")
    return elapsed, landed.files_written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp, EmbeddedBroker(port=free_port()) as broker:
        settings = Settings(
            data_dir=Path(tmp),
            kafka_bootstrap=broker.bootstrap,
            lander_flush_rows=20_000,
            lander_flush_seconds=60.0,
        )
        bus.ensure_topics(settings, [TOPIC])
        produced = produce(settings, args.events)
        print(f"produced {args.events} events in {produced:.1f}s ({args.events / produced:,.0f}/s)")
        floor = bare_consumer(settings, args.events, args.timeout)
        took, files = lander(settings, Path(tmp) / "lake", args.events, args.timeout)
    floor_rate, lander_rate = args.events / floor, args.events / took
    print(f"{'bare kafka-python consumer (baseline)':<48}{floor_rate:>10,.0f} rows/s ({floor:.1f}s)")
    print(
        f"{'lander (validate, dedup, Parquet + manifests)':<48}{lander_rate:>10,.0f} rows/s "
        f"({took:.1f}s, {files} files)"
    )
    print(f"{'lander / baseline':<48}{lander_rate / floor_rate:>10.2f}")


if __name__ == "__main__":
    main()
