"""A small client of the platform's social service: who a viewer's friends are.

The chat marks messages from a viewer's friends (`"friend": true` on that viewer's socket only). The
social service is outside Efir; its contract (docs/contracts.md, "Social service"):

    GET {EFIR_CHAT_SOCIAL_URL}/v1/users/{user_id}/friends
    Authorization: Bearer {EFIR_CHAT_SOCIAL_TOKEN}
    200 {"user_id": "...", "friends": ["id", ...]}     404: the user is unknown (no friends)

Friends are a nicety, never a reason for chat to fail: a timeout, an error status, a malformed body or
no configured URL all mean "no highlighting" for that viewer, logged without the token. Answers are
cached per user (`EFIR_CHAT_FRIENDS_CACHE_SECONDS`), failures for a shorter while so a sick service is
not hammered by every join.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import httpx

from services.settings import Settings

log = logging.getLogger(__name__)

MAX_FRIENDS = 5000  # a larger list is cut: the flag is a highlight, not an access rule
FAILURE_CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000


class FriendsClient:
    """One per node; `friends_of` never raises."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = (settings.chat_social_url or "").rstrip("/")
        self.token = settings.chat_social_token.get_secret_value()
        self.timeout = settings.chat_social_timeout_seconds
        self.ttl = settings.chat_friends_cache_seconds
        self._transport = transport
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self.requests = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self.base)

    async def friends_of(self, user_id: str) -> frozenset[str]:
        if not self.enabled:
            return frozenset()
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        friends, ok = await self._fetch(user_id)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()  # crude but bounded; entries are cheap to fetch again
        self._cache[user_id] = (now + (self.ttl if ok else FAILURE_CACHE_SECONDS), friends)
        return friends

    async def _fetch(self, user_id: str) -> tuple[frozenset[str], bool]:
        self.requests += 1
        url = f"{self.base}/v1/users/{quote(user_id, safe='')}/friends"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as http:
                answer = await http.get(url, headers={"Authorization": f"Bearer {self.token}"})
            if answer.status_code == 404:
                return frozenset(), True
            answer.raise_for_status()
            body = answer.json()
            ids = body.get("friends") if isinstance(body, dict) else None
            if not isinstance(ids, list):
                raise ValueError("no `friends` list in the answer")
            return frozenset(str(i)[:128] for i in ids[:MAX_FRIENDS] if isinstance(i, str | int)), True
        except Exception as exc:  # any failure: no highlighting, chat goes on
            self.failures += 1
            log.warning("social service: friends of a user unavailable (%s: %s)", type(exc).__name__, exc)
            return frozenset(), False
