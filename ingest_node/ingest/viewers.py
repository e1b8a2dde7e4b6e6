"""Viewer sessions and `view.heartbeat`: summed in memory per request, flushed to the outbox in batches.

A segment request must not cost a database write (a popular stream makes thousands a second), so the
HLS routes only add bytes and counts to an in-memory entry keyed by (channel, session, rendition);
a thread turns every entry into one `view.heartbeat` every EFIR_VIEW_HEARTBEAT_SECONDS, all of them
in one transaction. At most one heartbeat per session and rendition per interval leaves the node.
A node that dies loses at most one interval of viewing, which is the accepted price (heartbeats are
analytics, not money).

Viewer identity: a signed-in viewer opens the master playlist with their chat token; the route verifies
it once and binds the session to the user id here (`SessionIdentities`), so every heartbeat of that
session carries the user id in its envelope (`Envelope.user_id`, the house rule for "who did it"),
and media playlists and segments need nothing but the session id. Bindings live in memory: a node
restart forgets them, and the session is anonymous again until the player reopens the master playlist.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from ingest_node.outbox import enqueue
from services.events import Envelope, ViewHeartbeat
from services.settings import Settings

log = logging.getLogger(__name__)

SESSION_PATTERN = re.compile(r"^[A-Za-z0-9-]{8,64}$")

_UA_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bot", re.compile(r"bot\b|crawler|spider|slurp|facebookexternalhit|preview|monitor", re.I)),
    (
        "headless",
        re.compile(
            r"headless|phantomjs|puppeteer|playwright|selenium|python-|httpx|curl|wget|"
            r"go-http|okhttp|java/|node-fetch|axios",
            re.I,
        ),
    ),
    (
        "tv",
        re.compile(
            r"smart-?tv|tizen|web0s|webos|appletv|apple tv|\baft|roku|bravia|crkey|hbbtv|"
            r"android tv|googletv|netcast|viera|playstation|xbox",
            re.I,
        ),
    ),
    (
        "player",
        re.compile(
            r"\bvlc\b|libvlc|lavf|ffplay|mpv|gstreamer|exoplayer|applecoremedia|"
            r"stagefright|kodi|quicktime",
            re.I,
        ),
    ),
    ("mobile", re.compile(r"mobi|iphone|ipad|ipod|android|windows phone|opera mini", re.I)),
    ("browser", re.compile(r"mozilla|chrome|safari|firefox|edg/|opera", re.I)),
)


def user_agent_class(user_agent: str | None) -> str:
    """browser, mobile, tv, bot, headless, player (VLC, ffplay, native players) or other."""
    if not user_agent:
        return "other"
    for name, rule in _UA_RULES:
        if rule.search(user_agent):
            return name
    return "other"


def clean_region(value: str | None) -> str | None:
    if not value:
        return None
    region = value.strip()[:16]
    return region if re.fullmatch(r"[A-Za-z0-9_-]+", region) else None


#: A binding unused this long is forgotten (a player fetches its media playlist every few seconds, so
#: a session idle for half an hour has ended).
IDENTITY_IDLE_SECONDS = 30 * 60
#: At most this many bound sessions are kept; past it the least recently used ones are forgotten first,
#: so memory stays bounded whatever clients send (each entry is a few hundred bytes).
MAX_IDENTITIES = 200_000


class SessionIdentities:
    """(channel, session) -> verified user id, bounded in size and idle time; thread-safe.

    Only verified user ids enter here, never tokens. A lookup refreshes the binding, so a session that
    keeps playing stays signed in however long it lasts.
    """

    def __init__(
        self,
        *,
        idle_seconds: float = IDENTITY_IDLE_SECONDS,
        max_entries: int = MAX_IDENTITIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._bound: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def bind(self, channel_id: str, session_id: str, user_id: str) -> None:
        with self._lock:
            key = (channel_id, session_id)
            self._bound[key] = (user_id, self._clock())
            self._bound.move_to_end(key)
            while len(self._bound) > self._max:
                self._bound.popitem(last=False)

    def user_of(self, channel_id: str, session_id: str) -> str | None:
        """The session's user id (refreshing it), or None for an anonymous or forgotten session."""
        with self._lock:
            key = (channel_id, session_id)
            found = self._bound.get(key)
            if found is None:
                return None
            now = self._clock()
            if now - found[1] > self._idle:
                del self._bound[key]
                return None
            self._bound[key] = (found[0], now)
            self._bound.move_to_end(key)
            return found[0]

    def expire(self) -> int:
        """Forget idle bindings (oldest first, so the scan stops at the first live one); returns how many."""
        with self._lock:
            now, gone = self._clock(), 0
            while self._bound:
                key, (_, seen) = next(iter(self._bound.items()))
                if now - seen <= self._idle:
                    break
                del self._bound[key]
                gone += 1
            return gone

    def __len__(self) -> int:
        return len(self._bound)


@dataclass
class _Tally:
    bytes: int = 0
    requests: int = 0
    segments: int = 0
    user_agent_class: str = "other"
    region: str | None = None
    ip_hash: str | None = None
    user_id: str | None = None
    first: datetime | None = None
    last: datetime | None = None


class ViewerAggregator:
    """Thread-safe counters flushed by a daemon thread; `record` never touches the database."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self._sessions = sessions
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushed = 0
        self.identities = SessionIdentities()

    def record(
        self,
        *,
        channel_id: str,
        session_id: str,
        rendition: str,
        size: int,
        segment: bool,
        user_agent: str | None,
        region: str | None,
        ip_hash: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        key = (channel_id, session_id, rendition)
        user_id = self.identities.user_of(channel_id, session_id)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(
                    user_agent_class=user_agent_class(user_agent),
                    region=clean_region(region),
                    ip_hash=ip_hash,
                    first=now,
                )
            tally.bytes += size
            tally.requests += 1
            tally.segments += int(segment)
            tally.user_id = user_id or tally.user_id
            tally.last = now

    def flush(self) -> int:
        """Emit one heartbeat per (channel, session, rendition) seen since the last flush."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
        if not tallies:
            return 0
        envelopes = []
        for (channel_id, session_id, rendition), tally in tallies.items():
            assert tally.first is not None and tally.last is not None
            payload = ViewHeartbeat(
                session_id=session_id,
                rendition=rendition,
                bytes=tally.bytes,
                requests=tally.requests,
                segments=tally.segments,
                user_agent_class=tally.user_agent_class,
                region=tally.region,
                ip_hash=tally.ip_hash,
                window_start=tally.first,
                window_end=tally.last,
            )
            envelopes.append(
                Envelope.wrap(
                    payload, channel_id=channel_id, node_id=self.settings.node_id, user_id=tally.user_id
                )
            )
        try:
            with self._sessions.begin() as session:
                for env in envelopes:
                    enqueue(session, env)
        except Exception:
            with self._lock:  # put them back: the next round tries again
                for key, tally in tallies.items():
                    newer = self._tallies.get(key)
                    if newer is not None:
                        tally.bytes += newer.bytes
                        tally.requests += newer.requests
                        tally.segments += newer.segments
                        tally.user_id = newer.user_id or tally.user_id
                        tally.last = newer.last
                    self._tallies[key] = tally
            raise
        self.flushed += len(envelopes)
        return len(envelopes)

    def start(self) -> ViewerAggregator:
        self._thread = threading.Thread(target=self._run, name="view-heartbeats", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.settings.view_heartbeat_seconds):
            self.identities.expire()
            try:
                self.flush()
            except Exception as exc:
                log.warning("view heartbeats not flushed (%s: %s); retrying", type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        try:
            self.flush()
        except Exception as exc:
            log.warning("last view heartbeats lost at shutdown (%s: %s)", type(exc).__name__, exc)
