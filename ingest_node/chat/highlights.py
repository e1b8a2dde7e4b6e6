"""Donation and subscription messages, highlighted in chat, made from the money events on the bus.

Why from the bus and not a call in the money code: every node's chat fan-out already reads the broker
with its own group-less consumer, so each node sees every `donation.processed` and
`subscription.created/renewed/gifted` once and shows it on its own sockets only; nothing is shown twice
and the money code stays untouched. The history row is written by whichever node gets there first: its
message id is derived from the event id (uuid5), so the others' inserts are no-ops (unique key) and
only the winner emits the `chat.message` (kind `donation`/`subscription`) that lands in the lake; the
fan-out ignores those chat events, since every node already showed the original.
A node that is down when the event passes does not show it live; its history row exists if any node
was up. Donations without a message are not shown (the alert box has them).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ingest_node.chat.hub import Frame
from ingest_node.chat.models import ChatMessage, MessageStatus
from ingest_node.chat.pins import clean_paid_text
from ingest_node.chat.service import ChatService, MessageKind, message_frame
from services.events import ChatMessagePosted, Envelope

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d2c8e-1b7a-4c1e-9a3b-0c2f5e7d9a41")
SUBSCRIPTION_EVENTS = ("subscription.created", "subscription.renewed", "subscription.gifted")
SOURCE_EVENTS = frozenset({"donation.processed", *SUBSCRIPTION_EVENTS})
SYSTEM_USER = "system"


@dataclass(frozen=True)
class Highlight:
    kind: str
    user_id: str
    display_name: str
    text: str
    meta: dict[str, Any]


def highlight_of(
    env: Envelope, max_chars: int, name_of: Callable[[str], str | None] = lambda _: None
) -> Highlight | None:
    """The highlighted chat message a money event makes, or None (not one of ours, no message).

    `name_of` maps a user id to the display name they chat under (subscription events carry ids only)."""
    p = env.payload
    if env.event_type == "donation.processed":
        text = clean_paid_text(str(p.get("message") or ""), max_chars)
        if not text:
            return None
        name = clean_paid_text(str(p.get("donor_name") or ""), 64) or "Anonymous"
        meta = {
            "event": env.event_type,
            "donation_id": p["donation_id"],
            "amount_minor": p["amount_minor"],
            "currency": p["currency"],
        }
        return Highlight(MessageKind.DONATION, env.user_id or SYSTEM_USER, name, text, meta)
    if env.event_type in SUBSCRIPTION_EVENTS:
        subscriber = str(p["subscriber_id"])
        name = (name_of(subscriber) or subscriber)[:64]
        tier, streak, giver = p.get("tier", ""), int(p.get("streak_months") or 0), p.get("gifted_by")
        if env.event_type == "subscription.created":
            text = f"{name} subscribed ({tier})"
        elif env.event_type == "subscription.renewed":
            text = f"{name} renewed their {tier} subscription: {streak} months in a row"
        else:
            giver_name = (name_of(giver) or giver) if giver else "Someone"
            text = f"{giver_name} gifted a {tier} subscription to {name}"
        meta = {"event": env.event_type, "tier": tier, "streak_months": streak, "gifted_by": giver}
        return Highlight(MessageKind.SUBSCRIPTION, subscriber[:128], name, text, meta)
    return None


def message_id_for(event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, event_id))


def record_highlight(chat: ChatService, env: Envelope) -> Frame | None:
    """Store the highlight once across nodes (idempotent by the source event) and return its frame."""

    def name_of(user_id: str) -> str | None:
        with chat.sessions() as session:
            return session.execute(
                sa.select(ChatMessage.display_name)
                .where(
                    ChatMessage.channel_id == env.channel_id,
                    ChatMessage.user_id == user_id,
                    ChatMessage.kind.in_([MessageKind.CHAT, MessageKind.STICKER]),
                )
                .order_by(ChatMessage.id.desc())
                .limit(1)
            ).scalar()

    if env.event_type not in SOURCE_EVENTS:
        return None
    found = highlight_of(env, chat.settings.chat_max_message_chars, name_of)
    if found is None:
        return None
    message_id = message_id_for(env.event_id)
    try:
        with chat.sessions() as session, session.begin():
            exists = session.execute(
                sa.select(ChatMessage.id).where(ChatMessage.message_id == message_id)
            ).scalar()
            if exists is None:
                msg = ChatMessage(
                    message_id=message_id,
                    channel_id=env.channel_id,
                    user_id=found.user_id,
                    display_name=found.display_name,
                    text=found.text,
                    status=MessageStatus.VISIBLE,
                    kind=found.kind,
                    meta=json.dumps(found.meta, ensure_ascii=False),
                    created_at=env.occurred_at,
                )
                session.add(msg)
                payload = ChatMessagePosted(
                    message_id=message_id,
                    display_name=found.display_name,
                    text=found.text,
                    status=MessageStatus.VISIBLE,
                    kind=found.kind,
                )
                chat._emit(session, payload, env.channel_id, found.user_id)
    except IntegrityError:
        pass  # another node stored it first: same id, same content
    with chat.sessions() as session:
        row = session.execute(sa.select(ChatMessage).where(ChatMessage.message_id == message_id)).scalar()
        if row is None:  # the channel is unknown here, say: nothing to show
            log.warning("chat highlight of %s not stored", env.event_type)
            return None
        return message_frame(row, "")
