"""The Kafka → Parquet lander: every topic of `services.events.TOPICS` into the lake, exactly once.

The lake holds the offsets (DESIGN.md): each flush of one topic partition is staged, committed by its
manifest and published by `pipelines.landing`; Kafka's committed offset is written afterwards and only
advisory. On start and on every partition assignment the lander recovers the lake and seeks each
partition to the largest offset landed under the current epoch + 1, so a crash at any step lands
nothing twice and loses nothing. Events are deduplicated by `event_id` over the dedup window, because
the node's outbox republishes everything the embedded broker lost when it restarted empty; such a
restart shows as a new cluster id, and the lander then flushes, rebuilds its consumer and lands the new
broker's offsets under the new epoch. Run it with `python -m pipelines.lander`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipelines import landing
from pipelines.dead_letter import write_dead_letter
from services import bus
from services.events import TOPICS, Envelope, to_row
from services.lake import epoch_of
from services.settings import Settings, get_settings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200


@dataclass
class _Buffer:
    """Consumed, not yet landed records of one topic partition."""

    first_offset: int
    last_offset: int
    started: float  # time.monotonic() of the first record
    rows: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    dead_letters: int = 0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush before a partition goes to another member; seek by the lake when one arrives."""

    def __init__(self, lander: Lander):
        self.lander = lander

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.lander._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.lander._on_assigned(assigned)


class Lander:
    """Lands Kafka records into the lake; drive it with `run`, or step by step with `poll_once`.

    `manual_assignment=True` assigns every partition of `topics` without a consumer group: no ~5 s
    group join and no Kafka commits (the lake holds the offsets anyway); right for one lander alone
    and for tests. Otherwise the lander joins `group_id` (default `settings.lander_group`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        topics: Sequence[str] = TOPICS,
        group_id: str | None = None,
        manual_assignment: bool = False,
        lake: Path | None = None,
    ):
        self.settings = settings
        self.topics = tuple(topics)
        self.group_id = None if manual_assignment else (group_id or settings.lander_group)
        self.lake = lake or settings.lake_root
        self.crash_after: landing.FlushStep | None = None  # crash tests: stop a flush after this step
        # Counters for logs and benchmarks.
        self.rows_landed = 0
        self.files_written = 0
        self.flushes = 0
        self.duplicates_dropped = 0
        self.dead_letters = 0
        self.rebuilds = 0
        self.cluster_id = ""
        self.epoch = ""
        self._consumer: KafkaConsumer | None = None
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._expected: dict[TopicPartition, int] = {}  # next offset each partition should deliver
        self._pending: set[str] = set()  # event ids buffered, not yet landed
        self._landed: dict[date, set[str]] = {}  # event ids landed, by event-time date
        self._window_day: date | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover the lake, seed the dedup window from it, connect and seek by the lake."""
        self.lake.mkdir(parents=True, exist_ok=True)
        landing.recover(self.lake)
        self._seed_dedup()
        self._consumer = self._build_consumer()

    def run(self, stop: threading.Event) -> None:
        """Land until `stop` is set, then flush, commit and close."""
        self.start()
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.close()
        log.info(
            "lander stopped: %d rows in %d files, %d duplicates dropped, %d dead letters",
            self.rows_landed,
            self.files_written,
            self.duplicates_dropped,
            self.dead_letters,
        )

    def close(self, flush: bool = True) -> None:
        """Flush and commit what is buffered (unless `flush=False`, as a crash would), then disconnect."""
        if flush:
            self.flush_all()
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the lander is not started")
        return self._consumer

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment())

    @property
    def pending_event_ids(self) -> frozenset[str]:
        """Event ids consumed and buffered, not landed yet."""
        return frozenset(self._pending)

    # ---- consuming ------------------------------------------------------------------------------

    def poll_once(self, timeout_ms: int = POLL_TIMEOUT_MS) -> int:
        """One poll: buffer the records, land every partition that is due; returns records taken."""
        consumer = self.consumer
        try:
            polled: dict[TopicPartition, list[ConsumerRecord]] = consumer.poll(timeout_ms)
        except KafkaError as exc:
            log.warning("poll failed, retrying: %r", exc)
            polled = {}
        # A poll's records are checked before any is buffered: after a broker restart they may come
        # from the new broker, whose offsets mean something else (another epoch).
        current = _confirmed_cluster_id(consumer) if polled else bus.cluster_id(consumer)
        if current is None and polled:
            for tp, records in polled.items():  # which broker sent them is unknown: fetch them again
                consumer.seek(tp, records[0].offset)
            return 0
        if current and current != self.cluster_id:
            self._rebuild(f"cluster id changed from {self.cluster_id} to {current}")
            return 0
        for tp, records in polled.items():
            if records and records[0].offset < self._expected.get(tp, 0):
                self._rebuild(
                    f"{tp.topic}/p{tp.partition} went back to offset {records[0].offset} "
                    f"(expected {self._expected[tp]})"
                )
                return 0
        taken = 0
        for tp, records in polled.items():
            for record in records:
                self._take(tp, record)
                taken += 1
                buffer = self._buffers[tp]
                if len(buffer.rows) >= self.settings.lander_flush_rows:
                    self.flush_partition(tp.topic, tp.partition)
        now = time.monotonic()
        for tp, buffer in list(self._buffers.items()):
            if now - buffer.started >= self.settings.lander_flush_seconds:
                self.flush_partition(tp.topic, tp.partition)
        return taken

    land_once = poll_once

    def _take(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        buffer = self._buffers.get(tp)
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(record.offset, record.offset, time.monotonic())
        buffer.last_offset = record.offset
        self._expected[tp] = record.offset + 1
        try:
            env = Envelope.from_json(record.value)
            if env.topic != tp.topic:
                raise ValueError(f"event type {env.event_type} belongs to topic {env.topic}")
            row = to_row(env, tp.partition, record.offset)
        except (ValueError, TypeError) as exc:
            path = write_dead_letter(
                self.lake,
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                epoch=self.epoch,
                key=record.key,
                raw=record.value,
                error=str(exc),
            )
            log.error(
                "malformed record %s/p%d@%d sent to dead letter %s: %s",
                tp.topic,
                tp.partition,
                record.offset,
                path,
                str(exc).splitlines()[0],
            )
            buffer.dead_letters += 1
            self.dead_letters += 1
            return
        if self._is_duplicate(env.event_id):
            buffer.duplicates += 1
            self.duplicates_dropped += 1
            return
        self._pending.add(env.event_id)
        buffer.rows.append(row)

    # ---- landing --------------------------------------------------------------------------------

    def flush_partition(self, topic: str, partition: int, commit: bool = True) -> None:
        """Land the buffer of one partition (manifest = commit point), then commit to Kafka (advisory)."""
        tp = TopicPartition(topic, partition)
        buffer = self._buffers.pop(tp, None)
        if buffer is None:
            return
        batch = landing.Batch(
            topic=topic,
            epoch=self.epoch,
            cluster_id=self.cluster_id,
            partition=partition,
            first_offset=buffer.first_offset,
            last_offset=buffer.last_offset,
            rows=buffer.rows,
        )
        try:
            manifest = landing.land(self.lake, batch, crash_after=self.crash_after)
        except BaseException:
            # Not landed: these ids must not count as duplicates when the records come again.
            self._pending.difference_update(row["event_id"] for row in buffer.rows)
            raise
        for row in buffer.rows:
            self._remember(row["event_id"], row["occurred_at"].date())
        self.flushes += 1
        self.rows_landed += manifest.rows
        self.files_written += len(manifest.files)
        log.info(
            "landed %d rows of %s/p%d offsets %d-%d into %d files (epoch %s); "
            "dropped %d duplicate events by event_id; %d dead letters",
            manifest.rows,
            topic,
            partition,
            batch.first_offset,
            batch.last_offset,
            len(manifest.files),
            self.epoch,
            buffer.duplicates,
            buffer.dead_letters,
        )
        if commit and self.group_id is not None and self._consumer is not None:
            try:
                self._consumer.commit({tp: OffsetAndMetadata(batch.last_offset + 1, "", -1)})
            except KafkaError as exc:  # advisory: the lake already holds the offsets
                log.warning("Kafka commit of %s/p%d failed (harmless): %r", topic, partition, exc)

    def flush_all(self, commit: bool = True) -> None:
        for tp in sorted(self._buffers, key=lambda t: (t.topic, t.partition)):
            self.flush_partition(tp.topic, tp.partition, commit=commit)

    # ---- dedup window ---------------------------------------------------------------------------

    def _window_start(self) -> date:
        return datetime.now(UTC).date() - timedelta(days=self.settings.dedup_window_days)

    def _seed_dedup(self) -> None:
        self._window_day = datetime.now(UTC).date()
        self._landed = landing.landed_event_ids(self.lake, self.topics, self._window_start())
        log.info(
            "dedup window seeded with %d landed event ids since %s",
            sum(len(ids) for ids in self._landed.values()),
            self._window_start(),
        )

    def _is_duplicate(self, event_id: str) -> bool:
        return event_id in self._pending or any(event_id in ids for ids in self._landed.values())

    def _remember(self, event_id: str, day: date) -> None:
        self._pending.discard(event_id)
        self._landed.setdefault(day, set()).add(event_id)
        today = datetime.now(UTC).date()
        if today != self._window_day:  # a new day: forget the dates that left the window
            self._window_day = today
            since = self._window_start()
            for old in [d for d in self._landed if d < since]:
                del self._landed[old]

    # ---- consumer, assignment, broker restarts --------------------------------------------------

    def _build_consumer(self) -> KafkaConsumer:
        bus.ensure_topics(self.settings, self.topics)
        consumer = bus.make_consumer(self.settings, self.group_id)
        self._consumer = consumer
        partitions = {t: consumer.partitions_for_topic(t) for t in self.topics}  # loads the metadata
        self.cluster_id = bus.cluster_id(consumer) or ""
        if not self.cluster_id:
            log.warning("the broker reports no cluster id; landing under the epoch of ''")
        self.epoch = epoch_of(self.cluster_id)
        log.info(
            "lander on %s (cluster %s, epoch %s), %s",
            self.settings.kafka_bootstrap,
            self.cluster_id,
            self.epoch,
            "partitions assigned manually" if self.group_id is None else f"group {self.group_id}",
        )
        if self.group_id is None:
            assigned = [TopicPartition(t, p) for t in self.topics for p in sorted(partitions[t])]
            consumer.assign(assigned)
            self._on_assigned(assigned)
        else:
            consumer.subscribe(list(self.topics), listener=_Rebalance(self))
        return consumer

    def _on_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        landing.recover(self.lake, only={(tp.topic, tp.partition) for tp in assigned})
        for tp in assigned:
            nxt = landing.landed_next_offset(self.lake, tp.topic, self.epoch, tp.partition)
            if nxt is None:
                self.consumer.seek_to_beginning(tp)
                self._expected[tp] = 0
            else:
                self.consumer.seek(tp, nxt)
                self._expected[tp] = nxt
            log.info("%s/p%d starts at %s (by the lake)", tp.topic, tp.partition, nxt or "the beginning")

    def _on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self.flush_partition(tp.topic, tp.partition)
            self._expected.pop(tp, None)

    def _rebuild(self, reason: str) -> None:
        """The broker is another one (restarted empty): land what the old one gave, start afresh."""
        log.warning("rebuilding the consumer: %s", reason)
        self.flush_all(commit=False)  # offsets of the old broker mean nothing to the new one
        self.close(flush=False)
        self._expected.clear()
        self.rebuilds += 1
        self._consumer = self._build_consumer()


def _confirmed_cluster_id(consumer: KafkaConsumer, timeout_ms: int = 5000) -> str | None:
    """The cluster id, refreshed first whenever the client has flagged its metadata as stale.

    After the embedded broker restarts, kafka-python reconnects and may answer a fetch from the new
    broker before its metadata refresh (and so the new cluster id) arrives; a disconnect always flags
    that refresh, so waiting for it here tells which broker a poll's records came from. None when the
    refresh did not complete (broker unreachable): the records' origin is unknown.
    """
    client = consumer._client
    if client.cluster.need_update or client._metadata_refresh_in_progress:
        future = client.cluster.request_update()
        client.poll(timeout_ms=timeout_ms, future=future)
        if not future.succeeded():
            return None
    return bus.cluster_id(consumer)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.lander", description=__doc__)
    parser.add_argument("--group", help="consumer group (default: EFIR_LANDER_GROUP)")
    parser.add_argument(
        "--manual",
        action="store_true",
        help="assign every partition without a consumer group (one lander alone; no Kafka commits)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: flushing and stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    Lander(settings, group_id=args.group, manual_assignment=args.manual).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
