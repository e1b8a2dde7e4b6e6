"""The transactional outbox: events commit with the state change that caused them, a relay publishes them.

An API answer is given only after the outbox row committed, so an acknowledged donation's events
survive a broker that is down or restarts empty. The relay publishes in id order, waits for every
acknowledgement, and only then marks rows published (with the cluster id of the broker that took
them): a crash in between publishes again, never loses. When the broker's cluster id changes (the
embedded broker restarted empty), rows published within the lander's dedup window are sent again;
the lander drops the duplicates by event id.

On PostgreSQL the relay claims rows with SELECT ... FOR UPDATE SKIP LOCKED so several nodes can relay
from one database. On SQLite (one node) it releases the database while it waits for the broker, so
request threads never queue behind a slow publish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.metrics import NodeMetrics
from ingest_node.models import OutboxRow
from services import bus
from services.events import TOPICS, Envelope
from services.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
#: PostgreSQL: one relay publishes at a time (a transaction-scoped advisory lock), so relays of several
#: nodes never publish rows of one channel out of id order (SKIP LOCKED alone would let a later batch
#: overtake an earlier one).
RELAY_TURN = sa.text("SELECT pg_try_advisory_xact_lock(7301120401)")
BUSY_RETRY_SECONDS = 0.01


#: wake-up events of the running relays, by the engine they read from; set when an outbox row commits.
_WAKE_UPS: dict[sa.Engine, set[threading.Event]] = {}
_WAKE_UPS_LOCK = threading.Lock()


def enqueue(session: Session, envelope: Envelope) -> None:
    """Add an event to the caller's transaction; it leaves the node once that transaction commits.

    The commit wakes this node's relay at once, so events (chat above all) do not wait for its poll."""
    session.add(
        OutboxRow(
            event_id=envelope.event_id,
            topic=envelope.topic,
            key=envelope.channel_id,
            value=envelope.model_dump_json(),
        )
    )
    if not session.info.get("outbox_wake_up"):
        session.info["outbox_wake_up"] = True
        sa.event.listen(session, "after_commit", _wake_relays)


def _wake_relays(session: Session) -> None:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, sa.Connection) else bind
    with _WAKE_UPS_LOCK:
        events = list(_WAKE_UPS.get(engine, ()))
    for event in events:
        event.set()


class OutboxRelay:
    """A daemon thread that moves committed outbox rows to the broker, surviving broker outages."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        metrics: NodeMetrics | None = None,
        producer_factory: Callable[[Settings], KafkaProducer] | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self.metrics = metrics or NodeMetrics()
        self._producer_factory = producer_factory or _relay_producer
        self._producer: KafkaProducer | None = None
        self._swept_cluster: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine = sessions.kw["bind"]
        self._lock_rows = self._engine.dialect.name != "sqlite"
        self._busy = False
        self.failures = 0
        self.rounds = 0

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OutboxRelay:
        self._stop.clear()
        with _WAKE_UPS_LOCK:
            _WAKE_UPS.setdefault(self._engine, set()).add(self._wake)
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        with _WAKE_UPS_LOCK:
            waiting = _WAKE_UPS.get(self._engine)
            if waiting is not None:
                waiting.discard(self._wake)
                if not waiting:
                    del _WAKE_UPS[self._engine]
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._drop_producer()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = self.settings.outbox_poll_seconds
        while not self._stop.is_set():
            try:
                self._busy = False
                published = self.run_once()
                backoff = self.settings.outbox_poll_seconds
                if self._busy:
                    self._stop.wait(BUSY_RETRY_SECONDS)
                elif published < self.settings.outbox_batch:
                    self._wake.wait(self.settings.outbox_poll_seconds)  # a commit wakes it early
                    self._wake.clear()
            except Exception as exc:  # the relay must outlive any broker or database hiccup
                self.failures += 1
                self.metrics.outbox_failures.inc()
                log.warning(
                    "outbox relay round failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, backoff
                )
                self._drop_producer()
                self._stop.wait(backoff)
                backoff = min(max(backoff, 0.1) * 2, MAX_BACKOFF_SECONDS)
            finally:
                self.rounds += 1

    # ---- one round ---------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Connect if needed, republish after a cluster change, publish one batch; returns rows published."""
        producer = self._connect()
        cluster = bus.cluster_id(producer)
        if cluster != self._swept_cluster:
            self._republish_for(producer, cluster)
        unpublished = sa.select(OutboxRow).where(OutboxRow.published_at.is_(None))
        published = self._publish(producer, unpublished, mark_time=True)
        self.metrics.outbox_published.inc(published)
        self._measure_lag()
        return published

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            # Topics first: a broker that auto-creates topics on metadata requests would otherwise
            # create them with its own partition count.
            bus.ensure_topics(self.settings)
            producer = self._producer_factory(self.settings)
            try:
                for topic in TOPICS:
                    producer.partitions_for(topic)  # fetches metadata, hence the cluster id
            except Exception:
                _close_hard(producer)
                raise
            self._producer = producer
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            _close_hard(producer)

    def _republish_for(self, producer: KafkaProducer, cluster: str | None) -> None:
        """Send again what an emptied broker lost: rows published within the dedup window elsewhere."""
        bus.ensure_topics(self.settings)
        since = datetime.now(UTC) - timedelta(days=self.settings.dedup_window_days)
        total = 0
        while True:
            # Re-read the cluster id each batch: should the broker restart again mid-sweep, rows marked
            # with the newer id are not chased forever.
            cluster = bus.cluster_id(producer)
            elsewhere = (
                OutboxRow.published_cluster_id.is_(None)
                if cluster is None
                else sa.or_(
                    OutboxRow.published_cluster_id.is_(None), OutboxRow.published_cluster_id != cluster
                )
            )
            stale = sa.select(OutboxRow).where(OutboxRow.published_at >= since, elsewhere)
            sent = self._publish(producer, stale, mark_time=False)
            total += sent
            if self._busy:  # another relay holds the turn: the sweep is not done yet
                self._busy = False
                self._stop.wait(BUSY_RETRY_SECONDS)
                if self._stop.is_set():
                    return
                continue
            if sent == 0:
                break
        if total:
            self.metrics.outbox_republished.inc(total)
            log.warning("broker cluster changed to %s: republished %d outbox events", cluster, total)
        self._swept_cluster = cluster

    def _publish(self, producer: KafkaProducer, query: sa.Select[OutboxRow], *, mark_time: bool) -> int:
        """Publish one batch of the rows `query` selects, in id order, then mark them in one transaction."""
        query = query.order_by(OutboxRow.id).limit(self.settings.outbox_batch)
        if self._lock_rows:
            query = query.with_for_update(skip_locked=True)
        with self._sessions() as session:
            if self._lock_rows and not session.execute(RELAY_TURN).scalar():
                session.rollback()  # another node's relay is publishing: wait for our turn, keep id order
                self._busy = True
                return 0
            rows = session.execute(query).scalars().all()
            if not rows:
                session.rollback()
                return 0
            ids = [row.id for row in rows]
            events = [Envelope.model_validate_json(row.value) for row in rows]
            if not self._lock_rows:
                session.rollback()  # SQLite: do not hold the write lock while the broker answers
            bus.publish(producer, events)
            values: dict[str, object] = {"published_cluster_id": bus.cluster_id(producer)}
            if mark_time:
                values["published_at"] = datetime.now(UTC)
            session.execute(sa.update(OutboxRow).where(OutboxRow.id.in_(ids)).values(**values))
            session.commit()
        return len(ids)

    def _measure_lag(self) -> None:
        with self._sessions() as session:
            count, oldest = session.execute(
                sa.select(sa.func.count(), sa.func.min(OutboxRow.created_at)).where(
                    OutboxRow.published_at.is_(None)
                )
            ).one()
            session.rollback()
        self.metrics.outbox_pending.set(count)
        if oldest is None:
            self.metrics.outbox_lag.set(0)
        else:
            if oldest.tzinfo is None:  # aggregate results bypass the column type on SQLite
                oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=UTC)
            self.metrics.outbox_lag.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))


def _relay_producer(settings: Settings) -> KafkaProducer:
    """Short blocking limits so an absent broker fails a round quickly; frequent metadata refresh
    notices a restarted (empty) broker even while the node is idle."""
    return bus.make_producer(settings, max_block_ms=5000, request_timeout_ms=10000, metadata_max_age_ms=5000)


def _close_hard(producer: KafkaProducer) -> None:
    """Close a producer whose broker is gone, dropping unsent records (they stay in the outbox).

    kafka-python's close() flushes first and raises when records are pending, leaving the sender thread
    running; so force the sender down (its own API, failing the pending futures), then close.
    """
    try:
        producer.close(timeout=0)
        return
    except KafkaError:
        pass
    sender = producer._sender
    if sender is not None:
        sender.force_close()
        sender.join(5)
    try:
        producer.close(timeout=0)
    except KafkaError:
        log.warning("the relay's producer did not close cleanly", exc_info=True)
