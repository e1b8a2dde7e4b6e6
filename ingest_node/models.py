"""The node's tables (SQLAlchemy 2): channels, donations and the records that make money paths safe.

`idempotency_keys` makes a retried POST answer what the first one did; `webhook_events` makes a
replayed webhook a no-op; `outbox` holds every event until the broker acknowledged it (transactional
outbox); `audit_log` is append-only (a trigger refuses UPDATE and DELETE, see the first migration).
The migrations in `ingest_node/migrations/` create these tables; the two must change together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and read back timezone-aware, also on SQLite (which drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DonationStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"
    HELD = "held"  # held for review before the payment is asked for (ingest_node/money/donation_rules.py)


class Base(DeclarativeBase):
    pass


class Channel(Base):
    __tablename__ = "channels"
    channel_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Donation(Base):
    __tablename__ = "donations"
    donation_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    message: Mapped[str] = mapped_column(sa.String(300), default="")
    donor_name: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=DonationStatus.PENDING)
    provider_payment_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True, unique=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The donor asked for the message to be read aloud (migration 0004_donation_tts).
    tts: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    donation_id: Mapped[str] = mapped_column(sa.ForeignKey("donations.donation_id"))
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEventRecord(Base):
    __tablename__ = "webhook_events"
    webhook_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(32))
    donation_id: Mapped[str] = mapped_column(sa.ForeignKey("donations.donation_id"))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxRow(Base):
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    topic: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    published_cluster_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(64))
    entity: Mapped[str] = mapped_column(sa.String(128), index=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    amount_before_minor: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    amount_after_minor: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    status_before: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    status_after: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
