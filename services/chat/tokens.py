"""Chat user tokens: who a socket speaks for, signed by the node (or the platform's identity service).

The hub depends only on the `TokenVerifier` protocol; `HmacTokens` is the node's own scheme:
`base64url(json claims) "." base64url(HMAC-SHA256(secret, claims part))`. A token says who the user is,
never what they may do: roles live on the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

MAX_TOKEN_CHARS = 2048


class TokenError(ValueError):
    """The token is malformed, forged or expired; `reason` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UserClaims:
    user_id: str
    display_name: str
    expires_at: int  # unix seconds


class TokenVerifier(Protocol):
    """What the hub needs from an identity service: a token in, verified claims out (or TokenError)."""

    def verify(self, token: str) -> UserClaims: ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class HmacTokens:
    """Issues and verifies the node's HMAC-signed tokens; the clock is injectable for tests."""

    def __init__(self, secret: SecretStr, clock: Callable[[], float] = time.time) -> None:
        if not secret.get_secret_value():
            raise ValueError("the chat token secret is empty")
        self._key = secret.get_secret_value().encode()
        self._clock = clock

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def issue(self, user_id: str, display_name: str, ttl_seconds: int) -> tuple[str, UserClaims]:
        claims = UserClaims(user_id, display_name, int(self._clock()) + ttl_seconds)
        body = _b64(
            json.dumps(
                {"sub": claims.user_id, "name": claims.display_name, "exp": claims.expires_at},
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )
        return f"{body}.{self._sign(body)}", claims

    def verify(self, token: str) -> UserClaims:
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenError("malformed token")
        body, signature = token.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise TokenError("bad token signature")
        try:
            data = json.loads(_unb64(body))
            claims = UserClaims(str(data["sub"]), str(data["name"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError("malformed token claims") from None
        if claims.expires_at <= self._clock():
            raise TokenError("token expired")
        return claims
