"""Multi-node chat: deliver what OTHER nodes accepted, read from the `chat` topic, to this node's sockets.

Every chat decision already leaves its node as `chat.*` / `moderation.*` events through the outbox
(key = channel id, so one channel stays on one partition, in order). Each node runs one group-less
consumer of `chat` (all partitions assigned, starting at the end: history comes from the database on
join) in a daemon thread and hands the socket effects to the asyncio hub with `call_soon_threadsafe`,
which keeps the partition's order.

Why the origin node is skipped (envelope `node_id` == ours) instead of delivering only from Kafka:
local clients get the decision's exact frames at once (private notices to the sender included), chat on
one node keeps working while the broker is down, and single-node deployments pay no broker round trip.
Order per channel holds for everything one node accepts (its channel lock serialises decisions, the
relay publishes in outbox id order). Two nodes accepting messages of one channel in the same
milliseconds may show those few in a different order on each node; the database (history) and the
topic each keep one order. `node_id` must therefore be unique per node. Events published twice (relay
retries, several relays on one SQLite file) are dropped by event id.

Not skipped on the origin: `chat.pinned` and `chat.unpinned` (every node, its origin included, shows a
pinned boosted message and unpins it when it expires or, at once, when its payment is reversed; see
pins.py), and the money events read from the `donations`
and `subscriptions` topics, which every node turns into highlighted chat messages for its own sockets
(see highlights.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from ingest_node.chat import highlights
from ingest_node.chat.hub import Frame
from ingest_node.chat.models import ChatChannelSettings, ChatMessage, ChatRestriction, ChatRole, MessageStatus
from ingest_node.chat.service import HIGHLIGHTED, ChatService, Effects, message_frame, modes_of
from services import bus
from services.chat.roles import Role, effective_role
from services.events import Envelope
from services.settings import Settings

log = logging.getLogger(__name__)

TOPIC = "chat"
TOPICS = (TOPIC, "donations", "subscriptions")  # the money topics feed highlighted messages
PIN_EVENTS = frozenset({"chat.pinned", "chat.unpinned"})  # shown by every node, the origin included
SEEN_EVENTS = 20_000  # event ids remembered to drop duplicates
MAX_BACKOFF_SECONDS = 5.0


class ChatFanout:
    """One consumer thread per node; `ready` is set once it is positioned at the end of every partition."""

    def __init__(self, settings: Settings, chat: ChatService, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.chat = chat
        self.loop = loop
        self.ready = threading.Event()
        self.delivered = 0  # events from other nodes applied to sockets
        self.skipped_own = 0
        self.duplicates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._positions: dict[TopicPartition, int] = {}

    def start(self) -> ChatFanout:
        self._thread = threading.Thread(target=self._run, name="chat-fanout", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ---- the consumer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            consumer: KafkaConsumer | None = None
            try:
                consumer = self._connect()
                backoff = 0.2
                while not self._stop.is_set():
                    batch = consumer.poll(timeout_ms=200)
                    for tp in sorted(batch, key=lambda t: (t.topic, t.partition)):
                        for record in batch[tp]:
                            self._handle(record.value)
                            self._positions[tp] = record.offset + 1
            except Exception as exc:  # the fan-out must outlive broker restarts and database hiccups
                log.warning("chat fan-out consumer failed (%s: %s); retrying", type(exc).__name__, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            finally:
                if consumer is not None:
                    consumer.close()

    def _connect(self) -> KafkaConsumer:
        consumer = bus.make_consumer(
            self.settings, None, fetch_max_wait_ms=10, client_id=f"efir-chat-fanout-{self.settings.node_id}"
        )
        try:
            tps: list[TopicPartition] = []
            for topic in TOPICS:
                partitions = None
                while partitions is None and not self._stop.is_set():
                    partitions = consumer.partitions_for_topic(topic)
                    if partitions is None:
                        bus.ensure_topics(self.settings, [topic])
                        self._stop.wait(0.2)
                tps += [TopicPartition(topic, p) for p in sorted(partitions or ())]
            consumer.assign(tps)
            for tp in tps:
                if tp in self._positions:  # a reconnect: carry on where we were
                    consumer.seek(tp, self._positions[tp])
                else:
                    consumer.seek_to_end(tp)
                self._positions[tp] = consumer.position(tp)  # resolves the lazy seek now
        except Exception:
            consumer.close()
            raise
        self.ready.set()
        return consumer

    def _handle(self, raw: bytes) -> None:
        try:
            env = Envelope.from_json(raw)
        except ValueError:
            log.warning("chat fan-out: dropped a malformed event")
            return
        everywhere = env.event_type in PIN_EVENTS or env.event_type in highlights.SOURCE_EVENTS
        if env.node_id == self.settings.node_id and not everywhere:
            self.skipped_own += 1
            return
        if env.event_id in self._seen:
            self.duplicates += 1
            return
        self._seen[env.event_id] = None
        if len(self._seen) > SEEN_EVENTS:
            self._seen.popitem(last=False)
        if env.event_type == "chat.pinned":
            self.delivered += 1
            pin = self._pin_frame(env)
            self.loop.call_soon_threadsafe(self.chat.show_pin, env.channel_id, pin)
            return
        if env.event_type == "chat.unpinned":
            self.delivered += 1
            self.loop.call_soon_threadsafe(self.chat.hide_pin, env.channel_id, env.payload["pin_id"])
            return
        if env.event_type in highlights.SOURCE_EVENTS:
            frame = highlights.record_highlight(self.chat, env)
            if frame is not None:
                self.delivered += 1
                self._deliver(env.channel_id, Effects(broadcast=[frame]))
            return
        effects = self._effects(env)
        if effects is not None:
            self.delivered += 1
            self._deliver(env.channel_id, effects)

    def _deliver(self, channel_id: str, effects: Effects) -> None:
        apply: Callable[[str, Effects], None] = self.chat.apply
        self.loop.call_soon_threadsafe(apply, channel_id, effects)

    # ---- events to socket effects ------------------------------------------------------------------

    def _effects(self, env: Envelope) -> Effects | None:
        """The same socket effects the origin node applied, rebuilt from the event and the shared database."""
        kind, p, channel = env.event_type, env.payload, env.channel_id
        if kind == "chat.message":
            if p.get("kind") in HIGHLIGHTED:
                return None  # every node showed it from the money event itself (highlights.py)
            if p["status"] == MessageStatus.HIDDEN:
                return None  # only its sender is told, on the origin node
            frame = self._message(channel, p["message_id"], env)
            if p["status"] == MessageStatus.HELD:
                return Effects(to_moderators=[{**frame, "type": "held_message", "rule": p.get("rule")}])
            return Effects(broadcast=[frame])
        if kind == "chat.deleted":
            return Effects(broadcast=[{"type": "deleted", "ids": [p["message_id"]]}])
        if kind in ("moderation.timeout", "moderation.ban", "moderation.ipban"):
            return self._restriction(env)
        if kind in ("moderation.slow", "moderation.subonly", "moderation.emoteonly"):
            with self.chat.sessions() as session:
                row = session.get(ChatChannelSettings, channel)
                modes = (
                    modes_of(row)
                    if row is not None
                    else {"slow_seconds": 0, "subs_only": False, "emote_only": False}
                )
            return Effects(broadcast=[{"type": "modes", **modes}])
        if kind == "moderation.clear":
            return Effects(broadcast=[{"type": "cleared", "by": p["actor_user_id"]}])
        if kind in ("moderation.mod", "moderation.unmod"):
            target = p["target_user_id"]
            return Effects(roles={target: self._role(channel, target)})
        if kind == "moderation.approved":
            frame = self._message(channel, p["message_id"], env)
            reviewed = {"type": "reviewed", "id": p["message_id"], "status": MessageStatus.VISIBLE}
            return Effects(broadcast=[frame], to_moderators=[reviewed])
        if kind == "moderation.rejected":
            reviewed = {"type": "reviewed", "id": p["message_id"], "status": MessageStatus.REJECTED}
            return Effects(to_moderators=[reviewed])
        return None  # chat.mention, moderation.unban/delete: nothing to show beyond their companions

    @staticmethod
    def _pin_frame(env: Envelope) -> Frame:
        p = env.payload
        return {
            "id": p["pin_id"],
            "user_id": env.user_id,
            "name": p["display_name"],
            "text": p["text"],
            "amount_minor": p["amount_minor"],
            "currency": p["currency"],
            "pinned_at": env.occurred_at.isoformat(),
            "expires_at": datetime.fromisoformat(p["expires_at"]).isoformat(),
        }

    def _role(self, channel_id: str, user_id: str) -> Role:
        with self.chat.sessions() as session:
            row = session.get(ChatRole, (channel_id, user_id))
            return effective_role(Role(row.role) if row else None, row.sub_tier if row else 0)

    def _message(self, channel_id: str, message_id: str, env: Envelope) -> Frame:
        with self.chat.sessions() as session:
            msg = session.execute(sa.select(ChatMessage).where(ChatMessage.message_id == message_id)).scalar()
            if msg is not None:
                role_row = session.get(ChatRole, (channel_id, msg.user_id))
                role = effective_role(
                    Role(role_row.role) if role_row else None, role_row.sub_tier if role_row else 0
                )
                return message_frame(msg, role)
        p = env.payload  # not in our database (should not happen with one shared database): the event's data
        row = ChatMessage(
            message_id=message_id,
            channel_id=channel_id,
            user_id=env.user_id or "",
            display_name=p.get("display_name", ""),
            text=p.get("text", ""),
            status=p.get("status", MessageStatus.VISIBLE),
            created_at=env.occurred_at,
        )
        return message_frame(row, "")

    def _restriction(self, env: Envelope) -> Effects:
        p, verb = env.payload, env.event_type.split(".", 1)[1]
        target = p["target_user_id"]
        until = (
            env.occurred_at + timedelta(seconds=p["seconds"]) if verb == "timeout" and p["seconds"] else None
        )
        with self.chat.sessions() as session:
            row = session.get(ChatRestriction, (env.channel_id, target))
            if row is not None and row.kind == verb:
                until = row.until  # the exact instant the origin node stored
        notice: Frame = {
            "type": "moderation",
            "action": verb,
            "until": until.isoformat() if until else None,
            "reason": p.get("reason", ""),
            "detail": f"you are timed out until {until.isoformat()}"
            if until
            else "you are banned from this chat",
        }
        return Effects(mute=[(target, notice)]) if until else Effects(kick=[(target, notice)])
