"""The request hash stored with an Idempotency-Key, so a reused key with another request is refused.

The hash is over what the client SENT (`model_dump(exclude_unset=True)`), not over the parsed model
with its defaults: a field added later with a default (a donation's `tts: bool = True`) then never
changes the hash of a request that does not send it, so a retry across that upgrade still replays the
stored answer. A request that sends the field, even with the default's value, is another request.

Keys stored before this rule hold the hash of the full parsed model (`legacy`); a replay accepts that
too, so a retry in flight across the deployment that introduced this rule is not refused. It can go
once no client retries a key stored before then.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


def request_hash(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `body` (sorted keys, no spaces)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Digest:
    """`value` is stored with a new key; `legacy` is what this request hashed to before this rule."""

    value: str
    legacy: str

    def matches(self, stored: str | None) -> bool:
        return stored is not None and stored in (self.value, self.legacy)


def request_digest(body: BaseModel, **context: str) -> Digest:
    """The digest of a parsed request body; `context` adds what the path names (e.g. the subscription
    id of `/subscriptions/{id}/tier`), which the body does not carry."""
    sent = body.model_dump(mode="json", exclude_unset=True)
    parsed = body.model_dump(mode="json")
    return Digest(request_hash({**context, **sent}), request_hash({**context, **parsed}))
