"""Ingest state in the node's database: stream keys (hashed) and broadcasts. Created by `0002_ingest`.

A stream key is never stored: only a per-key salted SHA-256 digest, plus a short `lookup` tag (the
first hex digits of an unsalted, domain-separated SHA-256) so a publish finds its candidate row with an
index instead of hashing every channel's key. The key has 256 random bits, so neither the tag nor the
digest helps anyone guess it. A broadcast is one live session of a channel, from the first accepted
publish to the end of the reconnect grace period; its events carry its id.

`ChannelMedia` (created by `0002_channel_media`) holds a channel's media choices: latency level (segment
length), quality preset (ladder), codec and segment format. A channel without a row uses the node's
defaults (EFIR_HLS_SEGMENT_SECONDS, EFIR_STREAM_QUALITY_PRESET, H.264, TS).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ingest_node.models import Base, UTCDateTime, utcnow


class BroadcastStatus(StrEnum):
    LIVE = "live"
    ENDED = "ended"
    ERRORED = "errored"


class StreamKey(Base):
    __tablename__ = "stream_keys"
    key_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    lookup: Mapped[str] = mapped_column(sa.String(16), index=True)
    salt: Mapped[str] = mapped_column(sa.String(32))
    digest: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Broadcast(Base):
    __tablename__ = "broadcasts"
    broadcast_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=BroadcastStatus.LIVE)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    restarts: Mapped[int] = mapped_column(sa.Integer, default=0)


class ChannelMedia(Base):
    __tablename__ = "channel_media"
    __table_args__ = (
        sa.CheckConstraint("codec IN ('h264', 'hevc', 'av1')", name="ck_channel_media_codec"),
        sa.CheckConstraint(
            "segment_format IS NULL OR segment_format IN ('ts', 'fmp4')", name="ck_channel_media_format"
        ),
    )
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    latency_level: Mapped[int] = mapped_column(sa.Integer)
    quality_preset: Mapped[str] = mapped_column(sa.String(16))
    codec: Mapped[str] = mapped_column(sa.String(8), default="h264")
    segment_format: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)  # None: automatic
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
