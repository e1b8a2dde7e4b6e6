"""The lander against the session's real broker: landing, crash recovery, dead letters, dedup.

Every test has a fresh lake and its own channel; the broker's `donations` topic is shared, so tests
assert only on their own event ids. Partitions are assigned manually (no ~5 s group join) except in
the one test about Kafka's committed offset.
"""

from __future__ import annotations

import glob
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner

from pipelines import landing
from pipelines.dead_letter import dead_letter_path
from pipelines.lander import Lander
from services import bus
from services.events import DonationProcessed, Envelope, arrow_schema
from services.lake import manifests, topic_glob
from services.settings import Settings


def settings_for(base: Settings, lake: Path, **overrides: Any) -> Settings:
    """Flushes happen when the test says so (flush_all / flush_partition), never by the clock."""
    update = {"lake_dir": lake, "lander_flush_rows": 1_000_000, "lander_flush_seconds": 3600.0}
    return base.model_copy(update={**update, **overrides})


def donations(channel: str, n: int, when: datetime | None = None) -> list[Envelope]:
    at = when or datetime.now(UTC)
    return [
        Envelope.wrap(
            DonationProcessed(
                donation_id=f"{channel}-d{i}",
                payment_id=f"{channel}-p{i}",
                amount_minor=1000 + i,
                currency="USD",
                donor_name=None if i % 2 else "Ivan",
                settled_at=at,
            ),
            channel_id=channel,
            node_id="node-t",
            occurred_at=at,
        )
        for i in range(n)
    ]


def partition_of(producer: KafkaProducer, channel: str) -> int:
    """The partition the producer's partitioner gives a channel's key (one channel, one partition)."""
    partitions = sorted(producer.partitions_for("donations"))
    return int(DefaultPartitioner()(channel.encode(), partitions, partitions))


def ids(events: list[Envelope]) -> set[str]:
    return {e.event_id for e in events}


def consume_until(lander: Lander, done: Callable[[], bool], polls: int = 300) -> None:
    for _ in range(polls):
        if done():
            return
        lander.poll_once()
    raise AssertionError(f"not done after {polls} polls")


def lake_rows(lake: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(topic_glob(lake, "donations"))):
        for row in pq.read_table(path).to_pylist():
            out.append({**row, "_file": Path(path)})
    return out


def landed_counts(lake: Path, wanted: set[str]) -> Counter[str]:
    return Counter(r["event_id"] for r in lake_rows(lake) if r["event_id"] in wanted)


def assert_landed_once(lake: Path, wanted: set[str]) -> None:
    counts = landed_counts(lake, wanted)
    assert set(counts) == wanted and set(counts.values()) == {1}


def assert_no_overlap(lake: Path) -> None:
    """Manifests' offset ranges never overlap within a topic partition of one epoch."""
    ranges: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for m in manifests(lake):
        ranges[(m.topic, m.epoch, m.partition)].append((m.first_offset, m.last_offset))
    for spans in ranges.values():
        spans.sort()
        for (_, prev_last), (first, _) in pairwise(spans):
            assert first > prev_last, spans


@pytest.fixture
def producer(base_settings: Settings):
    p = bus.make_producer(base_settings)
    yield p
    p.close()


@pytest.fixture
def channel() -> str:
    return f"lander-{uuid.uuid4().hex[:10]}"


def test_events_land_typed_in_event_date_partitions(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str
) -> None:
    now = datetime.now(UTC)
    yesterday, today = donations(channel, 2, now - timedelta(days=1)), donations(channel, 1, now)
    bus.publish(producer, yesterday + today)
    partition = partition_of(producer, channel)
    lander = Lander(settings_for(base_settings, lake), manual_assignment=True)
    lander.start()
    try:
        consume_until(lander, lambda: ids(yesterday + today) <= lander.pending_event_ids)
        lander.flush_all()
    finally:
        lander.close()
    mine = {r["event_id"]: r for r in lake_rows(lake) if r["event_id"] in ids(yesterday + today)}
    assert set(mine) == ids(yesterday + today)
    for env in yesterday + today:
        row = mine[env.event_id]
        assert row["_file"].parent.name == f"date={env.occurred_at.date().isoformat()}"
        assert row["_file"].parent.parent.name == "topic=donations"
        assert row["amount_minor"] == env.payload["amount_minor"] and row["currency"] == "USD"
        assert row["occurred_at"] == env.occurred_at and row["kafka_partition"] == partition
        first, last = map(int, row["_file"].stem.rsplit("+", 1)[1].split("-"))
        assert first <= row["kafka_offset"] <= last
    day_files = {mine[e.event_id]["_file"] for e in yesterday} | {mine[e.event_id]["_file"] for e in today}
    # Two event dates, one flush of one partition: two files with the same offset range.
    assert len(day_files) == 2 and len({f.name for f in day_files}) == 1
    table = pq.read_table(next(iter(day_files)))
    assert table.schema.remove_metadata() == arrow_schema("donations")
    assert table.schema.field("kafka_offset").type == pa.int64()
    assert table.schema.field("kafka_partition").type == pa.int32()
    assert lander.rows_landed >= 3 and lander.files_written >= 2 and lander.flushes >= 1
    assert not list(lake.rglob("*.tmp"))
    assert_no_overlap(lake)


def test_malformed_records_go_to_dead_letter_and_later_records_still_land(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str
) -> None:
    good = donations(channel, 2)
    unknown_type = {**json.loads(good[0].to_json()), "event_type": "chat.message", "event_id": "x1"}
    missing_field = json.loads(good[0].to_json())
    missing_field["event_id"] = "x2"
    del missing_field["payload"]["payment_id"]
    bad = [b"{not json", json.dumps(unknown_type).encode(), json.dumps(missing_field).encode(), None]
    key = channel.encode()
    offsets = [producer.send("donations", key=key, value=raw).get(10) for raw in bad]
    bus.publish(producer, good)
    lander = Lander(settings_for(base_settings, lake), manual_assignment=True)
    lander.start()
    try:
        consume_until(lander, lambda: ids(good) <= lander.pending_event_ids)
        lander.flush_all()
    finally:
        lander.close()
    assert_landed_once(lake, ids(good))
    for raw, meta in zip(bad, offsets, strict=True):
        path = dead_letter_path(lake, "donations", meta.partition, meta.offset)
        record = json.loads(path.read_text())
        assert record["offset"] == meta.offset and record["error"]
        assert record["raw_text"] == (raw.decode() if raw is not None else None)
    assert lander.dead_letters >= len(bad)
    assert not {"x1", "x2"} & {r["event_id"] for r in lake_rows(lake)}
    assert_no_overlap(lake)


@pytest.mark.parametrize("step", ["stage", "manifest"])
def test_a_crash_inside_a_flush_lands_the_events_exactly_once_after_restart(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str, step: str
) -> None:
    events = donations(channel, 4)
    bus.publish(producer, events)
    partition = partition_of(producer, channel)
    settings = settings_for(base_settings, lake)
    crashed = Lander(settings, manual_assignment=True)
    crashed.start()
    consume_until(crashed, lambda: ids(events) <= crashed.pending_event_ids)
    crashed.crash_after = step  # type: ignore[assignment]
    with pytest.raises(landing.SimulatedCrash):
        crashed.flush_partition("donations", partition)
    crashed.close(flush=False)  # the process died: nothing else is flushed or committed
    assert not landed_counts(lake, ids(events)), "nothing is visible before the rename"
    assert list(lake.rglob("*.parquet.tmp"))
    assert bool(manifests(lake)) == (step == "manifest")

    restarted = Lander(settings, manual_assignment=True)
    restarted.start()  # recovery: temporaries removed (stage) or rolled forward (manifest)
    try:
        assert not list(lake.rglob("*.tmp"))
        if step == "manifest":
            assert_landed_once(lake, ids(events))
        later = donations(channel, 1)
        bus.publish(producer, later)
        consume_until(restarted, lambda: ids(later) <= restarted.pending_event_ids)
        restarted.flush_all()
    finally:
        restarted.close()
    assert_landed_once(lake, ids(events) | ids(later))
    assert_no_overlap(lake)


def test_duplicates_by_event_id_are_dropped_also_after_a_restart(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str
) -> None:
    settings = settings_for(base_settings, lake)
    first = donations(channel, 3)
    bus.publish(producer, first)
    lander = Lander(settings, manual_assignment=True)
    lander.start()
    try:
        consume_until(lander, lambda: ids(first) <= lander.pending_event_ids)
        lander.flush_all()
        more = donations(channel, 2)
        bus.publish(producer, first + more)  # the outbox republishes after a broker restart
        consume_until(lander, lambda: ids(more) <= lander.pending_event_ids)
        assert lander.duplicates_dropped >= 3
        lander.flush_all()
    finally:
        lander.close()
    assert_landed_once(lake, ids(first) | ids(more))

    # A new process remembers the landed ids from the lake itself (the seeded dedup window).
    again = Lander(settings, manual_assignment=True)
    again.start()
    try:
        last = donations(channel, 1)
        bus.publish(producer, first + more + last)
        consume_until(again, lambda: ids(last) <= again.pending_event_ids)
        again.flush_all()
    finally:
        again.close()
    assert again.duplicates_dropped == 5
    assert_landed_once(lake, ids(first) | ids(more) | ids(last))
    assert_no_overlap(lake)


def test_a_crash_after_rename_before_the_kafka_commit_lands_nothing_twice(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str
) -> None:
    """The one test with a real consumer group: Kafka's committed offset lags, the lake decides."""
    settings = settings_for(base_settings, lake)
    group = f"lander-test-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition("donations", partition_of(producer, channel))
    first = donations(channel, 2)
    bus.publish(producer, first)
    crashed = Lander(settings, group_id=group)
    crashed.start()
    consume_until(crashed, lambda: ids(first) <= crashed.pending_event_ids)  # joins the group
    crashed.flush_all()
    committed = crashed.consumer.committed(tp)
    second = donations(channel, 2)
    bus.publish(producer, second)
    consume_until(crashed, lambda: ids(second) <= crashed.pending_event_ids)
    crashed.crash_after = "rename"
    with pytest.raises(landing.SimulatedCrash):
        crashed.flush_partition(tp.topic, tp.partition)
    assert crashed.consumer.committed(tp) == committed
    crashed.close(flush=False)
    assert_landed_once(lake, ids(first) | ids(second))
    lake_next = landing.landed_next_offset(lake, tp.topic, crashed.epoch, tp.partition)
    assert committed is not None and lake_next is not None and lake_next > committed

    restarted = Lander(settings, group_id=group)
    restarted.start()
    try:
        consume_until(restarted, lambda: tp in restarted.assignment)
        assert restarted.consumer.position(tp) == lake_next  # by the lake, not the committed offset
        third = donations(channel, 1)
        bus.publish(producer, third)
        consume_until(restarted, lambda: ids(third) <= restarted.pending_event_ids)
        assert not (ids(first) | ids(second)) & restarted.pending_event_ids
    finally:
        restarted.close()
    assert_landed_once(lake, ids(first) | ids(second) | ids(third))
    assert_no_overlap(lake)


def test_run_flushes_everything_when_stopped(
    base_settings: Settings, lake: Path, producer: KafkaProducer, channel: str
) -> None:
    events = donations(channel, 3)
    bus.publish(producer, events)
    lander = Lander(settings_for(base_settings, lake), manual_assignment=True)
    stop = threading.Event()
    worker = threading.Thread(target=lander.run, args=(stop,), daemon=True)
    worker.start()
    for _ in range(600):
        if ids(events) <= lander.pending_event_ids or not worker.is_alive():
            break
        time.sleep(0.05)
    assert not landed_counts(lake, ids(events))  # only buffered so far
    stop.set()
    worker.join(30)
    assert not worker.is_alive()
    assert_landed_once(lake, ids(events))
    assert lander._consumer is None
