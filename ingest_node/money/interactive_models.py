"""Tables of interactive donations and on-stream widgets. Migration: `0002_interactive`.

- `boosted_messages`: a paid chat message; pinned in chat once its charge settles.
- `media_requests` + `request_queues`: the music/game request queue the streamer controls. A request
  is paid through a charge (`req:<charge id>`); only settled requests are in the queue.
- `challenges` + `donation_tags`: viewer challenges with a target; a donation tagged with a challenge
  counts towards it once settled (and stops counting when refunded or charged back). A tag can also
  ask for a highlighted moment, stored in `stream_moments` when the donation settles.
- `stream_goals`: the goal bar's goal; progress is read from settled donations, never stored.
- `alert_settings`: the alert box's per-channel settings (JSON, validated by `alert_settings.py`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ingest_node.models import Base, UTCDateTime, utcnow


class RequestStatus(StrEnum):
    PENDING = "pending"  # waiting for its payment
    QUEUED = "queued"
    PLAYED = "played"
    SKIPPED = "skipped"
    REMOVED = "removed"
    FAILED = "failed"  # the payment failed: never queued
    REVERSED = "reversed"  # refunded or charged back while still queued


class BoostedMessage(Base):
    __tablename__ = "boosted_messages"
    boost_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    charge_id: Mapped[str] = mapped_column(sa.String(36), unique=True)  # money_charges.charge_id
    user_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    display_name: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    message: Mapped[str] = mapped_column(sa.String(300))
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    pin_seconds: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16))
    pin_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RequestQueue(Base):
    __tablename__ = "request_queues"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    is_open: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    currency: Mapped[str] = mapped_column(sa.String(3), default="RUB")
    min_amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MediaRequest(Base):
    __tablename__ = "media_requests"
    request_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    charge_id: Mapped[str] = mapped_column(sa.String(36), unique=True)  # money_charges.charge_id
    kind: Mapped[str] = mapped_column(sa.String(8))  # music | game
    title: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    requester_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    requester_name: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    manual_order: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    refund: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)  # requested | refunded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Challenge(Base):
    __tablename__ = "challenges"
    challenge_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    target_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    raised_minor: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default="open")  # open | completed | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DonationTag(Base):
    """What a donation asked for beyond the money: a challenge to count towards, a moment to mark."""

    __tablename__ = "donation_tags"
    donation_id: Mapped[str] = mapped_column(sa.ForeignKey("donations.donation_id"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    challenge_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("challenges.challenge_id"), nullable=True, index=True
    )
    counted: Mapped[bool] = mapped_column(sa.Boolean, default=False)  # its amount is in raised_minor
    moment_broadcast_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    moment_offset_ms: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)


class StreamMoment(Base):
    __tablename__ = "stream_moments"
    moment_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    broadcast_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    donation_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    offset_ms: Mapped[int] = mapped_column(sa.BigInteger)
    label: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StreamGoal(Base):
    __tablename__ = "stream_goals"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    target_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertSettingsRow(Base):
    __tablename__ = "alert_settings"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    settings: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
