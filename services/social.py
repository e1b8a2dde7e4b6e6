"""A batch client of the platform's social service: the friends of many viewers at once.

The social service is outside Efir. The chat asks it for one viewer at a time while they join
(`ingest_node.chat.friends`); the `social_graph` asset asks it for every viewer active in the
recommendations' window, once a day. Same contract (docs/contracts.md, "Social service"):

    GET {EFIR_CHAT_SOCIAL_URL}/v1/users/{user_id}/friends
    Authorization: Bearer {EFIR_CHAT_SOCIAL_TOKEN}
    200 {"user_id": "...", "friends": ["id", ...]}     404: the user is unknown (no friends)

A failing viewer (timeout, error status, malformed body) is counted and skipped, never fatal: a
recommendation blend without one viewer's friends is still a recommendation. Requests run `CONCURRENCY`
at a time over one pooled connection set, so a daily run of tens of thousands of viewers takes minutes
without flooding the service. The token is kept as a secret and never logged; a failure is logged by
kind and status only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from services.settings import Settings

log = logging.getLogger(__name__)

#: The mart written by `assets.social` (`MARTS/social_graph/date=.../part.parquet`): (user_id, friend_id).
SOCIAL_GRAPH_MART = "social_graph"
#: Requests in flight at once: bounds the load a daily run puts on the social service.
CONCURRENCY = 8
#: A longer friends list is cut (as the chat does): recommendations use a share of friends, so the first
#: few thousand say as much as all of them.
MAX_FRIENDS = 5000
#: Longest id kept (the node's user ids are far shorter); a longer one is cut, not refused.
MAX_ID_CHARS = 128


@dataclass
class FriendsBatch:
    """What one batch fetched: each asked viewer's friends (unknown users have none), and the tally."""

    friends: dict[str, frozenset[str]] = field(default_factory=dict)
    asked: int = 0
    unknown: int = 0  # 404: the service does not know the viewer
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # kind ("timeout", "status 500", ...) -> count


class SocialClient:
    """Synchronous, for batch jobs; `friends_of_many` never raises for one viewer's failure."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        timeout: float = 5.0,
        concurrency: int = CONCURRENCY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.concurrency = concurrency
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> SocialClient | None:
        """The client of the configured service, or None when no social URL is configured."""
        if not settings.chat_social_url:
            return None
        return cls(
            settings.chat_social_url,
            settings.chat_social_token,
            timeout=settings.social_graph_timeout_seconds,
        )

    def __repr__(self) -> str:  # never the token
        return f"SocialClient({self.base!r}, concurrency={self.concurrency})"

    def friends_of_many(self, user_ids: Iterable[str]) -> FriendsBatch:
        """Friends of each viewer (each asked once, in order); failures tallied in the batch."""
        users = list(dict.fromkeys(user_ids))
        batch = FriendsBatch(asked=len(users))
        if not users:
            return batch
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with (
            httpx.Client(
                timeout=self.timeout, headers=headers, limits=limits, transport=self._transport
            ) as http,
            ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="social") as pool,
        ):
            for user, (friends, error) in zip(
                users, pool.map(lambda u: self._fetch(http, u), users), strict=True
            ):
                if error is None:
                    batch.friends[user] = friends
                elif error == "unknown":
                    batch.unknown += 1
                    batch.friends[user] = frozenset()
                else:
                    batch.failed += 1
                    batch.errors[error] += 1
        if batch.failed:
            log.warning(
                "social service: friends of %d of %d viewers unavailable (%s)",
                batch.failed,
                batch.asked,
                ", ".join(f"{kind}: {n}" for kind, n in sorted(batch.errors.items())),
            )
        return batch

    def _fetch(self, http: httpx.Client, user_id: str) -> tuple[frozenset[str], str | None]:
        """(friends, None) on an answer; (empty, "unknown") on 404; (empty, kind of failure) otherwise."""
        url = f"{self.base}/v1/users/{quote(user_id, safe='')}/friends"
        try:
            answer = http.get(url)
        except httpx.TimeoutException:
            return frozenset(), "timeout"
        except httpx.HTTPError as exc:
            return frozenset(), type(exc).__name__
        if answer.status_code == 404:
            return frozenset(), "unknown"
        if answer.status_code != 200:
            return frozenset(), f"status {answer.status_code}"
        try:
            body = answer.json()
        except ValueError:
            return frozenset(), "malformed"
        ids = body.get("friends") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return frozenset(), "malformed"
        friends = frozenset(str(i)[:MAX_ID_CHARS] for i in ids[:MAX_FRIENDS] if isinstance(i, str | int))
        return friends - {user_id}, None
