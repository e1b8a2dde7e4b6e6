"""The chat's decisions: who may post what, moderation actions and their effects on sockets.

Every decision reads the moderation state from the database in the transaction that records its
outcome (message row, outbox events, audit row), so nodes sharing one PostgreSQL agree on bans,
roles and modes. Database work runs in a worker thread while the channel's lock keeps one order.
Rate limits (flood, slow mode, repeats) are per node, in memory: a load balancer keeps a user's
socket on one node.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.audit import audit
from ingest_node.chat.friends import FriendsClient
from ingest_node.chat.hub import Connection, Frame, Hub
from ingest_node.chat.models import (
    ChatAddressBlock,
    ChatChannelSettings,
    ChatEmote,
    ChatMessage,
    ChatRestriction,
    ChatRole,
    ChatSeenAddress,
    MessageStatus,
)
from ingest_node.chat.pins import active_pins
from ingest_node.models import Channel
from ingest_node.money.models import Subscription
from ingest_node.outbox import enqueue
from services.chat import emotes
from services.chat.automod import Action, AutoMod, AutoModConfig, Rule, SlidingWindow, Verdict
from services.chat.commands import REQUIRES, Command, Verb
from services.chat.emotes import Catalogue, ContentError, Emote
from services.chat.messages import mentions
from services.chat.roles import Permission, Rank, Role, can, effective_role, may_act_on, rank
from services.chat.tokens import UserClaims
from services.events import (
    MODERATION_PAYLOADS,
    ChatMention,
    ChatMessageDeleted,
    ChatMessagePosted,
    Envelope,
    Payload,
)
from services.ids import new_id
from services.settings import Settings
from services.subscriptions import TIER_RANK, SubStatus

AUTOMOD_ACTOR = "automod"
_TIER_RANK = {str(tier): n for tier, n in TIER_RANK.items()}
CLOSE_BANNED = 4003
CLOSE_UNAUTHORIZED = 4401
CLOSE_UNKNOWN_CHANNEL = 4404


class ChatRefused(Exception):
    """A refused post or action: `code` for programs, `detail` for people, `status` for the HTTP API."""

    def __init__(self, code: str, detail: str, status: int = 400, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra

    def frame(self) -> Frame:
        return {"type": "error", "code": self.code, "detail": self.detail, **self.extra}


@dataclass
class Effects:
    """What a decision changes on sockets, applied after its transaction committed."""

    broadcast: list[Frame] = field(default_factory=list)
    to_moderators: list[Frame] = field(default_factory=list)
    to_sender: list[Frame] = field(default_factory=list)
    mute: list[tuple[str, Frame]] = field(default_factory=list)  # user told, stays connected read-only
    kick: list[tuple[str, Frame]] = field(default_factory=list)  # user told, sockets closed
    roles: dict[str, Role] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    role: Role
    restriction: ChatRestriction | None
    settings: ChatChannelSettings
    tier: int = 0  # subscription tier 0..3: the stored chat tier or an active paid subscription
    address_blocked: bool = False  # the socket's address fingerprint is blocked by an /ipban
    pins: list[Frame] = field(default_factory=list)  # boosted messages pinned now (join_state only)


class MessageKind:
    CHAT = "chat"
    STICKER = "sticker"
    DONATION = "donation"
    SUBSCRIPTION = "subscription"


HIGHLIGHTED = frozenset({MessageKind.DONATION, MessageKind.SUBSCRIPTION})


def _now() -> datetime:
    return datetime.now(UTC)


def message_frame(msg: ChatMessage, role: Role | str) -> Frame:
    """A message as clients get it: `tokens` (text and emotes) to render, `kind` and `highlight` for
    donation and subscription messages, `sticker` for sticker messages, `meta` for the money details."""
    meta: dict[str, Any] = json.loads(msg.meta) if msg.meta else {}
    kind = msg.kind or MessageKind.CHAT
    frame: Frame = {
        "type": "message",
        "id": msg.message_id,
        "user_id": msg.user_id,
        "name": msg.display_name,
        "role": str(role),
        "text": msg.text,
        "kind": kind,
        "tokens": meta.pop("tokens", None) or [{"t": "text", "v": msg.text}],
        "mentions": mentions(msg.text) if kind == MessageKind.CHAT else [],
        "highlight": kind in HIGHLIGHTED,
        "at": msg.created_at.isoformat(),
    }
    if meta:
        frame["meta"] = meta
    return frame


def modes_of(row: ChatChannelSettings) -> Frame:
    return {"slow_seconds": row.slow_seconds, "subs_only": row.subs_only, "emote_only": row.emote_only}


class ChatService:
    """One per app: the hub, the in-memory limits and the database decisions."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.hub = Hub(settings.chat_socket_queue)
        self.flood = SlidingWindow(settings.chat_flood_messages, settings.chat_flood_seconds)
        self._last_post: dict[tuple[str, str], float] = {}
        self._automods: dict[str, tuple[str, AutoMod]] = {}
        self.friends = FriendsClient(settings)
        self._pin_timers: dict[str, asyncio.TimerHandle] = {}  # pin id -> its expiry's `unpinned`

    # ---- events ------------------------------------------------------------------------------------

    def _emit(self, session: Session, payload: Payload, channel_id: str, user_id: str | None) -> None:
        env = Envelope.wrap(payload, channel_id=channel_id, node_id=self.settings.node_id, user_id=user_id)
        enqueue(session, env)

    def _moderation(self, session: Session, verb: str, channel_id: str, actor: str, **fields: Any) -> None:
        payload = MODERATION_PAYLOADS[verb](actor_user_id=actor, **fields)
        self._emit(session, payload, channel_id, fields.get("target_user_id"))
        target = fields.get("target_user_id") or fields.get("message_id") or "channel"
        audit(
            session,
            actor=actor if actor == AUTOMOD_ACTOR else f"user:{actor}",
            action=f"moderation.{verb}",
            entity=f"chat:{channel_id}:{target}"[:128],
            status_after=_status_after(verb, fields),
        )

    # ---- state -------------------------------------------------------------------------------------

    def _context(
        self, session: Session, channel_id: str, user_id: str | None, ip_hash: str | None = None
    ) -> Context:
        if session.get(Channel, channel_id) is None:
            raise ChatRefused("unknown_channel", f"channel {channel_id!r} does not exist", 404)
        settings = session.get(ChatChannelSettings, channel_id)
        if settings is None:
            settings = ChatChannelSettings(
                channel_id=channel_id, slow_seconds=0, subs_only=False, emote_only=False, automod="{}"
            )
        if user_id is None:
            return Context(Role.ANONYMOUS, None, settings)
        row = session.get(ChatRole, (channel_id, user_id))
        tier = max(row.sub_tier if row else 0, _paid_tier(session, channel_id, user_id))
        role = effective_role(Role(row.role) if row else None, tier)
        restriction = session.get(ChatRestriction, (channel_id, user_id))
        if restriction is not None and restriction.until is not None and restriction.until <= _now():
            restriction = None  # an expired timeout
        blocked = ip_hash is not None and session.get(ChatAddressBlock, (channel_id, ip_hash)) is not None
        return Context(role, restriction, settings, tier, blocked)

    def catalogue(self, session: Session, channel_id: str) -> Catalogue:
        """Global emotes and stickers plus the channel's, read in the caller's transaction (so an owner's
        change on one node applies on every node at once)."""
        own = session.execute(sa.select(ChatEmote).where(ChatEmote.channel_id == channel_id)).scalars()
        return Catalogue.with_channel(
            Emote(r.code, r.url, r.min_tier, emotes.Kind(r.kind), "channel") for r in own
        )

    def _settings_row(self, session: Session, channel_id: str) -> ChatChannelSettings:
        row = session.get(ChatChannelSettings, channel_id)
        if row is None:
            row = ChatChannelSettings(
                channel_id=channel_id, slow_seconds=0, subs_only=False, emote_only=False, automod="{}"
            )
            session.add(row)
        return row

    def _automod(self, channel_id: str, raw: str) -> AutoMod:
        cached = self._automods.get(channel_id)
        if cached is None or cached[0] != raw:
            cached = (raw, AutoMod(AutoModConfig.model_validate_json(raw or "{}")))
            self._automods[channel_id] = cached
        return cached[1]

    def join_state(
        self, channel_id: str, user_id: str | None, ip_hash: str | None = None
    ) -> tuple[Context, list[Frame]]:
        """The user's role, restriction and channel modes, and the last N visible messages.

        A signed-in user's address fingerprint is remembered, so an /ipban on any node can block it."""
        with self.sessions() as session:
            ctx = self._context(session, channel_id, user_id, ip_hash)
            rows = session.execute(
                sa.select(ChatMessage)
                .where(ChatMessage.channel_id == channel_id, ChatMessage.status == MessageStatus.VISIBLE)
                .order_by(ChatMessage.id.desc())
                .limit(self.settings.chat_history_size)
            ).scalars()
            history = [message_frame(m, "") for m in reversed(list(rows))]
            ctx.pins = [p.frame() for p in active_pins(session, channel_id)]
        if user_id is not None and ip_hash is not None:
            self._remember_address(channel_id, user_id, ip_hash)
        return ctx, history

    def _remember_address(self, channel_id: str, user_id: str, ip_hash: str) -> None:
        """Upsert the user's last address fingerprint; two joins racing (a reconnect storm) both win."""
        try:
            with self.sessions() as session, session.begin():
                seen = session.get(ChatSeenAddress, (channel_id, user_id))
                if seen is None:
                    session.add(ChatSeenAddress(channel_id=channel_id, user_id=user_id, ip_hash=ip_hash))
                else:
                    seen.ip_hash, seen.seen_at = ip_hash, _now()
        except IntegrityError:
            pass  # a concurrent join of the same user inserted the row first

    # ---- posting -----------------------------------------------------------------------------------

    async def post(self, conn: Connection, text: str, sticker: str | None = None) -> None:
        """A chat line, or (with `sticker`) a sticker message; `text` is then ignored."""
        if conn.claims is None:
            raise ChatRefused("sign_in_required", "sign in to write in the chat", 401)
        async with self.hub.lock(conn.channel_id):
            effects = await asyncio.to_thread(
                self._post_sync, conn.channel_id, conn.claims, text, sticker, conn.extra.get("ip_hash")
            )
            self.apply(conn.channel_id, effects, sender=conn)

    def _post_sync(
        self,
        channel_id: str,
        claims: UserClaims,
        text: str,
        sticker: str | None = None,
        ip_hash: str | None = None,
    ) -> Effects:
        with self.sessions() as session, session.begin():
            ctx = self._context(session, channel_id, claims.user_id, ip_hash)
            _refuse_restricted(ctx.restriction)
            if ctx.address_blocked:
                raise ChatRefused(
                    "address_blocked", "writing from your network address is blocked in this chat", 403
                )
            role = ctx.role
            if not can(role, Permission.SEND):
                raise ChatRefused("forbidden", "you may not write in this chat", 403)
            if ctx.settings.subs_only and not can(role, Permission.SEND_IN_SUBONLY):
                raise ChatRefused("subs_only", "the chat is in subscribers-only mode", 403)
            catalogue = self.catalogue(session, channel_id)
            tier = emotes.MAX_TIER if can(role, Permission.USE_ALL_EMOTES) else ctx.tier
            meta: dict[str, Any]
            try:
                if sticker is not None:
                    found = catalogue.sticker(sticker, tier)
                    kind, text = MessageKind.STICKER, f":{found.code}:"
                    meta = {"sticker": {"code": found.code, "url": found.url}}
                    tokens = [{"t": "sticker", "code": found.code, "url": found.url}]
                else:
                    kind, tokens = MessageKind.CHAT, emotes.tokenise(text, catalogue, tier)
                    meta = {}
            except ContentError as exc:
                raise ChatRefused(exc.code, exc.detail, exc.status, **exc.extra) from None
            meta["tokens"] = tokens
            emote_only = kind == MessageKind.STICKER or emotes.is_emote_only(tokens)
            if ctx.settings.emote_only and rank(role) < Rank.MODERATOR and not emote_only:
                raise ChatRefused(
                    "emote_only", "the chat is in emote-only mode: emotes from this chat's list only", 403
                )
            now = time.monotonic()
            key = (channel_id, claims.user_id)
            if not can(role, Permission.BYPASS_RATE_LIMIT):
                wait = self.flood.hit(f"{channel_id}\x00{claims.user_id}", now)
                if wait > 0:
                    raise ChatRefused(
                        "rate_limited",
                        f"slow down: at most {self.flood.limit} messages in {self.flood.seconds:g} s",
                        429,
                        retry_after=round(wait, 2),
                    )
            slow = ctx.settings.slow_seconds
            if slow and not can(role, Permission.BYPASS_SLOW):
                last = self._last_post.get(key)
                if last is not None and now - last < slow:
                    raise ChatRefused(
                        "slow_mode",
                        f"slow mode: one message every {slow} s",
                        429,
                        retry_after=round(slow - (now - last), 2),
                    )
            verdict: Verdict | None = None
            if not can(role, Permission.BYPASS_AUTOMOD) and kind == MessageKind.CHAT:
                skip = frozenset({Rule.LINKS}) if can(role, Permission.POST_LINKS) else frozenset()
                automod = self._automod(channel_id, ctx.settings.automod)
                verdict = automod.evaluate(text, user=claims.user_id, now=now, skip=skip)
            status = MessageStatus.VISIBLE
            if verdict is not None:
                status = MessageStatus.HELD if verdict.action is Action.HOLD else MessageStatus.HIDDEN
            msg = ChatMessage(
                message_id=new_id(),
                channel_id=channel_id,
                user_id=claims.user_id,
                display_name=claims.display_name,
                text=text,
                status=status,
                rule=verdict.rule if verdict else None,
                created_at=_now(),
                kind=kind,
                meta=json.dumps(meta, ensure_ascii=False),
            )
            session.add(msg)
            self._last_post[key] = now
            self._emit(
                session,
                ChatMessagePosted(
                    message_id=msg.message_id,
                    display_name=msg.display_name,
                    text=text,
                    status=status,
                    rule=msg.rule,
                    kind=kind,
                ),
                channel_id,
                claims.user_id,
            )
            effects = Effects()
            frame = message_frame(msg, role)
            if status is MessageStatus.VISIBLE:
                for name in frame["mentions"]:
                    self._emit(
                        session,
                        ChatMention(message_id=msg.message_id, mentioned=name),
                        channel_id,
                        claims.user_id,
                    )
                effects.broadcast.append(frame)
            elif status is MessageStatus.HELD:
                effects.to_sender.append(
                    {
                        "type": "held",
                        "id": msg.message_id,
                        "detail": "held for a moderator's review",
                        "rule": msg.rule,
                    }
                )
                effects.to_moderators.append({**frame, "type": "held_message", "rule": msg.rule})
            else:
                effects.to_sender.append(
                    {
                        "type": "hidden",
                        "id": msg.message_id,
                        "rule": msg.rule,
                        "detail": f"your message was hidden by auto-moderation ({msg.rule})",
                    }
                )
            if verdict is not None and verdict.action is Action.TIMEOUT:
                seconds = self._automod(channel_id, ctx.settings.automod).config.timeout_seconds
                self._restrict(
                    session,
                    effects,
                    channel_id,
                    AUTOMOD_ACTOR,
                    claims.user_id,
                    Verb.TIMEOUT,
                    seconds,
                    f"auto-moderation: {verdict.rule}",
                )
            effects.result = {"id": msg.message_id, "status": str(status)}
            return effects

    # ---- moderation --------------------------------------------------------------------------------

    async def command(self, channel_id: str, actor: UserClaims, command: Command) -> dict[str, Any]:
        async with self.hub.lock(channel_id):
            effects = await asyncio.to_thread(self._command_sync, channel_id, actor, command)
            self.apply(channel_id, effects)
        return effects.result

    def _resolve_user(self, session: Session, channel_id: str, target: str) -> str:
        """A user id as given, or the author of the latest message with that display name."""
        known = session.execute(
            sa.select(ChatMessage.user_id)
            .where(ChatMessage.channel_id == channel_id, ChatMessage.user_id == target)
            .limit(1)
        ).scalar()
        if known is not None or session.get(ChatRole, (channel_id, target)) is not None:
            return target
        by_name = session.execute(
            sa.select(ChatMessage.user_id)
            .where(
                ChatMessage.channel_id == channel_id,
                sa.func.lower(ChatMessage.display_name) == target.lower(),
            )
            .order_by(ChatMessage.id.desc())
            .limit(1)
        ).scalar()
        return by_name or target

    def _command_sync(self, channel_id: str, actor: UserClaims, cmd: Command) -> Effects:
        with self.sessions() as session, session.begin():
            ctx = self._context(session, channel_id, actor.user_id)
            if ctx.restriction is not None or not can(ctx.role, REQUIRES[cmd.verb]):
                raise ChatRefused("forbidden", f"your role ({ctx.role}) may not use /{cmd.verb}", 403)
            effects = Effects()
            verb = cmd.verb
            if verb in (Verb.TIMEOUT, Verb.BAN, Verb.IPBAN, Verb.UNBAN, Verb.MOD, Verb.UNMOD):
                assert cmd.target is not None
                target = self._resolve_user(session, channel_id, cmd.target)
                target_role = self._context(session, channel_id, target).role
                if target == actor.user_id or not may_act_on(ctx.role, target_role):
                    raise ChatRefused("forbidden", f"you may not /{verb} {target} ({target_role})", 403)
                if verb in (Verb.TIMEOUT, Verb.BAN, Verb.IPBAN):
                    self._restrict(
                        session, effects, channel_id, actor.user_id, target, verb, cmd.seconds, cmd.reason
                    )
                    if verb is Verb.IPBAN:
                        effects.result["blocked_addresses"] = self._block_addresses(
                            session, channel_id, actor.user_id, target
                        )
                elif verb is Verb.UNBAN:
                    restriction = session.get(ChatRestriction, (channel_id, target))
                    lifted = (
                        session.execute(  # an /ipban's address blocks are lifted too
                            sa.select(ChatAddressBlock).where(
                                ChatAddressBlock.channel_id == channel_id, ChatAddressBlock.user_id == target
                            )
                        )
                        .scalars()
                        .all()
                    )
                    for block in lifted:
                        session.delete(block)
                    if restriction is None and not lifted:
                        raise ChatRefused("not_restricted", f"{target} is neither banned nor timed out", 409)
                    if restriction is not None:
                        session.delete(restriction)
                    self._moderation(session, "unban", channel_id, actor.user_id, target_user_id=target)
                else:
                    new_role = Role.MODERATOR if verb is Verb.MOD else Role.VIEWER
                    role_row = session.get(ChatRole, (channel_id, target))
                    if role_row is None:
                        role_row = ChatRole(channel_id=channel_id, user_id=target, role=new_role, sub_tier=0)
                        session.add(role_row)
                    role_row.role = new_role
                    role_row.updated_at = _now()
                    effects.roles[target] = effective_role(new_role, role_row.sub_tier)
                    self._moderation(session, str(verb), channel_id, actor.user_id, target_user_id=target)
                effects.result = {"ok": True, "command": str(verb), "target": target, **effects.result}
            elif verb in (Verb.SLOW, Verb.SUBONLY, Verb.EMOTEONLY):
                modes_row = self._settings_row(session, channel_id)
                if verb is Verb.SLOW:
                    modes_row.slow_seconds = cmd.seconds or 0
                elif verb is Verb.SUBONLY:
                    modes_row.subs_only = bool(cmd.enabled)
                else:
                    modes_row.emote_only = bool(cmd.enabled)
                modes_row.updated_at = _now()
                self._moderation(
                    session, str(verb), channel_id, actor.user_id, seconds=cmd.seconds, enabled=cmd.enabled
                )
                effects.broadcast.append({"type": "modes", **modes_of(modes_row)})
                effects.result = {"ok": True, "command": str(verb), "modes": modes_of(modes_row)}
            elif verb is Verb.CLEAR:
                session.execute(
                    sa.update(ChatMessage)
                    .where(ChatMessage.channel_id == channel_id, ChatMessage.status == MessageStatus.VISIBLE)
                    .values(status=MessageStatus.HIDDEN)
                )
                self._moderation(session, "clear", channel_id, actor.user_id)
                effects.broadcast.append({"type": "cleared", "by": actor.display_name})
                effects.result = {"ok": True, "command": "clear"}
            else:  # DELETE
                msg = session.execute(
                    sa.select(ChatMessage).where(
                        ChatMessage.message_id == cmd.target, ChatMessage.channel_id == channel_id
                    )
                ).scalar()
                if msg is None:
                    raise ChatRefused("unknown_message", f"no message {cmd.target} in this chat", 404)
                author_role = self._context(session, channel_id, msg.user_id).role
                if msg.user_id != actor.user_id and not may_act_on(ctx.role, author_role):
                    raise ChatRefused("forbidden", f"you may not delete a message of a {author_role}", 403)
                msg.status = MessageStatus.DELETED
                self._emit(
                    session,
                    ChatMessageDeleted(
                        message_id=msg.message_id, reason="deleted", actor_user_id=actor.user_id
                    ),
                    channel_id,
                    msg.user_id,
                )
                self._moderation(
                    session,
                    "delete",
                    channel_id,
                    actor.user_id,
                    target_user_id=msg.user_id,
                    message_id=msg.message_id,
                )
                effects.broadcast.append({"type": "deleted", "ids": [msg.message_id]})
                effects.result = {"ok": True, "command": "delete", "id": msg.message_id}
            return effects

    def _restrict(
        self,
        session: Session,
        effects: Effects,
        channel_id: str,
        actor: str,
        target: str,
        verb: Verb,
        seconds: int | None,
        reason: str,
    ) -> None:
        """Time out or ban: record it, hide the user's visible messages for everyone, tell their sockets."""
        until = _now() + timedelta(seconds=seconds) if verb is Verb.TIMEOUT and seconds else None
        row = session.get(ChatRestriction, (channel_id, target))
        if row is None:
            row = ChatRestriction(channel_id=channel_id, user_id=target)
            session.add(row)
        kind = str(Verb.BAN if verb is Verb.IPBAN else verb)  # an /ipban is a ban plus address blocks
        row.kind, row.until, row.reason, row.actor, row.created_at = kind, until, reason, actor, _now()
        hidden = list(
            session.execute(
                sa.select(ChatMessage.message_id).where(
                    ChatMessage.channel_id == channel_id,
                    ChatMessage.user_id == target,
                    ChatMessage.status.in_([MessageStatus.VISIBLE, MessageStatus.HELD]),
                )
            ).scalars()
        )
        if hidden:
            session.execute(
                sa.update(ChatMessage)
                .where(ChatMessage.message_id.in_(hidden))
                .values(status=MessageStatus.HIDDEN)
            )
            for message_id in hidden:
                self._emit(
                    session,
                    ChatMessageDeleted(message_id=message_id, reason=str(verb), actor_user_id=actor),
                    channel_id,
                    target,
                )
            effects.broadcast.append({"type": "deleted", "ids": hidden})
        self._moderation(
            session, str(verb), channel_id, actor, target_user_id=target, seconds=seconds, reason=reason
        )
        notice: Frame = {
            "type": "moderation",
            "action": str(verb),
            "until": until.isoformat() if until else None,
            "reason": reason,
            "detail": f"you are timed out until {until.isoformat()}"
            if until
            else "you are banned from this chat",
        }
        (effects.mute if until else effects.kick).append((target, notice))

    def _block_addresses(self, session: Session, channel_id: str, actor: str, target: str) -> int:
        """Block the address fingerprints the user chatted from here (recorded at every join, on any
        node). Only keyed fingerprints exist; raw addresses never do."""
        hashes = {
            h
            for h in session.execute(
                sa.select(ChatSeenAddress.ip_hash).where(
                    ChatSeenAddress.channel_id == channel_id, ChatSeenAddress.user_id == target
                )
            ).scalars()
        }
        for ip_hash in sorted(hashes):
            if session.get(ChatAddressBlock, (channel_id, ip_hash)) is None:
                session.add(
                    ChatAddressBlock(channel_id=channel_id, ip_hash=ip_hash, user_id=target, actor=actor)
                )
        return len(hashes)

    # ---- held messages -----------------------------------------------------------------------------

    def held(self, channel_id: str, actor: UserClaims) -> list[Frame]:
        with self.sessions() as session:
            ctx = self._context(session, channel_id, actor.user_id)
            if not can(ctx.role, Permission.REVIEW_HELD):
                raise ChatRefused("forbidden", "only moderators review held messages", 403)
            rows = session.execute(
                sa.select(ChatMessage)
                .where(ChatMessage.channel_id == channel_id, ChatMessage.status == MessageStatus.HELD)
                .order_by(ChatMessage.id)
            ).scalars()
            result = [{**message_frame(m, ""), "type": "held_message", "rule": m.rule} for m in rows]
            session.rollback()
        return result

    async def review(
        self, channel_id: str, actor: UserClaims, message_id: str, approve: bool
    ) -> dict[str, Any]:
        async with self.hub.lock(channel_id):
            effects = await asyncio.to_thread(self._review_sync, channel_id, actor, message_id, approve)
            self.apply(channel_id, effects)
        return effects.result

    def _review_sync(self, channel_id: str, actor: UserClaims, message_id: str, approve: bool) -> Effects:
        with self.sessions() as session, session.begin():
            ctx = self._context(session, channel_id, actor.user_id)
            if not can(ctx.role, Permission.REVIEW_HELD):
                raise ChatRefused("forbidden", "only moderators review held messages", 403)
            msg = session.execute(
                sa.select(ChatMessage).where(
                    ChatMessage.message_id == message_id, ChatMessage.channel_id == channel_id
                )
            ).scalar()
            if msg is None:
                raise ChatRefused("unknown_message", f"no message {message_id} in this chat", 404)
            if msg.status != MessageStatus.HELD:
                raise ChatRefused("not_held", f"message {message_id} is {msg.status}, not held", 409)
            msg.status = MessageStatus.VISIBLE if approve else MessageStatus.REJECTED
            verb = "approved" if approve else "rejected"
            self._moderation(
                session,
                verb,
                channel_id,
                actor.user_id,
                target_user_id=msg.user_id,
                message_id=message_id,
                reason=msg.rule or "",
            )
            effects = Effects(result={"ok": True, "id": message_id, "status": msg.status})
            if approve:
                author = self._context(session, channel_id, msg.user_id).role
                effects.broadcast.append(message_frame(msg, author))
            effects.to_moderators.append({"type": "reviewed", "id": message_id, "status": msg.status})
            return effects

    # ---- automod configuration ---------------------------------------------------------------------

    def configure_automod(self, channel_id: str, actor: UserClaims | None, config: AutoModConfig) -> None:
        with self.sessions() as session, session.begin():
            if actor is not None:
                ctx = self._context(session, channel_id, actor.user_id)
                if not can(ctx.role, Permission.CONFIGURE_AUTOMOD):
                    raise ChatRefused("forbidden", "only the channel owner configures auto-moderation", 403)
            else:
                self._context(session, channel_id, None)
            row = self._settings_row(session, channel_id)
            row.automod = config.model_dump_json()
            row.updated_at = _now()
            audit(
                session,
                actor=f"user:{actor.user_id}" if actor else "admin",
                action="chat.automod",
                entity=f"chat:{channel_id}",
            )

    # ---- emotes and stickers of the channel ------------------------------------------------------

    def set_emote(
        self, channel_id: str, actor: UserClaims, kind: emotes.Kind, code: str, url: str, min_tier: int
    ) -> dict[str, Any]:
        """Add or replace a channel emote or sticker (the owner only); global names cannot be shadowed."""
        emotes.check_code(code), emotes.check_url(url), emotes.check_tier(min_tier)
        with self.sessions() as session, session.begin():
            ctx = self._context(session, channel_id, actor.user_id)
            if not can(ctx.role, Permission.MANAGE_EMOTES):
                raise ChatRefused("forbidden", "only the channel owner manages its emotes and stickers", 403)
            global_emotes, global_stickers = emotes.global_catalogue()
            if code in (global_emotes if kind is emotes.Kind.EMOTE else global_stickers):
                raise ChatRefused("name_taken", f"{code} is a global {kind}; pick another name", 409)
            row = session.get(ChatEmote, (channel_id, str(kind), code))
            before = f"tier {row.min_tier}" if row else None
            if row is None:
                row = ChatEmote(channel_id=channel_id, kind=str(kind), code=code, created_by=actor.user_id)
                session.add(row)
            row.url, row.min_tier, row.updated_at = url, min_tier, _now()
            audit(
                session,
                actor=f"user:{actor.user_id}",
                action=f"chat.{kind}",
                entity=f"chat:{channel_id}:{code}"[:128],
                status_before=before,
                status_after=f"tier {min_tier}",
            )
        return {"kind": str(kind), "code": code, "url": url, "min_tier": min_tier, "scope": "channel"}

    def delete_emote(self, channel_id: str, actor: UserClaims, kind: emotes.Kind, code: str) -> None:
        emotes.check_code(code)
        with self.sessions() as session, session.begin():
            ctx = self._context(session, channel_id, actor.user_id)
            if not can(ctx.role, Permission.MANAGE_EMOTES):
                raise ChatRefused("forbidden", "only the channel owner manages its emotes and stickers", 403)
            row = session.get(ChatEmote, (channel_id, str(kind), code))
            if row is None:
                raise ChatRefused(f"unknown_{kind}", f"this channel has no {kind} {code!r}", 404)
            session.delete(row)
            audit(
                session,
                actor=f"user:{actor.user_id}",
                action=f"chat.{kind}",
                entity=f"chat:{channel_id}:{code}"[:128],
                status_before=f"tier {row.min_tier}",
                status_after="deleted",
            )

    def channel_catalogue(self, channel_id: str) -> Catalogue:
        with self.sessions() as session:
            self._context(session, channel_id, None)
            return self.catalogue(session, channel_id)

    def show_pin(self, channel_id: str, pin: Frame) -> None:
        """On the event loop: push a pinned boosted message and unpin it when it expires (every node
        does this for every pin, from the `chat.pinned` event; see pins.py)."""
        left = (datetime.fromisoformat(pin["expires_at"]) - _now()).total_seconds()
        if left <= 0:
            return
        self.hub.broadcast(channel_id, {"type": "pinned", "pin": pin})
        self._pin_timers[pin["id"]] = asyncio.get_running_loop().call_later(
            left, self.hide_pin, channel_id, pin["id"]
        )

    def hide_pin(self, channel_id: str, pin_id: str) -> None:
        """On the event loop: send `unpinned` now, at expiry or early (from a `chat.unpinned` event, when
        the boost's payment was reversed; see pins.py), and drop the pending expiry so it is sent once.
        Sent also without a timer here: sockets may hold the pin from their `pins` frame on join."""
        timer = self._pin_timers.pop(pin_id, None)
        if timer is not None:
            timer.cancel()
        self.hub.broadcast(channel_id, {"type": "unpinned", "id": pin_id})

    # ---- effects on sockets ------------------------------------------------------------------------

    def apply(self, channel_id: str, effects: Effects, sender: Connection | None = None) -> None:
        for frame in effects.broadcast:
            if frame.get("type") == "message":
                self.hub.broadcast_message(channel_id, frame)
            else:
                self.hub.broadcast(channel_id, frame)
        for frame in effects.to_moderators:
            self.hub.broadcast(
                channel_id, frame, only=lambda c: rank(c.extra.get("role", Role.ANONYMOUS)) >= Rank.MODERATOR
            )
        if sender is not None:
            for frame in effects.to_sender:
                sender.send(frame)
        for user_id, role in effects.roles.items():
            for conn in self.hub.of_user(channel_id, user_id):
                conn.extra["role"] = role
                conn.send({"type": "role", "role": str(role)})
        for user_id, notice in effects.mute:
            for conn in self.hub.of_user(channel_id, user_id):
                conn.send(notice)
        for user_id, notice in effects.kick:
            for conn in self.hub.of_user(channel_id, user_id):
                conn.send(notice)
                conn.close(CLOSE_BANNED, "banned from this chat")


def _paid_tier(session: Session, channel_id: str, user_id: str) -> int:
    """The tier of the user's subscription to the channel while its perks last (active or cancelled
    until the period end), from the money side's `subscriptions` table: 0 when none."""
    rows = session.execute(
        sa.select(Subscription.tier).where(
            Subscription.channel_id == channel_id,
            Subscription.subscriber_id == user_id,
            Subscription.status.in_([SubStatus.ACTIVE, SubStatus.CANCELLED]),
            Subscription.period_end > _now(),
        )
    ).scalars()
    return max((_TIER_RANK.get(t, 0) for t in rows), default=0)


def _refuse_restricted(restriction: ChatRestriction | None) -> None:
    if restriction is None:
        return
    if restriction.kind == Verb.BAN:
        raise ChatRefused("banned", "you are banned from this chat", 403, reason=restriction.reason)
    until = restriction.until.isoformat() if restriction.until else None
    raise ChatRefused(
        "timed_out", f"you are timed out until {until}", 403, until=until, reason=restriction.reason
    )


def _status_after(verb: str, fields: dict[str, Any]) -> str | None:
    if verb == "slow":
        return f"{fields.get('seconds') or 0}s"[:16]
    if verb in ("subonly", "emoteonly"):
        return "on" if fields.get("enabled") else "off"
    return {
        "timeout": "timed_out",
        "ban": "banned",
        "ipban": "banned",
        "unban": "active",
        "mod": "moderator",
        "unmod": "viewer",
        "delete": "deleted",
        "approved": "visible",
        "rejected": "rejected",
        "clear": "cleared",
    }.get(verb)


def parse_frame(raw: str) -> dict[str, Any]:
    """A client frame: a JSON object with a known `type`; other fields (a forged role or id) are ignored."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ChatRefused(
            "bad_frame", 'frames are JSON objects like {"type": "send", "text": "hi"}'
        ) from None
    if not isinstance(data, dict) or data.get("type") not in ("send", "sticker", "ping"):
        raise ChatRefused(
            "bad_frame",
            'unknown frame type; use {"type": "send", "text": ...}, {"type": "sticker", '
            '"sticker": "<id>"} or ping',
        )
    if data["type"] == "send" and not isinstance(data.get("text"), str):
        raise ChatRefused("bad_frame", "a send frame needs a string `text`")
    if data["type"] == "sticker" and not isinstance(data.get("sticker"), str):
        raise ChatRefused("bad_frame", "a sticker frame needs a string `sticker` (a catalogue id)")
    return data
