"""Chat endpoints: the WebSocket per channel, moderation over HTTP, token issuing, the chat page.

Users prove who they are with a chat token (`?token=` on the socket, `Authorization: Bearer` on HTTP);
what they may do comes from the node's database, never from what they send.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from ingest_node.audit import audit
from ingest_node.chat.hub import Connection
from ingest_node.chat.models import ChatRole
from ingest_node.chat.pins import active_pins
from ingest_node.chat.service import (
    CLOSE_BANNED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNKNOWN_CHANNEL,
    ChatRefused,
    ChatService,
    modes_of,
    parse_frame,
)
from ingest_node.deps import AdminDep, SessionDep, SettingsDep
from ingest_node.models import Channel
from ingest_node.money.donation_rules import fingerprint
from ingest_node.money.edge_guard import client_ip
from services.chat import emotes
from services.chat.automod import AutoModConfig
from services.chat.commands import CommandError, is_command, parse
from services.chat.messages import MAX_FRAME_BYTES, MessageRejected, decode_frame, sanitise
from services.chat.roles import Role
from services.chat.tokens import HmacTokens, TokenError, UserClaims

router = APIRouter(tags=["chat"])
STATIC = Path(__file__).resolve().parent.parent / "chat" / "static"
PAGE = (STATIC / "chat.html").read_text(encoding="utf-8")
EMOTE_FILE = re.compile(r"^[a-z0-9_\-]{1,64}\.(svg|png|webp|gif)$")
USER_ID = re.compile(r"^[\w.\-]{1,64}$")


def chat_of(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat
    return service


ChatDep = Annotated[ChatService, Depends(chat_of)]
_bearer = HTTPBearer(auto_error=False)


def chat_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> UserClaims:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "chat token missing", {"WWW-Authenticate": "Bearer"}
        )
    try:
        claims: UserClaims = request.app.state.chat_tokens.verify(credentials.credentials)
    except TokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, exc.reason, {"WWW-Authenticate": "Bearer"}
        ) from None
    return claims


UserDep = Annotated[UserClaims, Depends(chat_user)]


def _refused(exc: ChatRefused) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "code": exc.code, **exc.extra}, status_code=exc.status)


# ---- tokens and roles (admin) ------------------------------------------------------------------------


class TokenIn(BaseModel):
    user_id: str = Field(pattern=USER_ID.pattern)
    display_name: str = Field(min_length=1, max_length=32)
    ttl_seconds: int | None = Field(None, ge=1, le=30 * 24 * 3600)

    @field_validator("display_name")
    @classmethod
    def _clean(cls, value: str) -> str:
        return sanitise(value, 32) if value.strip() else value


@router.post("/api/v1/chat/tokens", status_code=status.HTTP_201_CREATED)
def issue_token(body: TokenIn, request: Request, settings: SettingsDep, actor: AdminDep) -> dict[str, Any]:
    """For tests and demos; in production the platform's identity service signs tokens."""
    tokens: HmacTokens = request.app.state.chat_tokens
    token, claims = tokens.issue(
        body.user_id, body.display_name, body.ttl_seconds or settings.chat_token_ttl_seconds
    )
    return {
        "token": token,
        "user_id": claims.user_id,
        "display_name": claims.display_name,
        "expires_at": claims.expires_at,
    }


class RoleIn(BaseModel):
    role: Role
    sub_tier: int = Field(0, ge=0, le=3)


@router.put("/api/v1/chat/{channel_id}/roles/{user_id}")
def set_role(
    channel_id: str, user_id: str, body: RoleIn, session: SessionDep, actor: AdminDep
) -> dict[str, Any]:
    if body.role is Role.ANONYMOUS or not USER_ID.match(user_id):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY, "a role needs a user id and a signed-in role"
        )
    with session.begin():
        if session.get(Channel, channel_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
        row = session.get(ChatRole, (channel_id, user_id))
        before = row.role if row else None
        if row is None:
            row = ChatRole(channel_id=channel_id, user_id=user_id, role=body.role, sub_tier=body.sub_tier)
            session.add(row)
        row.role, row.sub_tier = body.role, body.sub_tier
        audit(
            session,
            actor=actor,
            action="chat.role",
            entity=f"chat:{channel_id}:{user_id}"[:128],
            status_before=before,
            status_after=str(body.role),
        )
    return {"channel_id": channel_id, "user_id": user_id, "role": body.role, "sub_tier": body.sub_tier}


# ---- moderation over HTTP ----------------------------------------------------------------------------


class CommandIn(BaseModel):
    command: str = Field(min_length=2, max_length=300, examples=["/timeout bob 600 spam"])


@router.post("/api/v1/chat/{channel_id}/commands")
async def run_command(channel_id: str, body: CommandIn, chat: ChatDep, user: UserDep) -> Any:
    try:
        return await chat.command(channel_id, user, parse(body.command))
    except CommandError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    except ChatRefused as exc:
        return _refused(exc)


@router.get("/api/v1/chat/{channel_id}/held")
def held_messages(channel_id: str, chat: ChatDep, user: UserDep) -> Any:
    try:
        return chat.held(channel_id, user)
    except ChatRefused as exc:
        return _refused(exc)


@router.post("/api/v1/chat/{channel_id}/held/{message_id}/{decision}")
async def review_held(channel_id: str, message_id: str, decision: str, chat: ChatDep, user: UserDep) -> Any:
    if decision not in ("approve", "reject"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "use .../approve or .../reject")
    try:
        return await chat.review(channel_id, user, message_id, decision == "approve")
    except ChatRefused as exc:
        return _refused(exc)


@router.put("/api/v1/chat/{channel_id}/automod")
def configure_automod(channel_id: str, body: AutoModConfig, chat: ChatDep, user: UserDep) -> Any:
    try:
        chat.configure_automod(channel_id, user, body)
    except ChatRefused as exc:
        return _refused(exc)
    return body


# ---- emotes, stickers and pins ---------------------------------------------------------------------


class EmoteIn(BaseModel):
    url: str = Field(max_length=emotes.MAX_URL_CHARS, examples=["https://cdn.example/emotes/pog.png"])
    min_tier: int = Field(0, ge=0, le=emotes.MAX_TIER, description="0 everyone, 1..3 subscribers")


@router.get("/api/v1/chat/{channel_id}/emotes")
def catalogue(channel_id: str, chat: ChatDep) -> Any:
    """Public: the global and channel emotes and stickers (clients need no other catalogue)."""
    try:
        return chat.channel_catalogue(channel_id).public()
    except ChatRefused as exc:
        return _refused(exc)


def _content_call(call: Any) -> Any:
    try:
        return call()
    except emotes.ContentError as exc:
        return JSONResponse({"detail": exc.detail, "code": exc.code, **exc.extra}, status_code=exc.status)
    except ChatRefused as exc:
        return _refused(exc)


def _emote_routes(collection: str, kind: emotes.Kind) -> None:
    """PUT/DELETE `/api/v1/chat/{channel}/emotes/{code}` and `.../stickers/{code}` (the owner only)."""

    @router.put(f"/api/v1/chat/{{channel_id}}/{collection}/{{code}}", name=f"set_{kind}")
    def put(channel_id: str, code: str, body: EmoteIn, chat: ChatDep, user: UserDep) -> Any:
        return _content_call(lambda: chat.set_emote(channel_id, user, kind, code, body.url, body.min_tier))

    @router.delete(f"/api/v1/chat/{{channel_id}}/{collection}/{{code}}", name=f"delete_{kind}")
    def delete(channel_id: str, code: str, chat: ChatDep, user: UserDep) -> Any:
        answer = _content_call(lambda: chat.delete_emote(channel_id, user, kind, code))
        return answer if answer is not None else Response(status_code=status.HTTP_204_NO_CONTENT)


_emote_routes("emotes", emotes.Kind.EMOTE)
_emote_routes("stickers", emotes.Kind.STICKER)


@router.get("/api/v1/chat/{channel_id}/pins")
def pins(channel_id: str, session: SessionDep) -> Any:
    """Public: the boosted messages pinned now (overlays poll this; sockets get them pushed)."""
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    return {"channel_id": channel_id, "pins": [p.frame() for p in active_pins(session, channel_id)]}


@router.get("/chat/emotes/{name}", include_in_schema=False)
def emote_image(name: str) -> FileResponse:
    """The global emote images; names are checked so nothing outside the folder is ever served."""
    if not EMOTE_FILE.match(name) or not (STATIC / "emotes" / name).is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such emote image")
    return FileResponse(STATIC / "emotes" / name, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/api/v1/chat/{channel_id}/messages")
def history(channel_id: str, chat: ChatDep) -> Any:
    try:
        ctx, frames = chat.join_state(channel_id, None)
    except ChatRefused as exc:
        return _refused(exc)
    return {"channel_id": channel_id, "modes": modes_of(ctx.settings), "messages": frames}


# ---- the page and the socket ---------------------------------------------------------------------------


@router.get("/chat/{channel_id}", response_class=HTMLResponse, include_in_schema=False)
def chat_page(channel_id: str) -> HTMLResponse:
    """Static page; the channel id reaches the script through the URL, never through this HTML."""
    return HTMLResponse(
        PAGE,
        headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' https:"
        },
    )


@router.websocket("/ws/chat/{channel_id}")
async def chat_socket(websocket: WebSocket, channel_id: str) -> None:
    chat: ChatService = websocket.app.state.chat
    await websocket.accept()
    claims: UserClaims | None = None
    token = websocket.query_params.get("token")
    if token:
        try:
            claims = websocket.app.state.chat_tokens.verify(token)
        except TokenError as exc:
            await websocket.send_json({"type": "error", "code": "unauthorized", "detail": exc.reason})
            await websocket.close(CLOSE_UNAUTHORIZED, exc.reason)
            return
    settings = chat.settings
    peer = websocket.client.host if websocket.client else None
    ip_hash = fingerprint(client_ip(peer, websocket.headers.get("x-forwarded-for"), settings), settings)
    try:
        ctx, history_frames = await asyncio.to_thread(
            chat.join_state, channel_id, claims.user_id if claims else None, ip_hash
        )
    except ChatRefused as exc:
        await websocket.send_json(exc.frame())
        await websocket.close(CLOSE_UNKNOWN_CHANNEL, exc.detail[:120])
        return
    if ctx.restriction is not None and ctx.restriction.kind == "ban":
        await websocket.send_json(
            {
                "type": "moderation",
                "action": "ban",
                "reason": ctx.restriction.reason,
                "detail": "you are banned from this chat",
            }
        )
        await websocket.close(CLOSE_BANNED, "banned from this chat")
        return
    friends = await chat.friends.friends_of(claims.user_id) if claims else frozenset()
    conn = chat.hub.connection(websocket, channel_id, claims)
    conn.extra["role"] = ctx.role
    conn.extra["ip_hash"] = ip_hash
    conn.extra["friends"] = friends
    conn.send(
        {
            "type": "hello",
            "channel_id": channel_id,
            "role": str(ctx.role),
            "tier": ctx.tier,
            "modes": modes_of(ctx.settings),
            "user": {"id": claims.user_id, "name": claims.display_name} if claims else None,
            "address_blocked": ctx.address_blocked,  # may read, may not write (an /ipban)
        }
    )
    for frame in history_frames:
        frame["friend"] = frame["user_id"] in friends
    conn.send({"type": "history", "messages": history_frames})
    conn.send({"type": "pins", "pins": ctx.pins})
    chat.hub.join(conn)
    try:
        await _read_loop(chat, conn)
    finally:
        chat.hub.leave(conn)


async def _read_loop(chat: ChatService, conn: Connection) -> None:
    ws = conn.ws
    while not conn.closing:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("bytes") is not None:
                raw = decode_frame(message["bytes"])
            else:
                raw = message.get("text") or ""
                if len(raw) > MAX_FRAME_BYTES or len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
                    raise MessageRejected("too_large", f"frame over {MAX_FRAME_BYTES} bytes")
            frame = parse_frame(raw)
            if frame["type"] == "ping":
                conn.send({"type": "pong"})
                continue
            if frame["type"] == "sticker":
                await chat.post(conn, "", sticker=frame["sticker"][:64])
                continue
            text = sanitise(frame["text"], chat.settings.chat_max_message_chars)
            if is_command(text):
                if conn.claims is None:
                    raise ChatRefused("sign_in_required", "sign in to use commands", 401)
                result = await chat.command(conn.channel_id, conn.claims, parse(text))
                conn.send({"type": "command_ok", **result})
            else:
                await chat.post(conn, text)
        except MessageRejected as exc:
            conn.send({"type": "error", "code": exc.code, "detail": exc.detail})
        except CommandError as exc:
            conn.send({"type": "error", "code": "bad_command", "detail": str(exc)})
        except ChatRefused as exc:
            conn.send(exc.frame())
