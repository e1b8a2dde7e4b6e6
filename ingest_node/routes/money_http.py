"""What the paid-action routes share: the Idempotency-Key header, replaying stored answers, and opening
a charge once per key (`open_once`: subscriptions, gift subscriptions, gifts, boosts, requests)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ingest_node.idempotency import Digest, request_digest
from ingest_node.money import charges
from ingest_node.money.models import MoneyCharge
from ingest_node.schemas import IDEMPOTENCY_KEY_PATTERN

REPLAY_HEADER = "Idempotent-Replayed"
T = TypeVar("T")
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


#: The validated Idempotency-Key of every money write route.
IdempotencyKeyDep = Annotated[str, Depends(idempotency_key)]


def replay(charge: MoneyCharge, digest: Digest) -> JSONResponse:
    """The stored answer of an earlier request with the same key (never a second charge)."""
    return replay_stored(charge.request_hash, charge.response_body, charge.response_status, digest)


def replay_stored(
    stored_hash: str | None, stored_body: str | None, stored_status: int | None, digest: Digest
) -> JSONResponse:
    """The answer an earlier request with this key got, for any write that keeps its own hash and
    answer: a different body is refused, an unfinished one is still being processed."""
    if not digest.matches(stored_hash):
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


def open_once(
    session: Session, key: str, body: BaseModel, opener: Callable[[str, str], T], **context: str
) -> T | JSONResponse:
    """The idempotent start of a paid action, before the provider is asked (`payments.submit`).

    Under `api:<key>`: the stored answer of an earlier request with the key (a replay, or 422 for
    another body), else `opener(stored_key, digest)` in one transaction, which adds the entity and its
    pending charge (and runs the kind's payer checks, whose exceptions reach the caller). When another
    request committed the same key first, its answer is replayed; any other conflict is a 409 to retry.
    `context` is what the path adds to the request (see `idempotency.request_digest`)."""
    stored_key, digest = f"api:{key}", request_digest(body, **context)
    try:
        with session.begin():
            previous = charges.by_key(session, stored_key)
            if previous is not None:
                return replay(previous, digest)
            return opener(stored_key, digest.value)
    except IntegrityError:  # a concurrent request won the key (or another unique row)
        session.rollback()
        with session.begin():
            previous = charges.by_key(session, stored_key)
        if previous is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "a concurrent request conflicted; retry") from None
        return replay(previous, digest)
