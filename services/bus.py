"""The Kafka bus on kafka-python: topics, a producer that never fails silently, consumers.

The same code runs against the embedded broker and Apache Kafka; only settings differ
(`EFIR_KAFKA_IDEMPOTENCE` must stay off on Tansu, where idempotent sends fail).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.events import TOPICS, Envelope
from services.settings import Settings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not acknowledge an event."""


def ensure_topics(settings: Settings, topics: Iterable[str] = TOPICS) -> None:
    """Create missing topics with the configured partitions; existing topics are left alone."""
    # Topics are created one by one: Tansu's metadata answer breaks kafka-python's list_topics(),
    # and "already exists" is the normal case on every start but the first.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="efir-admin")
    try:
        for topic in topics:
            try:
                admin.create_topics([NewTopic(topic, settings.kafka_partitions, settings.kafka_replication)])
                log.info("created topic %s", topic)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """acks=all with retries; one request in flight per connection keeps a channel's order on retry."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "retries": 5,
        "max_in_flight_requests_per_connection": 1,
        "linger_ms": 5,
        "enable_idempotence": settings.kafka_idempotence,
        "client_id": f"efir-{settings.node_id}",
    }
    config.update(overrides)
    return KafkaProducer(**config)


def publish(producer: KafkaProducer, events: Sequence[Envelope], timeout: float = 10.0) -> None:
    """Send a batch and wait for every acknowledgement: flush() alone hides failures on Tansu."""
    futures = [producer.send(e.topic, key=e.channel_id.encode(), value=e.to_json()) for e in events]
    producer.flush(timeout)
    for event, future in zip(events, futures, strict=True):
        try:
            future.get(timeout)
        except KafkaError as exc:
            raise PublishError(f"event {event.event_id} not acknowledged: {exc!r}") from exc


def make_consumer(settings: Settings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits and a short fetch wait (Tansu answers at the deadline)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 10,
        "max_poll_records": 2000,
        "client_id": f"efir-{group_id or 'reader'}",
    }
    config.update(overrides)
    return KafkaConsumer(**config)


def cluster_id(client: KafkaProducer | KafkaConsumer) -> str | None:
    """The cluster id from the client's metadata: it changes when the embedded broker restarts empty."""
    metadata = client._metadata if isinstance(client, KafkaProducer) else client._client.cluster
    cid: str | None = metadata.cluster_id
    return cid


def broker_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=int(timeout * 1000),
            client_id="efir-probe",
        )
    except KafkaError:
        return False
    admin.close()
    return True
