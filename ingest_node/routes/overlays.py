"""On-stream overlays for OBS's browser source: the alert box page and its WebSocket feed.

A channel's overlay URL carries a secret key issued by an admin (`POST /api/v1/channels/{id}/overlay-key`,
shown once, kept as a SHA-256 hash, compared in constant time); without it neither the page nor the
feed answers. The feed sends alerts in commit order; a client resumes after the last event it showed,
so a reconnect never replays and never skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.audit import audit
from ingest_node.deps import AdminDep, SessionDep
from ingest_node.models import Channel, utcnow
from ingest_node.money import alert_settings, alerts
from ingest_node.money.models import OverlayKey

router = APIRouter(tags=["overlays"])
PAGE = (Path(__file__).resolve().parent.parent / "money" / "alert_box.html").read_text(encoding="utf-8")
POLL_SECONDS = 1.0


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_ok(sessions: sessionmaker[Session], channel_id: str, key: str) -> bool:
    with sessions() as session:
        stored = session.get(OverlayKey, channel_id)
        expected = stored.key_hash if stored is not None else "0" * 64
        # Compare even when the channel has no key, so timing says nothing about which channels exist.
        return hmac.compare_digest(_hash(key).encode(), expected.encode()) and stored is not None


@router.post("/api/v1/channels/{channel_id}/overlay-key", status_code=status.HTTP_201_CREATED)
def issue_overlay_key(
    channel_id: str, request: Request, session: SessionDep, actor: AdminDep
) -> dict[str, str]:
    """A new secret overlay key (the old one stops working); shown only in this answer."""
    key = secrets.token_urlsafe(32)
    with session.begin():
        if session.get(Channel, channel_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
        stored = session.get(OverlayKey, channel_id)
        if stored is None:
            session.add(OverlayKey(channel_id=channel_id, key_hash=_hash(key)))
        else:
            stored.key_hash, stored.created_at = _hash(key), utcnow()
        audit(session, actor=actor, action="overlay.key_issued", entity=f"channel:{channel_id}")
    base = str(request.base_url).rstrip("/")
    return {
        "channel_id": channel_id,
        "key": key,
        "alerts_url": f"{base}/overlays/{channel_id}/alerts?key={key}",
    }


@router.get("/overlays/{channel_id}/alerts", response_class=HTMLResponse)
def alert_box(channel_id: str, request: Request, key: str = "") -> HTMLResponse:
    if not key_ok(request.app.state.sessions, channel_id, key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "overlay key missing or wrong")
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.websocket("/ws/overlays/{channel_id}")
async def alert_feed(websocket: WebSocket, channel_id: str, key: str = "") -> None:
    sessions: sessionmaker[Session] = websocket.app.state.sessions
    hub: alerts.AlertHub = websocket.app.state.alert_hub
    if not await run_in_threadpool(key_ok, sessions, channel_id, key):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="overlay key missing or wrong")
        return
    await websocket.accept()
    try:
        hello: Any = await websocket.receive_json()
    except (WebSocketDisconnect, ValueError):
        return
    after = hello.get("after") if isinstance(hello, dict) else None
    after = after if isinstance(after, str) and len(after) <= 64 else None
    cursor = await run_in_threadpool(_cursor, sessions, channel_id, after)
    waiter = hub.subscribe()
    closed = asyncio.Event()

    async def reader() -> None:  # notices the client leaving even while no alert comes
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            closed.set()

    reading = asyncio.create_task(reader())
    try:
        await websocket.send_json({"type": "ready"})
        while not closed.is_set():
            waiter[1].clear()
            for seq, body in await run_in_threadpool(_after, sessions, channel_id, cursor):
                if body is not None:  # None: below the streamer's minimum or a disabled alert type
                    await websocket.send_text(body)
                cursor = seq
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter[1].wait(), timeout=POLL_SECONDS)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the overlay went away; it resumes from its last shown alert when it reconnects
    finally:
        hub.unsubscribe(waiter)
        reading.cancel()


def _cursor(sessions: sessionmaker[Session], channel_id: str, after: str | None) -> int:
    with sessions() as session:
        return alerts.cursor_after(session, channel_id, after)


def _after(sessions: sessionmaker[Session], channel_id: str, seq: int) -> list[tuple[int, str | None]]:
    """The next alerts, each shaped by the channel's current alert settings (None: not shown)."""
    with sessions() as session:
        rows = alerts.alerts_after(session, channel_id, seq)
        if not rows:
            return []
        settings = alert_settings.load(session, channel_id)
        automod = alert_settings.channel_automod(session, channel_id)
        return [(s, alert_settings.decorate(body, settings, automod)) for s, body in rows]
