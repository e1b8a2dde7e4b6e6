"""Channels: created and listed by an admin only (a streamer's channel is where donations go).

`GET/PUT /api/v1/channels/{id}/media`: the channel's latency level, quality preset, codec and segment
format (`ingest_node.ingest.channel_media`), applied when its next stream starts.

`GET/PUT /api/v1/channels/{id}/game`: the game the channel is playing (`ingest_node.ingest.channel_game`).
Anyone may read it (players and pages show it); the channel's owner (chat token) or the admin sets it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from ingest_node.audit import audit
from ingest_node.deps import AdminDep, SessionDep, SettingsDep, StreamerDep
from ingest_node.ingest import channel_game, channel_media
from ingest_node.models import Channel
from ingest_node.schemas import CHANNEL_ID_PATTERN, ChannelIn, ChannelOut
from services.games import Game, GameError

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_channel(body: ChannelIn, session: SessionDep, actor: AdminDep) -> ChannelOut:
    try:
        with session.begin():
            if session.get(Channel, body.channel_id) is not None:
                raise HTTPException(status.HTTP_409_CONFLICT, f"channel {body.channel_id!r} already exists")
            channel = Channel(channel_id=body.channel_id, name=body.name)
            session.add(channel)
            audit(session, actor=actor, action="channel.created", entity=f"channel:{body.channel_id}")
    except IntegrityError:  # created concurrently by another request or node
        raise HTTPException(status.HTTP_409_CONFLICT, f"channel {body.channel_id!r} already exists") from None
    return ChannelOut.model_validate(channel, from_attributes=True)


@router.get("")
def list_channels(session: SessionDep, actor: AdminDep) -> list[ChannelOut]:
    channels = session.execute(sa.select(Channel).order_by(Channel.channel_id)).scalars()
    return [ChannelOut.model_validate(c, from_attributes=True) for c in channels]


ChannelId = Annotated[str, Path(pattern=CHANNEL_ID_PATTERN)]


class ChannelMediaIn(BaseModel):
    """Fields to change; omitted ones keep their value. `segment_format: "auto"` clears the choice."""

    model_config = ConfigDict(extra="forbid")

    latency_level: int | None = Field(None, description="1 (1 s low-latency segments) .. 6 (6 s).")
    quality_preset: str | None = Field(None, description="low, medium or high (presets.yaml).")
    codec: Literal["h264", "hevc", "av1"] | None = None
    segment_format: Literal["ts", "fmp4", "auto"] | None = None


class ChannelMediaOut(BaseModel):
    channel_id: str
    latency_level: int | None
    segment_seconds: float
    quality_preset: str
    codec: str
    segment_format: str | None
    effective_segment_format: str
    stored: bool


def _media_out(channel_id: str, config: channel_media.MediaConfig) -> ChannelMediaOut:
    return ChannelMediaOut(
        channel_id=channel_id,
        latency_level=config.latency_level,
        segment_seconds=config.segment_seconds,
        quality_preset=config.quality_preset,
        codec=config.codec,
        segment_format=config.segment_format,
        effective_segment_format=config.effective_format,
        stored=config.stored,
    )


@router.get("/{channel_id}/media")
def get_channel_media(
    channel_id: ChannelId, session: SessionDep, settings: SettingsDep, actor: AdminDep
) -> ChannelMediaOut:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown channel {channel_id!r}")
    return _media_out(channel_id, channel_media.load(session, settings, channel_id))


@router.put("/{channel_id}/media")
def set_channel_media(
    channel_id: ChannelId,
    body: ChannelMediaIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: AdminDep,
) -> ChannelMediaOut:
    """Change the channel's media settings; they apply when its next stream starts."""
    with session.begin():
        if session.get(Channel, channel_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown channel {channel_id!r}")
        try:
            config = channel_media.store(
                session,
                settings,
                channel_id,
                latency_level=body.latency_level,
                quality_preset=body.quality_preset,
                codec=body.codec,
                segment_format=None if body.segment_format == "auto" else body.segment_format,
                clear_segment_format=body.segment_format == "auto",
            )
        except channel_media.MediaSettingsError as exc:
            raise HTTPException(422, str(exc)) from exc  # the same status as a schema error
        audit(
            session,
            actor=actor,
            action="channel.media_changed",
            entity=f"channel:{channel_id}",
        )
    return _media_out(channel_id, config)


class ChannelGameIn(BaseModel):
    """`game`: free text (normalised, at most 100 characters once whitespace is collapsed); null or blank
    clears it. The raw text is capped too, so nobody makes the node normalise megabytes."""

    model_config = ConfigDict(extra="forbid")

    game: str | None = Field(max_length=1000)


class ChannelGameOut(BaseModel):
    channel_id: str
    game: str | None  # display name
    game_slug: str | None  # the key stream events carry


def _game_out(channel_id: str, game: Game | None) -> ChannelGameOut:
    return ChannelGameOut(
        channel_id=channel_id,
        game=game.name if game is not None else None,
        game_slug=game.slug if game is not None else None,
    )


@router.get("/{channel_id}/game")
def get_channel_game(channel_id: ChannelId, session: SessionDep) -> ChannelGameOut:
    """Public: what the channel is playing is shown to every viewer."""
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown channel {channel_id!r}")
    return _game_out(channel_id, channel_game.current(session, channel_id))


@router.put("/{channel_id}/game")
def set_channel_game(
    channel_id: ChannelId,
    body: ChannelGameIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: StreamerDep,
) -> ChannelGameOut:
    """Set (or clear) the game; while live, the change is a `stream.game_changed` event at once."""
    with session.begin():
        try:
            game = channel_game.set_game(session, channel_id, body.game, node_id=settings.node_id)
        except GameError as exc:
            raise HTTPException(422, str(exc)) from exc  # the same status as a schema error
        audit(session, actor=actor, action="channel.game_changed", entity=f"channel:{channel_id}")
    return _game_out(channel_id, game)
