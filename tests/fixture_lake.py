"""Build small lakes exactly as the lander lays them out (services.lake), for asset, sensor and notebook
tests that must not wait for a real lander."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from services.events import (
    DonationChargedBack,
    DonationCreated,
    DonationFailed,
    DonationProcessed,
    DonationRefunded,
    Envelope,
    arrow_schema,
    to_row,
)
from services.ids import new_id
from services.lake import Manifest, file_name, partition_dir
from services.money import Currency

TOPIC = "donations"
EPOCH = "feedc0de"


def processed(
    channel_id: str,
    amount_minor: int,
    currency: Currency | str,
    at: datetime,
    *,
    donation_id: str | None = None,
    donor_name: str | None = "Viewer",
    message: str = "",
) -> Envelope:
    """A donation settled at `at` (event time = settlement time, as the node emits it)."""
    payload = DonationProcessed(
        donation_id=donation_id or new_id(),
        payment_id=f"pay_{new_id()}",
        amount_minor=amount_minor,
        currency=Currency(currency),
        donor_name=donor_name,
        message=message,
        settled_at=at,
    )
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", occurred_at=at)


def reversal(original: Envelope, at: datetime, *, chargeback: bool = False) -> Envelope:
    """A refund (or chargeback) of `original` happening at `at`, carrying the original settled_at."""
    p = original.payload
    cls = DonationChargedBack if chargeback else DonationRefunded
    payload = cls(
        donation_id=p["donation_id"],
        payment_id=p["payment_id"],
        amount_minor=p["amount_minor"],
        currency=Currency(p["currency"]),
        settled_at=datetime.fromisoformat(p["settled_at"]),
        reason="test",
    )
    return Envelope.wrap(payload, channel_id=original.channel_id, node_id="node-test", occurred_at=at)


def no_money(channel_id: str, amount_minor: int, at: datetime, *, failed: bool) -> Envelope:
    """A created or failed donation: events that move no money."""
    payload: DonationCreated | DonationFailed
    if failed:
        payload = DonationFailed(
            donation_id=new_id(), amount_minor=amount_minor, currency=Currency.RUB, reason="declined"
        )
    else:
        payload = DonationCreated(donation_id=new_id(), amount_minor=amount_minor, currency=Currency.RUB)
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", occurred_at=at)


def land(
    lake: Path, events: list[Envelope], *, partition: int = 0, first_offset: int = 0, topic: str = TOPIC
) -> Manifest:
    """Land `events` of `topic` at consecutive offsets as the lander does: one file per event date, then the
    manifest of the whole offset range (the commit point)."""
    by_day: dict[date, list[tuple[int, Envelope]]] = defaultdict(list)
    for offset, env in enumerate(events, start=first_offset):
        by_day[env.occurred_at.date()].append((offset, env))
    files = []
    for day, batch in sorted(by_day.items()):
        first, last = batch[0][0], batch[-1][0]
        path = partition_dir(lake, topic, day) / file_name(topic, EPOCH, partition, first, last)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [to_row(env, partition, offset) for offset, env in batch]
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(topic)), path)
        files.append(str(path.relative_to(lake)))
    manifest = Manifest(
        topic=topic,
        epoch=EPOCH,
        cluster_id="test-cluster",
        partition=partition,
        first_offset=first_offset,
        last_offset=first_offset + len(events) - 1,
        rows=len(events),
        files=files,
    )
    manifest.write_atomically(lake)
    return manifest
