"""Chat state in the node's database: messages, channel roles, restrictions and channel settings.

Everything moderation decides lives here (not in a node's memory), so several nodes on one
PostgreSQL share bans, timeouts, roles and modes. Created by migration `0002_chat`; content (message
kinds, emotes and stickers, pins, IP blocks) by `0002_chat_content`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ingest_node.models import Base, UTCDateTime, utcnow


class MessageStatus(StrEnum):
    VISIBLE = "visible"
    HIDDEN = "hidden"  # by automod, or by a timeout/ban/clear of its author
    HELD = "held"  # waiting for a moderator
    DELETED = "deleted"
    REJECTED = "rejected"  # a held message a moderator refused


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (sa.Index("ix_chat_messages_channel", "channel_id", "id"),)
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )  # the order messages were accepted in: history and review queues sort by it
    message_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"))
    user_id: Mapped[str] = mapped_column(sa.String(128))
    display_name: Mapped[str] = mapped_column(sa.String(64))
    text: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))
    rule: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "chat", "sticker", "donation" or "subscription"; `meta` is the kind's JSON (sticker, amount, tier).
    kind: Mapped[str] = mapped_column(sa.String(16), default="chat", server_default="chat")
    meta: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class ChatRole(Base):
    """A user's role in a channel (owner, moderator, vip) and subscription tier (0 = none)."""

    __tablename__ = "chat_roles"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    sub_tier: Mapped[int] = mapped_column(sa.Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatRestriction(Base):
    """A ban (until is NULL) or a timeout (until a time) of a user in a channel."""

    __tablename__ = "chat_restrictions"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # "ban" | "timeout"
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(200), default="")
    actor: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatChannelSettings(Base):
    """Modes and auto-moderation settings of a channel (`automod` is AutoModConfig as JSON)."""

    __tablename__ = "chat_channel_settings"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    slow_seconds: Mapped[int] = mapped_column(sa.Integer, default=0)
    subs_only: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    emote_only: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    automod: Mapped[str] = mapped_column(sa.Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatEmote(Base):
    """A channel's own emote or sticker (`kind`), managed by the channel owner over the API.

    Global ones are data in `services/chat/data/emotes.yaml`, not rows. `min_tier` 0 is for everyone,
    1..3 needs a subscription of at least that tier."""

    __tablename__ = "chat_emotes"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)  # "emote" | "sticker"
    code: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(300))
    min_tier: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatPin(Base):
    """A paid (boosted) message pinned above the chat until `expires_at`; one per settling event."""

    __tablename__ = "chat_pins"
    __table_args__ = (sa.Index("ix_chat_pins_channel_expires", "channel_id", "expires_at"),)
    pin_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(64), unique=True)  # idempotency key of the payment
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"))
    user_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    display_name: Mapped[str] = mapped_column(sa.String(64))
    text: Mapped[str] = mapped_column(sa.Text)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChatSeenAddress(Base):
    """The keyed fingerprint of the address a signed-in user last joined a channel's chat from.

    Kept so a ban with IP block (`/ipban`) can block the address even when the user is connected to
    another node. Never the raw address: HMAC under EFIR_FINGERPRINT_SECRET."""

    __tablename__ = "chat_seen_addresses"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    ip_hash: Mapped[str] = mapped_column(sa.String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatAddressBlock(Base):
    """An address fingerprint that may not write in a channel's chat; lifted by unbanning `user_id`."""

    __tablename__ = "chat_address_blocks"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    ip_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)  # the banned user it came from
    actor: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
