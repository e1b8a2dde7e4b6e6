"""Stream keys: made here, shown once, stored as a salted hash, compared in constant time, never logged.

A key is `live_` + 32 random bytes (URL-safe base64). OBS sends it as the RTMP stream name, so it must
be unguessable; the database keeps only `sha256(salt || key)` with a per-key random salt, and the short
`lookup` tag that finds the candidate row (see `ingest_node.ingest.models`). One channel has at most one
active key: creating a key revokes the previous one (rotation).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.ingest.models import StreamKey
from services.ids import new_id

KEY_PREFIX = "live_"
KEY_BYTES = 32
LOOKUP_CHARS = 16
#: anything shaped like a stream key, for redaction (also a key someone mistyped)
KEY_PATTERN = re.compile(r"live_[A-Za-z0-9_-]{8,}")
REDACTED = "live_<redacted>"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def lookup_tag(key: str) -> str:
    """Index tag of a key: domain-separated, unsalted, truncated SHA-256 (finds a row, proves nothing)."""
    return hashlib.sha256(b"efir-stream-key-lookup\x00" + key.encode()).hexdigest()[:LOOKUP_CHARS]


def digest(key: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


def well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 16 <= len(key) <= 128 and KEY_PATTERN.fullmatch(key) is not None


def issue_key(session: Session, channel_id: str) -> str:
    """Create a new key for `channel_id` in the caller's transaction, revoking the active one.

    Returns the key itself: the only moment it exists in clear.
    """
    revoke_keys(session, channel_id)
    key = generate_key()
    salt = secrets.token_hex(16)
    session.add(
        StreamKey(
            key_id=new_id(),
            channel_id=channel_id,
            lookup=lookup_tag(key),
            salt=salt,
            digest=digest(key, salt),
        )
    )
    return key


def revoke_keys(session: Session, channel_id: str) -> int:
    """Revoke the channel's active key(s); returns how many were active."""
    result = session.execute(
        sa.update(StreamKey)
        .where(StreamKey.channel_id == channel_id, StreamKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def channel_for_key(session: Session, key: str) -> str | None:
    """The channel whose ACTIVE key is `key`, else None (unknown, revoked, malformed)."""
    if not well_formed(key):
        return None
    candidates = session.execute(
        sa.select(StreamKey).where(StreamKey.lookup == lookup_tag(key), StreamKey.revoked_at.is_(None))
    ).scalars()
    found = None
    for row in candidates:
        if hmac.compare_digest(digest(key, row.salt), row.digest):
            found = row.channel_id
    return found


def redact(text: str) -> str:
    return KEY_PATTERN.sub(REDACTED, text)


class StreamKeyRedactor(logging.Filter):
    """Defence in depth: rewrites anything shaped like a stream key out of a log record.

    Efir's own code never logs a key; the filter also covers libraries (pyrtmp logs commands and
    stream names at DEBUG) and exception messages that may quote a URL.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "live_" in message:
            record.msg = redact(message)
            record.args = None
        return True
