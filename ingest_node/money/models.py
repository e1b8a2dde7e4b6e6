"""Tables of subscriptions, gifts, their payments (charges) and the overlay alert feed.

A `MoneyCharge` is one payment at the Payment Service for a subscription or a gift; its `reference`
(`sub:<charge_id>` or `gift:<charge_id>`) routes the provider's webhooks here instead of to donations.
It also carries the Idempotency-Key of the write that created it (or a deterministic key for renewal
charges), so a retried request or a rerun renewal job never charges twice. `overlay_alerts` is the
per-channel, ordered, persisted feed the alert box reads: a reconnecting overlay resumes after the
last event it showed. Migration: `0002_money`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ingest_node.models import Base, UTCDateTime, utcnow

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class ChargeKind(StrEnum):
    SUB_CREATE = "sub_create"
    SUB_GIFT = "sub_gift"
    SUB_UPGRADE = "sub_upgrade"
    SUB_RENEW = "sub_renew"
    SUB_GIFT_BATCH = "sub_gift_batch"  # one charge for N gifted subscriptions (gift_batches.py)
    GIFT = "gift"
    BOOST = "boost"  # a boosted chat message (ingest_node/money/interactive.py)
    REQUEST = "request"  # a music/game request (ingest_node/money/interactive.py)


class ChargeStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"


class Subscription(Base):
    __tablename__ = "subscriptions"
    subscription_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    subscriber_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    tier: Mapped[str] = mapped_column(sa.String(16))
    pending_tier: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    auto_renew: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    gifted_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    period_no: Mapped[int] = mapped_column(sa.Integer, default=0)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    notice_period_no: Mapped[int] = mapped_column(sa.Integer, default=0)
    streak_months: Mapped[int] = mapped_column(sa.Integer, default=0)
    manage_token_hash: Mapped[str] = mapped_column(sa.String(64))
    # The provider's saved-payment token renewals are charged with (a token, never a card number).
    payment_token: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiftPurchase(Base):
    __tablename__ = "gift_purchases"
    gift_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    item_id: Mapped[str] = mapped_column(sa.String(40))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    sender_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    sender_name: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    recipient_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    message: Mapped[str] = mapped_column(sa.String(300), default="")
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MoneyCharge(Base):
    __tablename__ = "money_charges"
    charge_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(64), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"))
    subscription_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("subscriptions.subscription_id"), nullable=True, index=True
    )
    gift_id: Mapped[str | None] = mapped_column(sa.ForeignKey("gift_purchases.gift_id"), nullable=True)
    tier: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16))
    provider_payment_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True, unique=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(160), unique=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MoneyWebhookEvent(Base):
    __tablename__ = "money_webhook_events"
    webhook_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(32))
    charge_id: Mapped[str] = mapped_column(sa.ForeignKey("money_charges.charge_id"))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverlayKey(Base):
    __tablename__ = "overlay_keys"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverlayAlert(Base):
    __tablename__ = "overlay_alerts"
    seq: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    channel_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
