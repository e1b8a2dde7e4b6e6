"""Stream keys and live streams over the admin API (the `efir channels` commands call these).

`POST /api/v1/channels/{id}/stream-key` creates or rotates the channel's key and answers it ONCE, with
the RTMP ingest URL and the HLS playback URL; only its salted hash is stored. Rotating or revoking a
key also disconnects a publisher that is live with the old one. Both are audit-logged (without the key).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel

from ingest_node.audit import audit
from ingest_node.deps import AdminDep, SessionDep, SettingsDep
from ingest_node.ingest.keys import issue_key, revoke_keys
from ingest_node.ingest.service import IngestService, playback_url, rtmp_base_url
from ingest_node.models import Channel
from ingest_node.schemas import CHANNEL_ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["streams"])

ChannelId = Annotated[str, Path(pattern=CHANNEL_ID_PATTERN)]


class StreamKeyOut(BaseModel):
    channel_id: str
    stream_key: str
    rtmp_url: str
    rtmp_server: str
    playback_url: str


class LiveStatusOut(BaseModel):
    channel_id: str
    live: bool
    playback_url: str


def _ingest(request: Request) -> IngestService | None:
    return getattr(request.app.state, "ingest", None)


def _channel_or_404(session: SessionDep, channel_id: str) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown channel {channel_id!r}")
    return channel


@router.post("/channels/{channel_id}/stream-key", status_code=status.HTTP_201_CREATED)
def create_stream_key(
    channel_id: ChannelId, request: Request, session: SessionDep, settings: SettingsDep, actor: AdminDep
) -> StreamKeyOut:
    """Create the channel's stream key, or rotate it (the old key stops working at once)."""
    with session.begin():
        _channel_or_404(session, channel_id)
        key = issue_key(session, channel_id)
        audit(session, actor=actor, action="stream_key.issued", entity=f"channel:{channel_id}")
    ingest = _ingest(request)
    if ingest is not None:
        ingest.streams.kick(channel_id, "stream key rotated")
    server = rtmp_base_url(settings)
    return StreamKeyOut(
        channel_id=channel_id,
        stream_key=key,
        rtmp_server=server,
        rtmp_url=f"{server}/{key}",
        playback_url=playback_url(settings, channel_id),
    )


@router.delete("/channels/{channel_id}/stream-key", status_code=status.HTTP_204_NO_CONTENT)
def revoke_stream_key(channel_id: ChannelId, request: Request, session: SessionDep, actor: AdminDep) -> None:
    """Revoke the channel's key: publishing stops now and is refused until a new key is made."""
    with session.begin():
        _channel_or_404(session, channel_id)
        if revoke_keys(session, channel_id) == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} has no active stream key")
        audit(session, actor=actor, action="stream_key.revoked", entity=f"channel:{channel_id}")
    ingest = _ingest(request)
    if ingest is not None:
        ingest.streams.kick(channel_id, "stream key revoked")


@router.get("/streams")
def list_live_streams(request: Request, actor: AdminDep) -> list[dict[str, Any]]:
    """Live streams on this node: broadcast, worker pid, restarts, renditions."""
    ingest = _ingest(request)
    return ingest.streams.snapshot() if ingest is not None else []


@router.get("/channels/{channel_id}/live")
def live_status(channel_id: ChannelId, request: Request, settings: SettingsDep) -> LiveStatusOut:
    """Public: is the channel live on this node, and where to play it."""
    ingest = _ingest(request)
    stream = ingest.streams.live.get(channel_id) if ingest is not None else None
    return LiveStatusOut(
        channel_id=channel_id,
        live=stream is not None and stream.publisher is not None,
        playback_url=playback_url(settings, channel_id),
    )
