"""Boosted (paid) messages pinned above a channel's chat for a while.

The money flows call `pin_boosted` in the transaction that settles the payment, so the pin exists if
and only if the money does. Showing it is the chat's job: the pin leaves through the outbox as a
`chat.pinned` event and every node's chat fan-out (the origin node included) pushes a `pinned` frame to
its sockets and an `unpinned` frame when it expires. Sockets that join while it is pinned get it in
their `pins` frame. One path for every node means no node shows a pin twice and none misses it.

A boost whose payment is reversed (refund or chargeback) must not stay on screen for the rest of its
paid time: the money flow calls `unpin_boosted` in the reversal's transaction, which ends the pin now
(`expires_at` = now, so joiners no longer get it) and emits `chat.unpinned`, from which every node's
fan-out sends the same `unpinned` frame an expiry sends, at once.

Idempotent by `event_id` (the payment's idempotency key): a second call with the same key returns the
pin already made and emits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.chat.models import ChatPin
from ingest_node.models import Channel
from ingest_node.outbox import enqueue
from services.chat.messages import strip_invisible
from services.events import ChatPinned, ChatUnpinned, Envelope
from services.ids import new_id
from services.money import Currency
from services.settings import Settings

MAX_PIN_SECONDS = 24 * 3600
_CONTROL = str.maketrans({c: None for c in [*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0)]})


@dataclass(frozen=True)
class Pin:
    pin_id: str
    channel_id: str
    user_id: str | None
    display_name: str
    text: str
    amount_minor: int
    currency: str
    pinned_at: datetime
    expires_at: datetime
    created: bool  # False when `event_id` had already pinned this (an idempotent repeat)

    def frame(self) -> dict[str, Any]:
        """What chat clients receive (`pinned` frames and the `pins` list on join)."""
        return {
            "id": self.pin_id,
            "user_id": self.user_id,
            "name": self.display_name,
            "text": self.text,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "pinned_at": self.pinned_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _pin(row: ChatPin, created: bool) -> Pin:
    return Pin(
        pin_id=row.pin_id,
        channel_id=row.channel_id,
        user_id=row.user_id,
        display_name=row.display_name,
        text=row.text,
        amount_minor=row.amount_minor,
        currency=row.currency,
        pinned_at=row.pinned_at,
        expires_at=row.expires_at,
        created=created,
    )


def clean_paid_text(text: str, limit: int) -> str:
    """Paid text is never refused here (the money has moved): controls and invisibles go, length is cut.
    Screening the words is the purchase flow's job, before it charges."""
    cleaned = strip_invisible(text.replace("\r\n", "\n").translate(_CONTROL)).strip()
    return cleaned[:limit]


def pin_boosted(
    session: Session,
    settings: Settings,
    *,
    channel_id: str,
    user_id: str | None,
    display_name: str,
    text: str,
    amount_minor: int,
    currency: Currency | str,
    seconds: int,
    event_id: str,
) -> Pin:
    """Pin a boosted message for `seconds` from now, in the caller's transaction (no commit here).

    Raises ValueError for an unknown channel, a non-positive amount or a duration outside
    1..86400 s (programming errors of the caller: check them before charging). `text` is cleaned
    and cut to `EFIR_CHAT_MAX_MESSAGE_CHARS`, never refused; an empty `display_name` shows "Anonymous".
    """
    existing = session.execute(sa.select(ChatPin).where(ChatPin.event_id == event_id)).scalar()
    if existing is not None:
        return _pin(existing, created=False)
    if not 1 <= seconds <= MAX_PIN_SECONDS:
        raise ValueError(f"a pin lasts 1 to {MAX_PIN_SECONDS} seconds, not {seconds}")
    if amount_minor <= 0:
        raise ValueError("a boosted message has a positive amount")
    if not event_id or len(event_id) > 64:
        raise ValueError("event_id is the payment's idempotency key: 1 to 64 characters")
    if session.get(Channel, channel_id) is None:
        raise ValueError(f"channel {channel_id!r} does not exist")
    currency = Currency(currency)
    now = datetime.now(UTC)
    row = ChatPin(
        pin_id=new_id(),
        event_id=event_id,
        channel_id=channel_id,
        user_id=user_id,
        display_name=clean_paid_text(display_name, 64) or "Anonymous",
        text=clean_paid_text(text, settings.chat_max_message_chars),
        amount_minor=amount_minor,
        currency=str(currency),
        pinned_at=now,
        expires_at=now + timedelta(seconds=seconds),
    )
    session.add(row)
    payload = ChatPinned(
        pin_id=row.pin_id,
        source_event_id=event_id,
        display_name=row.display_name,
        text=row.text,
        amount_minor=amount_minor,
        currency=currency,
        expires_at=row.expires_at,
    )
    env = Envelope.wrap(
        payload, channel_id=channel_id, node_id=settings.node_id, user_id=user_id, occurred_at=now
    )
    enqueue(session, env)
    return _pin(row, created=True)


def unpin_boosted(session: Session, settings: Settings, *, event_id: str, reason: str) -> Pin | None:
    """Take the pin made for `event_id` down now, in the caller's transaction (no commit here).

    Returns the pin as it was, or None when there is nothing showing to take down (no pin for that
    key, already expired or already unpinned): then nothing is emitted, so a repeat is a no-op.
    `reason` (the reversal's event type) travels on the `chat.unpinned` event."""
    row = session.execute(sa.select(ChatPin).where(ChatPin.event_id == event_id).with_for_update()).scalar()
    now = datetime.now(UTC)
    if row is None or row.expires_at <= now:
        return None
    shown = _pin(row, created=False)
    row.expires_at = now
    payload = ChatUnpinned(pin_id=row.pin_id, source_event_id=event_id, reason=reason[:300])
    env = Envelope.wrap(
        payload, channel_id=row.channel_id, node_id=settings.node_id, user_id=row.user_id, occurred_at=now
    )
    enqueue(session, env)
    return shown


def active_pins(session: Session, channel_id: str, now: datetime | None = None) -> list[Pin]:
    """The channel's pins still showing, oldest first (what a joining socket receives)."""
    now = now or datetime.now(UTC)
    rows = session.execute(
        sa.select(ChatPin)
        .where(ChatPin.channel_id == channel_id, ChatPin.expires_at > now)
        .order_by(ChatPin.pinned_at, ChatPin.pin_id)
    ).scalars()
    return [_pin(r, created=False) for r in rows]


def pin_by_id(session: Session, pin_id: str) -> Pin | None:
    row = session.get(ChatPin, pin_id)
    return _pin(row, created=False) if row is not None else None
