"""What the subscription and gift routes share: the Idempotency-Key header and replaying stored answers."""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import Header, HTTPException, status
from fastapi.responses import JSONResponse

from ingest_node.money.models import MoneyCharge
from ingest_node.schemas import IDEMPOTENCY_KEY_PATTERN

REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def idempotency_key(key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> str:
    if key is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the Idempotency-Key header is required")
    if not _KEY.fullmatch(key):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "Idempotency-Key must be 8 to 128 printable characters without spaces",
        )
    return key


def replay(charge: MoneyCharge, digest: str) -> JSONResponse:
    """The stored answer of an earlier request with the same key (never a second charge)."""
    return replay_stored(charge.request_hash, charge.response_body, charge.response_status, digest)


def replay_stored(
    stored_hash: str | None, stored_body: str | None, stored_status: int | None, digest: str
) -> JSONResponse:
    """The answer an earlier request with this key got, for any write that keeps its own hash and
    answer: a different body is refused, an unfinished one is still being processed."""
    if stored_hash != digest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was already used with a different request body",
        )
    if stored_status is None or stored_body is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
    return JSONResponse(json.loads(stored_body), status_code=stored_status, headers={REPLAY_HEADER: "true"})
