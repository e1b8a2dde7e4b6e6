"""Sockets per channel and fan-out to them.

Each socket has a bounded queue and its own writer task: a broadcast only enqueues, so one slow
client never delays the others; a client whose queue overflows is closed as too slow (1008).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket

from services.chat.tokens import UserClaims

log = logging.getLogger(__name__)

Frame = dict[str, Any]


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    channel_id: str
    claims: UserClaims | None
    queue: asyncio.Queue[str | Close]
    writer: asyncio.Task[None] | None = None
    closing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> str | None:
        return self.claims.user_id if self.claims else None

    def send(self, frame: Frame | str) -> None:
        """Queue a frame; an overflowing queue closes the socket (the client is too slow)."""
        if self.closing:
            return
        text = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close(1008, "too slow: frames queued beyond the limit")

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued (so a notice sent just before arrives first)."""
        if self.closing:
            return
        self.closing = True
        while self.queue.full():  # a too-slow client: drop what it has not read, then close
            self.queue.get_nowait()
        self.queue.put_nowait(Close(code, reason))

    async def write_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, Close):
                    await self.ws.close(item.code, item.reason)
                    return
                await self.ws.send_text(item)
        except Exception:  # the peer went away; the reader notices and leaves the hub
            log.debug("chat socket writer ended", exc_info=True)


class Hub:
    """The sockets of every channel on this node."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self.rooms: dict[str, set[Connection]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, channel_id: str) -> asyncio.Lock:
        """Serialises posts of one channel on this node, so everyone sees one order."""
        return self._locks.setdefault(channel_id, asyncio.Lock())

    def connection(self, ws: WebSocket, channel_id: str, claims: UserClaims | None) -> Connection:
        conn = Connection(ws, channel_id, claims, asyncio.Queue(self.queue_size))
        conn.writer = asyncio.create_task(conn.write_loop())
        return conn

    def join(self, conn: Connection) -> None:
        self.rooms.setdefault(conn.channel_id, set()).add(conn)

    def leave(self, conn: Connection) -> None:
        room = self.rooms.get(conn.channel_id)
        if room is not None:
            room.discard(conn)
            if not room:
                del self.rooms[conn.channel_id]
        if conn.writer is not None and not conn.writer.done():
            conn.writer.cancel()

    def count(self, channel_id: str | None = None) -> int:
        if channel_id is None:
            return sum(len(r) for r in self.rooms.values())
        return len(self.rooms.get(channel_id, ()))

    def broadcast(
        self, channel_id: str, frame: Frame, only: Callable[[Connection], bool] | None = None
    ) -> int:
        text = json.dumps(frame, ensure_ascii=False)
        sent = 0
        for conn in list(self.rooms.get(channel_id, ())):
            if only is None or only(conn):
                conn.send(text)
                sent += 1
        return sent

    def broadcast_message(self, channel_id: str, frame: Frame) -> int:
        """A chat message with the per-recipient `friend` flag: true for sockets whose user is a friend
        of the author (their friend ids sit in `extra["friends"]`, fetched at join). Two encodings at
        most, so the fan-out still serialises once per variant, not once per socket."""
        author = frame.get("user_id")
        plain = json.dumps({**frame, "friend": False}, ensure_ascii=False)
        friendly: str | None = None
        sent = 0
        for conn in list(self.rooms.get(channel_id, ())):
            if author and author in conn.extra.get("friends", ()):
                friendly = friendly or json.dumps({**frame, "friend": True}, ensure_ascii=False)
                conn.send(friendly)
            else:
                conn.send(plain)
            sent += 1
        return sent

    def of_user(self, channel_id: str, user_id: str) -> list[Connection]:
        return [c for c in self.rooms.get(channel_id, ()) if c.user_id == user_id]
