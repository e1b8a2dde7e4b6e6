"""On-stream widgets for OBS's browser source: the goal bar, the top-donors list and the request queue.

Opened like the alert box, with the channel's secret overlay key (`?key=`, checked in constant time;
without it neither page nor socket answers). Each page listens on `/ws/overlays/{id}/widgets/{widget}`,
which sends the widget's whole state on connect and again whenever it changed: woken by the same
hub as the alert box (right after a commit on this node) and polling every second (other nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.money import widgets
from ingest_node.money.alerts import AlertHub
from ingest_node.routes.overlays import POLL_SECONDS, key_ok
from services.money import Currency

router = APIRouter(tags=["overlays"])
PAGE = (Path(__file__).resolve().parent.parent / "money" / "widgets.html").read_text(encoding="utf-8")


def _widget(name: str) -> widgets.Widget:
    try:
        return widgets.Widget(name)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no widget {name!r}") from None


@router.get("/overlays/{channel_id}/{widget}", response_class=HTMLResponse)
def widget_page(channel_id: str, widget: str, request: Request, key: str = "") -> HTMLResponse:
    _widget(widget)
    if not key_ok(request.app.state.sessions, channel_id, key):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "overlay key missing or wrong")
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _state(
    sessions: sessionmaker[Session],
    channel_id: str,
    widget: widgets.Widget,
    period: widgets.Period,
    currency: Currency,
) -> dict[str, Any]:
    with sessions() as session:
        return widgets.state(session, channel_id, widget, period, currency)


@router.websocket("/ws/overlays/{channel_id}/widgets/{widget}")
async def widget_feed(
    websocket: WebSocket,
    channel_id: str,
    widget: str,
    key: str = "",
    period: str = "stream",
    currency: str = "RUB",
) -> None:
    sessions: sessionmaker[Session] = websocket.app.state.sessions
    hub: AlertHub = websocket.app.state.alert_hub
    try:
        kind, span, money = widgets.Widget(widget), widgets.Period(period), Currency(currency)
    except ValueError:
        await websocket.close(
            code=status.WS_1008_POLICY_VIOLATION, reason="unknown widget, period or currency"
        )
        return
    if not await run_in_threadpool(key_ok, sessions, channel_id, key):
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="overlay key missing or wrong")
        return
    await websocket.accept()
    waiter = hub.subscribe()
    closed = asyncio.Event()

    async def reader() -> None:  # notices the client leaving even while nothing changes
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            closed.set()

    reading = asyncio.create_task(reader())
    last = None
    try:
        while not closed.is_set():
            waiter[1].clear()
            current = await run_in_threadpool(_state, sessions, channel_id, kind, span, money)
            text = json.dumps({"type": "state", "widget": kind.value, "state": current}, ensure_ascii=False)
            if text != last:
                await websocket.send_text(text)
                last = text
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter[1].wait(), timeout=POLL_SECONDS)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the overlay went away; on reconnect it gets the current state
    finally:
        hub.unsubscribe(waiter)
        reading.cancel()
