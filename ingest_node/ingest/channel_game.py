"""The game a channel says it is playing, set by its owner (or the admin); created by `0002_channel_game`.

One row per channel with a game (no row: none). The stream lifecycle reads it when it emits an event,
so `stream.started` carries the game at start; a change while the channel is live is recorded at once
as `stream.game_changed` in the same transaction as the row (through the outbox), so analytics can split
a broadcast's minutes between games. Names are normalised and refused by `services.games`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest_node.ingest.models import Broadcast, BroadcastStatus
from ingest_node.models import Base, UTCDateTime, utcnow
from ingest_node.outbox import enqueue
from services.events import Envelope, StreamGameChanged
from services.games import Game, normalise


class ChannelGame(Base):
    __tablename__ = "channel_game"
    __table_args__ = (sa.Index("ix_channel_game_slug", "game_slug"),)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    game: Mapped[str] = mapped_column(sa.String(100))
    game_slug: Mapped[str] = mapped_column(sa.String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def current(session: Session, channel_id: str) -> Game | None:
    row = session.get(ChannelGame, channel_id)
    return Game(row.game, row.game_slug) if row is not None else None


def current_slug(session: Session, channel_id: str) -> str:
    """What stream events carry: the slug, "" without a game."""
    game = current(session, channel_id)
    return game.slug if game is not None else ""


def set_game(session: Session, channel_id: str, text: str | None, *, node_id: str) -> Game | None:
    """Store the normalised game (None or blank text clears it) and, when the channel is live and the
    slug changed, enqueue `stream.game_changed` for its broadcast. Raises `services.games.GameError`."""
    game = normalise(text or "")
    before = current_slug(session, channel_id)
    row = session.get(ChannelGame, channel_id)
    if game is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(ChannelGame(channel_id=channel_id, game=game.name, game_slug=game.slug))
    else:
        row.game, row.game_slug = game.name, game.slug
    after = game.slug if game is not None else ""
    live = session.execute(
        sa.select(Broadcast.broadcast_id)
        .where(Broadcast.channel_id == channel_id, Broadcast.status == BroadcastStatus.LIVE)
        .order_by(Broadcast.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if live is not None and after != before:
        payload = StreamGameChanged(broadcast_id=live, game=after)
        enqueue(session, Envelope.wrap(payload, channel_id=channel_id, node_id=node_id))
    session.flush()
    return game
