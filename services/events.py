"""The event envelope and every event schema: one definition each, used by producer, lander and tests.

Events travel as JSON with key = channel_id, so one channel's events stay ordered. Each event type
belongs to one topic; the lander maps a topic to a typed Arrow schema built from these models.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ids import new_id
from services.money import Currency

SCHEMA_VERSION = 1


class Payload(BaseModel):
    """Base of every event payload; subclasses declare `event_type` and `topic`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    topic: ClassVar[str]


class DonationCreated(Payload):
    """A viewer started a donation; the payment is pending at the provider."""

    event_type: ClassVar[str] = "donation.created"
    topic: ClassVar[str] = "donations"
    donation_id: str
    amount_minor: int
    currency: Currency
    donor_name: str | None = None
    message: str = ""


class DonationProcessed(Payload):
    """DonationReceived in the plan: the provider settled the payment, money is ours."""

    event_type: ClassVar[str] = "donation.processed"
    topic: ClassVar[str] = "donations"
    donation_id: str
    payment_id: str
    amount_minor: int
    currency: Currency
    donor_name: str | None = None
    message: str = ""
    settled_at: datetime


class DonationFailed(Payload):
    """The provider declined the payment; nothing moves."""

    event_type: ClassVar[str] = "donation.failed"
    topic: ClassVar[str] = "donations"
    donation_id: str
    amount_minor: int
    currency: Currency
    reason: str


class DonationRefunded(Payload):
    """A settled donation was refunded; `settled_at` is the original settlement, so the reversal
    converts at the same FX rate and undoes the streamer's share exactly."""

    event_type: ClassVar[str] = "donation.refunded"
    topic: ClassVar[str] = "donations"
    donation_id: str
    payment_id: str
    amount_minor: int
    currency: Currency
    settled_at: datetime
    reason: str = ""


class DonationChargedBack(Payload):
    """The payer's bank reversed a settled donation; same reversal rule as a refund."""

    event_type: ClassVar[str] = "donation.charged_back"
    topic: ClassVar[str] = "donations"
    donation_id: str
    payment_id: str
    amount_minor: int
    currency: Currency
    settled_at: datetime
    reason: str = ""


PAYLOADS: dict[str, type[Payload]] = {
    cls.event_type: cls
    for cls in (DonationCreated, DonationProcessed, DonationFailed, DonationRefunded, DonationChargedBack)
}
TOPICS: tuple[str, ...] = tuple(sorted({cls.topic for cls in PAYLOADS.values()}))


class Envelope(BaseModel):
    """What every topic carries. `event_id` is a UUIDv7 made where the event happened."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str = Field(default_factory=new_id)
    event_type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    channel_id: str
    user_id: str | None = None
    node_id: str
    schema_version: int = SCHEMA_VERSION
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone")
        return value.astimezone(UTC)

    @field_validator("event_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PAYLOADS:
            raise ValueError(f"unknown event type {value!r}")
        return value

    @classmethod
    def wrap(
        cls, payload: Payload, *, channel_id: str, node_id: str, user_id: str | None = None, **kw: Any
    ) -> Envelope:
        return cls(
            event_type=payload.event_type,
            channel_id=channel_id,
            user_id=user_id,
            node_id=node_id,
            payload=payload.model_dump(mode="json"),
            **kw,
        )

    @property
    def topic(self) -> str:
        return PAYLOADS[self.event_type].topic

    def typed_payload(self) -> Payload:
        return PAYLOADS[self.event_type].model_validate(self.payload)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse and validate envelope and payload; raises ValueError on anything malformed."""
        env = cls.model_validate_json(raw)
        env.typed_payload()
        return env


# ---- Arrow mapping: one typed schema per topic -------------------------------------------------

_TS = pa.timestamp("us", tz="UTC")
ENVELOPE_FIELDS: list[pa.Field] = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("occurred_at", _TS, nullable=False),
    pa.field("channel_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string()),
    pa.field("node_id", pa.string(), nullable=False),
    pa.field("schema_version", pa.int32(), nullable=False),
]
KAFKA_FIELDS: list[pa.Field] = [
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
]


def _arrow_type(annotation: Any) -> pa.DataType:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if annotation is bool:
        return pa.bool_()
    if annotation is int:
        return pa.int64()
    if annotation is datetime:
        return _TS
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, str)):
        return pa.string()
    raise TypeError(f"no Arrow type for {annotation!r}")


def payload_fields(topic: str) -> list[pa.Field]:
    """Union of the payload fields of the topic's event types, all nullable, in a stable order."""
    seen: dict[str, pa.DataType] = {}
    for cls in PAYLOADS.values():
        if cls.topic != topic:
            continue
        for name, info in cls.model_fields.items():
            typ = _arrow_type(info.annotation)
            if seen.setdefault(name, typ) != typ:
                raise TypeError(f"{topic}.{name} has two types")
    return [pa.field(name, seen[name]) for name in sorted(seen)]


def arrow_schema(topic: str) -> pa.Schema:
    return pa.schema(ENVELOPE_FIELDS + payload_fields(topic) + KAFKA_FIELDS)


def to_row(env: Envelope, partition: int, offset: int) -> dict[str, Any]:
    """Flatten an envelope into one lake row (payload fields become columns)."""
    row: dict[str, Any] = env.model_dump(exclude={"payload"})
    row.update(env.typed_payload().model_dump())
    row["kafka_partition"] = partition
    row["kafka_offset"] = offset
    return row


def envelope_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `to_row` for tests and tools: the JSON-able envelope a lake row came from."""
    cls = PAYLOADS[row["event_type"]]
    env = {f.name: row[f.name] for f in ENVELOPE_FIELDS}
    env["payload"] = cls.model_validate({k: row[k] for k in cls.model_fields}).model_dump(mode="json")
    result: dict[str, Any] = json.loads(Envelope.model_validate(env).model_dump_json())
    return result
