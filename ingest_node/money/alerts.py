"""The overlay alert feed: alertable events are persisted per channel in the transaction that made them,
and waiting overlay sockets are woken right after that transaction commits.

A session hook watches outbox rows as they are flushed, so every path that emits an alertable event
(donations, gifts, subscriptions) feeds the alert box without knowing about it. `overlay_alerts.seq`
orders each channel's alerts; a reconnecting overlay sends the last event id it showed and gets only
later ones. Sockets also poll every second, so alerts committed by another node sharing the database
arrive too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.models import OutboxRow
from ingest_node.money.models import OverlayAlert

ALERT_TYPES = frozenset({"donation.processed", "gift.sent", "subscription.created", "subscription.gifted"})
_FLAG = "efir_overlay_alerts"


class AlertHub:
    """Wakes the overlay sockets of this process; safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)


def frame(envelope: dict[str, Any]) -> str:
    """What the overlay receives for one alert (also what is stored)."""
    keep = ("event_id", "event_type", "channel_id", "occurred_at", "payload")
    return json.dumps({"type": "alert", **{k: envelope[k] for k in keep}}, separators=(",", ":"))


def install_alert_feed(sessions: sessionmaker[Session], hub: AlertHub) -> AlertHub:
    """Hook the node's sessions: outbox rows of alertable events get an alert row in the same flush."""

    def collect(session: Session, _context: Any, _instances: Any) -> None:
        for obj in list(session.new):
            if not isinstance(obj, OutboxRow):
                continue
            envelope = json.loads(obj.value)
            if envelope["event_type"] not in ALERT_TYPES:
                continue
            session.add(
                OverlayAlert(
                    event_id=envelope["event_id"],
                    channel_id=envelope["channel_id"],
                    event_type=envelope["event_type"],
                    body=frame(envelope),
                )
            )
            session.info[_FLAG] = True

    def committed(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            hub.notify()

    def rolled_back(session: Session) -> None:
        session.info.pop(_FLAG, None)

    sa.event.listen(sessions, "before_flush", collect)
    sa.event.listen(sessions, "after_commit", committed)
    sa.event.listen(sessions, "after_rollback", rolled_back)
    return hub


def cursor_after(session: Session, channel_id: str, event_id: str | None) -> int:
    """The seq to resume after: the given event's, or the channel's latest (a fresh overlay shows only
    what happens from now on, never the channel's history)."""
    if event_id:
        seq = session.execute(
            sa.select(OverlayAlert.seq).where(
                OverlayAlert.event_id == event_id, OverlayAlert.channel_id == channel_id
            )
        ).scalar_one_or_none()
        if seq is not None:
            return int(seq)
    latest = session.execute(
        sa.select(sa.func.max(OverlayAlert.seq)).where(OverlayAlert.channel_id == channel_id)
    ).scalar_one_or_none()
    return int(latest or 0)


def alerts_after(session: Session, channel_id: str, seq: int, limit: int = 200) -> list[tuple[int, str]]:
    rows = session.execute(
        sa.select(OverlayAlert.seq, OverlayAlert.body)
        .where(OverlayAlert.channel_id == channel_id, OverlayAlert.seq > seq)
        .order_by(OverlayAlert.seq)
        .limit(limit)
    ).all()
    return [(int(s), str(b)) for s, b in rows]
