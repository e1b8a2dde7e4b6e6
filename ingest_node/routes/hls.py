"""HLS delivery: master and media playlists and segments of live channels, ready to sit behind a CDN.

- MIME types: playlists `application/vnd.apple.mpegurl`, segments `video/mp2t` (TS) or `video/mp4`
  (fMP4 init and media segments).
- Cache-Control: media playlists `max-age=1` (they change every segment); the master playlist is
  `private, max-age=1` because it carries the viewer's session id; segments never change once written,
  so `public, max-age=31536000, immutable`. A segment not written yet is a 404 with `no-store`.
- CORS: any origin may GET (web players on other sites); preflights are answered.
- Paths: channel, rendition and file names must match strict patterns and resolve inside the HLS root,
  so `..`, encoded slashes or absolute paths are refused with 400.
- Viewer sessions: the master playlist creates one (cookie `efir_session` and `?session=` appended to
  every URI inside the playlists served), so players that drop cookies keep it too; every request adds
  its bytes to the in-memory heartbeat aggregator, never to the database.
- Viewer identity: a signed-in viewer opens the master playlist with their chat token (`?token=` or
  `Authorization: Bearer`); it is verified there, once, and the session is bound to the user id, so the
  session's heartbeats carry it while media playlists and segments need only the session id. A forged
  or expired token leaves the session anonymous (playback goes on) and logs why, never the token; the
  token is never echoed into the playlists served.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from ingest_node.deps import SettingsDep
from ingest_node.ingest.viewers import SESSION_PATTERN, SessionIdentities, ViewerAggregator
from ingest_node.media.thumbnails import THUMBNAIL_NAME
from ingest_node.money.donation_rules import fingerprint
from ingest_node.money.edge_guard import client_ip
from ingest_node.schemas import CHANNEL_ID_PATTERN
from services.chat.tokens import TokenError, TokenVerifier
from services.ids import new_id
from services.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/live", tags=["hls"])

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPES = {".ts": "video/mp2t", ".m4s": "video/mp4", ".mp4": "video/mp4", ".aac": "audio/aac"}
PLAYLIST_CACHE = "max-age=1"
MASTER_CACHE = "private, max-age=1"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
SESSION_COOKIE = "efir_session"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Type",
}
RENDITION_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
FILE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(m3u8|ts|m4s|mp4|aac)$")
URI_ATTR = re.compile(r'URI="([^"]*)"')

ChannelId = Annotated[str, Path(pattern=CHANNEL_ID_PATTERN)]
Rendition = Annotated[str, Path(pattern=RENDITION_PATTERN)]
SessionParam = Annotated[str | None, Query(alias="session", max_length=64)]


def _file(settings: Settings, *parts: str) -> FsPath:
    """The file behind a URL, refusing anything that would leave the channel's folder."""
    root = settings.hls_root.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "path outside the HLS folder")
    return path


def _session(request: Request, given: str | None) -> tuple[str, bool]:
    """(session id, whether it is new). A malformed `?session=` is a 400; a malformed cookie is replaced."""
    if given is not None:
        if not SESSION_PATTERN.fullmatch(given):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "malformed session id (8-64 letters, digits, '-')"
            )
        return given, False
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and SESSION_PATTERN.fullmatch(cookie):
        return cookie, False
    return new_id(), True


def _with_session(uri: str, session_id: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}session={session_id}"


def rewrite_playlist(text: str, session_id: str) -> str:
    """Append the session to every URI of a playlist (variant and segment lines, URI="" attributes)."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append(line)
        elif stripped.startswith("#"):
            out.append(URI_ATTR.sub(lambda m: f'URI="{_with_session(m.group(1), session_id)}"', line))
        else:
            out.append(_with_session(stripped, session_id))
    return "\n".join(out) + "\n"


def _viewers(request: Request) -> ViewerAggregator | None:
    ingest = getattr(request.app.state, "ingest", None)
    return ingest.viewers if ingest is not None else None


def _viewer_token(request: Request) -> str | None:
    """The chat token a signed-in viewer opened the master playlist with: `?token=` or a bearer header."""
    token = request.query_params.get("token")
    if not token:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
    return token or None


def identify(
    verifier: TokenVerifier,
    identities: SessionIdentities,
    channel_id: str,
    session_id: str,
    new: bool,
    token: str,
) -> tuple[str, bool]:
    """Bind the session to the token's user; returns the (possibly new) session id and whether it is new.

    A session already bound to someone else, or presented with a bad token, is replaced by a fresh
    anonymous one: a session id seen in a URL never lets a second person watch as, or spoil, the first.
    """
    bound = identities.user_of(channel_id, session_id)
    try:
        claims = verifier.verify(token)
    except TokenError as exc:
        # The reason only: the token itself is a credential and never reaches a log.
        log.warning(
            "viewer token refused on channel %s (%s): the session watches anonymously", channel_id, exc.reason
        )
        return (new_id(), True) if bound is not None else (session_id, new)
    if bound is not None and bound != claims.user_id:
        session_id, new = new_id(), True
    identities.bind(channel_id, session_id, claims.user_id)
    return session_id, new


def _record(
    request: Request,
    settings: Settings,
    channel_id: str,
    session_id: str,
    rendition: str,
    size: int,
    segment: bool,
) -> None:
    viewers = _viewers(request)
    if viewers is not None:
        peer = request.client.host if request.client else None
        viewers.record(
            channel_id=channel_id,
            session_id=session_id,
            rendition=rendition,
            size=size,
            segment=segment,
            user_agent=request.headers.get("user-agent"),
            region=request.headers.get(settings.view_region_header) if settings.view_region_header else None,
            # Loyalty's anti-farming rule counts sessions per address; only the fingerprint leaves the node.
            ip_hash=fingerprint(client_ip(peer, request.headers.get("x-forwarded-for"), settings), settings),
        )


def _read(path: FsPath, what: str) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{what} not found",
            headers={"Cache-Control": "no-store", **CORS_HEADERS},
        ) from None


def _playlist_response(
    body: str, cache: str, session_id: str, new_session: bool, channel_id: str
) -> Response:
    response = Response(body, media_type=PLAYLIST_TYPE, headers={"Cache-Control": cache, **CORS_HEADERS})
    if new_session:
        response.set_cookie(
            SESSION_COOKIE, session_id, path=f"/live/{channel_id}", samesite="lax", httponly=True
        )
    return response


@router.get("/{channel_id}/thumbnail.jpg")
def thumbnail(channel_id: ChannelId, settings: SettingsDep) -> Response:
    """The live channel's latest thumbnail (refreshed every EFIR_THUMBNAIL_SECONDS by its worker)."""
    data = _read(_file(settings, channel_id, THUMBNAIL_NAME), f"thumbnail of channel {channel_id!r}")
    cache = f"public, max-age={max(1, min(10, int(settings.thumbnail_seconds // 2)))}"
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": cache, **CORS_HEADERS})


@router.get("/{channel_id}/master.m3u8")
def master_playlist(
    channel_id: ChannelId, request: Request, settings: SettingsDep, session: SessionParam = None
) -> Response:
    session_id, new = _session(request, session)
    raw = _read(_file(settings, channel_id, "master.m3u8"), f"channel {channel_id!r} is not live;")
    token, viewers = _viewer_token(request), _viewers(request)
    verifier: TokenVerifier | None = getattr(request.app.state, "chat_tokens", None)
    if token is not None and viewers is not None and verifier is not None:
        session_id, new = identify(verifier, viewers.identities, channel_id, session_id, new, token)
    body = rewrite_playlist(raw.decode("utf-8", errors="replace"), session_id)
    return _playlist_response(body, MASTER_CACHE, session_id, new, channel_id)


@router.get("/{channel_id}/{rendition}/{name}")
def rendition_file(
    channel_id: ChannelId,
    rendition: Rendition,
    name: str,
    request: Request,
    settings: SettingsDep,
    session: SessionParam = None,
) -> Response:
    match = FILE_PATTERN.fullmatch(name)
    if match is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not an HLS file name: {name[:80]!r}")
    session_id, new = _session(request, session)
    path = _file(settings, channel_id, rendition, name)
    if match.group(1) == "m3u8":
        raw = _read(path, f"rendition {rendition!r} of channel {channel_id!r}")
        body = rewrite_playlist(raw.decode("utf-8", errors="replace"), session_id)
        _record(request, settings, channel_id, session_id, rendition, len(body), segment=False)
        return _playlist_response(body, PLAYLIST_CACHE, session_id, new, channel_id)
    data = _read(path, f"segment {name!r}")
    _record(request, settings, channel_id, session_id, rendition, len(data), segment=True)
    media_type = SEGMENT_TYPES[path.suffix]
    return Response(data, media_type=media_type, headers={"Cache-Control": SEGMENT_CACHE, **CORS_HEADERS})


@router.options("/{rest:path}")
def preflight(rest: str) -> Response:
    """CORS preflight (players send one for Range requests)."""
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            **CORS_HEADERS,
            "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            # Authorization: web players may send the viewer's chat token as a bearer header.
            "Access-Control-Allow-Headers": "Range, Origin, Accept, Authorization",
            "Access-Control-Max-Age": "86400",
        },
    )


@router.get("/{rest:path}", include_in_schema=False)
def not_hls(rest: str) -> Response:
    """Anything else under /live (extra path levels, encoded slashes, `..`) is not an HLS file."""
    raise HTTPException(
        status.HTTP_400_BAD_REQUEST,
        "not an HLS path: /live/<channel>/master.m3u8 or /live/<channel>/<rendition>/<file>",
    )
