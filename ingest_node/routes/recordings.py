"""Recordings of past broadcasts: their list, and each one's VOD playlist and segments.

- `GET /api/v1/channels/{id}/recordings`: public like the live status (a VOD is public like the live
  stream it was); 404 for an unknown channel.
- `GET /vod/{channel}/{broadcast}/index.m3u8` and `/vod/{channel}/{broadcast}/<segment>.ts`: served
  from the recording store with the live segments' MIME types and CORS. A VOD never changes, so the
  playlist may be cached for an hour and segments for a year (`immutable`). A recording still being
  assembled (no manifest yet) is a 404.

With an `s3://` store the node proxies the objects rather than redirecting to presigned URLs: the
bucket stays private, players get the node's MIME types, cache headers and CORS (an S3 bucket's own
CORS and content types are one more thing to configure and drift), and a CDN in front of the node
caches VOD segments exactly as it caches live ones. The price is the node's bandwidth for VOD bytes.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel

from ingest_node.deps import SessionDep
from ingest_node.ingest.recordings import VOD_PLAYLIST, RecordingService
from ingest_node.models import Channel
from ingest_node.routes.hls import CORS_HEADERS, PLAYLIST_TYPE, SEGMENT_CACHE, SEGMENT_TYPES
from ingest_node.schemas import CHANNEL_ID_PATTERN

router = APIRouter(tags=["recordings"])

VOD_PLAYLIST_CACHE = "public, max-age=3600"
BROADCAST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SEGMENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.ts$")

ChannelId = Annotated[str, Path(pattern=CHANNEL_ID_PATTERN)]
BroadcastId = Annotated[str, Path(pattern=BROADCAST_PATTERN)]


class RecordingOut(BaseModel):
    broadcast_id: str
    duration_ms: int
    size_bytes: int
    segments: int
    ended_at: str
    playlist_url: str


def _recordings(request: Request) -> RecordingService:
    ingest = getattr(request.app.state, "ingest", None)
    if ingest is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "recordings are not available yet")
    service: RecordingService = ingest.recordings
    return service


def _not_found(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"{what} not found", headers={"Cache-Control": "no-store", **CORS_HEADERS}
    )


@router.get("/api/v1/channels/{channel_id}/recordings")
def list_recordings(channel_id: ChannelId, request: Request, session: SessionDep) -> list[RecordingOut]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no channel {channel_id!r}")
    return [
        RecordingOut(
            broadcast_id=r.broadcast_id,
            duration_ms=r.duration_ms,
            size_bytes=r.size_bytes,
            segments=r.segments,
            ended_at=r.ended_at,
            playlist_url=r.playlist_url,
        )
        for r in _recordings(request).recordings(channel_id)
    ]


@router.get("/vod/{channel_id}/{broadcast_id}/{name}")
def vod_file(channel_id: ChannelId, broadcast_id: BroadcastId, name: str, request: Request) -> Response:
    if name != VOD_PLAYLIST and not SEGMENT_NAME.fullmatch(name):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a VOD file name: {name[:80]!r}")
    service = _recordings(request)
    if not service.is_complete(channel_id, broadcast_id):
        raise _not_found(f"recording {broadcast_id!r} of channel {channel_id!r}")
    try:
        data = service.store.get(f"{channel_id}/{broadcast_id}/{name}")
    except FileNotFoundError:
        raise _not_found(f"{name!r} of recording {broadcast_id!r}") from None
    if name == VOD_PLAYLIST:
        return Response(
            data, media_type=PLAYLIST_TYPE, headers={"Cache-Control": VOD_PLAYLIST_CACHE, **CORS_HEADERS}
        )
    return Response(
        data, media_type=SEGMENT_TYPES[".ts"], headers={"Cache-Control": SEGMENT_CACHE, **CORS_HEADERS}
    )
