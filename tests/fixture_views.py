"""View heartbeats, chat messages and subscription events for hand-built lakes (land them with
`tests.fixture_lake.land(..., topic=...)`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.events import (
    ChatMessagePosted,
    Envelope,
    StreamEnded,
    StreamStarted,
    SubscriptionCreated,
    ViewHeartbeat,
)
from services.ids import new_id


def beat(
    channel_id: str,
    session_id: str,
    start: datetime,
    end: datetime,
    *,
    user_id: str | None = None,
    segments: int = 3,
    bytes_: int = 300_000,
    user_agent_class: str = "browser",
    ip_hash: str | None = None,
    rendition: str = "720p",
    region: str | None = "RU",
) -> Envelope:
    """One heartbeat of a session's window [start, end], emitted a few seconds after the window closed."""
    payload = ViewHeartbeat(
        session_id=session_id,
        rendition=rendition,
        bytes=bytes_,
        requests=segments + 1,
        segments=segments,
        user_agent_class=user_agent_class,
        region=region,
        window_start=start,
        window_end=end,
        ip_hash=ip_hash,
    )
    return Envelope.wrap(
        payload,
        channel_id=channel_id,
        node_id="node-test",
        user_id=user_id,
        occurred_at=end + timedelta(seconds=5),
    )


def chat(
    channel_id: str, user_id: str | None, at: datetime, *, status: str = "visible", kind: str = "chat"
) -> Envelope:
    payload = ChatMessagePosted(
        message_id=new_id(), display_name=user_id or "anon", text="hi", status=status, kind=kind
    )
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", user_id=user_id, occurred_at=at)


def subscribed(channel_id: str, user_id: str, at: datetime) -> Envelope:
    payload = SubscriptionCreated(
        subscription_id=new_id(), subscriber_id=user_id, tier="tier1", amount_minor=29_900, period_end=at
    )
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", user_id=user_id, occurred_at=at)


def by(user_id: str, env: Envelope) -> Envelope:
    """The same event, made by a signed-in user (the donation fixtures leave user_id empty)."""
    return env.model_copy(update={"user_id": user_id})


def stream(
    channel_id: str, broadcast_id: str, at: datetime, *, ended: bool = False, game: str = ""
) -> Envelope:
    """A broadcast starting (or ending) at `at`, playing `game` (a slug; "" for none)."""
    payload = (StreamEnded if ended else StreamStarted)(
        broadcast_id=broadcast_id, renditions="720p", game=game
    )
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", occurred_at=at)
