"""Sponsorships (admin only): finance records a sponsor's paid invoice for a channel, refunds it, lists them.

Both writes take an `Idempotency-Key` (`routes.money_http`): the same key and body replay the stored
answer (`Idempotent-Replayed: true`), the same key with another body is refused with 422. The body is
validated strictly (money is a strict integer of minor units, never a float or a string), the business
rules (`ingest_node.money.sponsorships`) answer 404 / 409 / 422 with a `detail` that says what to fix.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy.exc import IntegrityError

from ingest_node.deps import AdminDep, SessionDep, SettingsDep
from ingest_node.idempotency import request_digest
from ingest_node.money import sponsorships as sp
from ingest_node.routes.money_http import IdempotencyKeyDep, replay_stored
from ingest_node.schemas import CHANNEL_ID_PATTERN
from services.money import Currency

router = APIRouter(prefix="/api/v1", tags=["sponsorships"])
ChannelId = Annotated[str, Path(pattern=CHANNEL_ID_PATTERN)]
SponsorshipId = Annotated[str, Path(min_length=1, max_length=36)]


def _clean(value: str) -> str:
    """Trimmed, non-empty, without control characters: these strings reach invoices, logs and pages."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


Text200 = Annotated[StrictStr, Field(min_length=1, max_length=200), AfterValidator(_clean)]
Person = Annotated[
    StrictStr | None,
    Field(max_length=100, description="Who in finance did it (recorded with the admin actor)."),
    AfterValidator(lambda v: None if v is None else _clean(v)),
]


class SponsorshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sponsor_name: Text200
    title: Annotated[Text200, Field(description="What the integration is, as on the invoice.")]
    amount_minor: Annotated[
        StrictInt, Field(gt=0, le=sp.MAX_AMOUNT_MINOR, description="What the sponsor paid, in minor units.")
    ]
    currency: Currency
    payment_reference: Annotated[
        StrictStr,
        Field(min_length=1, max_length=128, description="The invoice or bank reference; unique per channel."),
        AfterValidator(_clean),
    ]
    settled_at: Annotated[
        AwareDatetime | None,
        Field(description="When the bank credited the payment (not in the future); default: now."),
    ] = None
    recorded_by: Person = None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[StrictStr, Field(min_length=1, max_length=300), AfterValidator(_clean)]
    refunded_by: Person = None


class SponsorshipOut(BaseModel):
    """A sponsorship and the split of its amount (90% to the streamer, half-up; the rest is the fee)."""

    sponsorship_id: str
    channel_id: str
    sponsor_name: str
    title: str
    amount_minor: int
    currency: Currency
    payment_reference: str
    status: sp.SponsorshipStatus
    settled_at: datetime
    created_at: datetime
    created_by: str
    refunded_at: datetime | None
    refunded_by: str | None
    refund_reason: str | None
    streamer_share_minor: int
    platform_fee_minor: int


def _actor(actor: str, person: str | None) -> str:
    return actor if person is None else f"{actor}:{person}"


@router.post(
    "/channels/{channel_id}/sponsorships",
    status_code=status.HTTP_201_CREATED,
    response_model=SponsorshipOut,
    responses={404: {"description": "unknown channel"}, 409: {"description": "reference already recorded"}},
)
def record_sponsorship(
    channel_id: ChannelId,
    body: SponsorshipIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: AdminDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    """Record a sponsor's paid invoice; `sponsorship.paid` leaves through the outbox with its commit."""
    digest = request_digest(body, channel_id=channel_id)
    try:
        with session.begin():
            previous = sp.by_key(session, key)
            if previous is not None:
                return replay_stored(
                    previous.request_hash, previous.response_body, status.HTTP_201_CREATED, digest
                )
            row = sp.record(
                session,
                settings,
                channel_id=channel_id,
                sponsor_name=body.sponsor_name,
                title=body.title,
                amount_minor=body.amount_minor,
                currency=body.currency,
                payment_reference=body.payment_reference,
                settled_at=body.settled_at,
                actor=_actor(actor, body.recorded_by),
                created_by=body.recorded_by or actor,
                key=key,
                digest=digest.value,
            )
            answer = json.loads(row.response_body or "{}")
    except sp.UnknownChannel as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except sp.DuplicateReference as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except sp.InvalidSponsorship as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except IntegrityError:  # a concurrent request with the same key or the same reference won
        session.rollback()
        with session.begin():
            previous = sp.by_key(session, key)
            if previous is None:
                if sp.by_reference(session, channel_id, body.payment_reference) is not None:
                    raise HTTPException(
                        status.HTTP_409_CONFLICT,
                        f"channel {channel_id!r} already has a sponsorship with payment reference "
                        f"{body.payment_reference!r}",
                    ) from None
                raise
        return replay_stored(previous.request_hash, previous.response_body, status.HTTP_201_CREATED, digest)
    return JSONResponse(answer, status_code=status.HTTP_201_CREATED)


@router.post(
    "/sponsorships/{sponsorship_id}/refund",
    response_model=SponsorshipOut,
    responses={404: {"description": "unknown sponsorship"}, 409: {"description": "already refunded"}},
)
def refund_sponsorship(
    sponsorship_id: SponsorshipId,
    body: RefundIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: AdminDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    """Refund a paid sponsorship; `sponsorship.refunded` repeats its settlement time and amount."""
    digest = request_digest(body, sponsorship_id=sponsorship_id)
    try:
        with session.begin():
            previous = sp.by_refund_key(session, key)
            if previous is not None:
                return replay_stored(previous.refund_request_hash, previous.refund_response_body, 200, digest)
            row = sp.refund(
                session,
                settings,
                sponsorship_id,
                reason=body.reason,
                actor=_actor(actor, body.refunded_by),
                refunded_by=body.refunded_by or actor,
                key=key,
                digest=digest.value,
            )
            answer = json.loads(row.refund_response_body or "{}")
    except sp.UnknownSponsorship as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except sp.AlreadyRefunded as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except IntegrityError:  # the same key, used concurrently (the refund key is unique)
        session.rollback()
        with session.begin():
            previous = sp.by_refund_key(session, key)
        if previous is None:
            raise
        return replay_stored(previous.refund_request_hash, previous.refund_response_body, 200, digest)
    return JSONResponse(answer)


# The GETs answer `view()` as it is, like the writes (whose answers are stored and replayed verbatim), so a
# sponsorship reads the same from every endpoint; `response_model` documents the shape.
@router.get("/channels/{channel_id}/sponsorships", response_model=list[SponsorshipOut])
def list_sponsorships(channel_id: ChannelId, session: SessionDep, actor: AdminDep) -> JSONResponse:
    """The channel's sponsorships, latest settlement first."""
    try:
        rows = sp.for_channel(session, channel_id)
    except sp.UnknownChannel as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return JSONResponse([sp.view(row) for row in rows])


@router.get("/sponsorships/{sponsorship_id}", response_model=SponsorshipOut)
def get_sponsorship(sponsorship_id: SponsorshipId, session: SessionDep, actor: AdminDep) -> JSONResponse:
    row = session.get(sp.Sponsorship, sponsorship_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sponsorship {sponsorship_id!r} does not exist")
    return JSONResponse(sp.view(row))
