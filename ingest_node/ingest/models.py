"""Ingest state in the node's database: stream keys (hashed) and broadcasts. Created by `0002_ingest`.

A stream key is never stored: only a per-key salted SHA-256 digest, plus a short `lookup` tag (the
first hex digits of an unsalted, domain-separated SHA-256) so a publish finds its candidate row with an
index instead of hashing every channel's key. The key has 256 random bits, so neither the tag nor the
digest helps anyone guess it. A broadcast is one live session of a channel, from the first accepted
publish to the end of the reconnect grace period; its events carry its id.
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
