"""Donations: the money path's entry. Anyone may donate; the answer never depends on timing or retries.

POST commits the pending donation with its idempotency key, audit row and `donation.created` event
first, and only then asks the Payment Service for the payment, so a crash or an unreachable provider
never loses an acknowledged donation. GET is open to whoever holds the (unguessable) donation id.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from ingest_node import ledger
from ingest_node.deps import MetricsDep, PaymentsDep, SessionDep, SettingsDep
from ingest_node.models import Donation
from ingest_node.schemas import IDEMPOTENCY_KEY_PATTERN, DonationIn, DonationOut
from services.payments import PaymentRefused, PaymentRequest, PaymentServiceError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/donations", tags=["donations"])
REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def _replay(stored: ledger.StoredResponse, digest: str) -> JSONResponse:
    if stored.request_hash != digest:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was already used with a different request body",
        )
    if stored.status is None or stored.body is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
    return JSONResponse(stored.body, status_code=stored.status, headers={REPLAY_HEADER: "true"})


@router.post("", status_code=status.HTTP_201_CREATED, responses={502: {"description": "provider down"}})
def create_donation(
    body: DonationIn,
    session: SessionDep,
    settings: SettingsDep,
    payments: PaymentsDep,
    metrics: MetricsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    if idempotency_key is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the Idempotency-Key header is required")
    if not _KEY.fullmatch(idempotency_key):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "Idempotency-Key must be 8 to 128 printable characters without spaces",
        )
    if not settings.donation_min_minor <= body.amount_minor <= settings.donation_max_minor:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"amount_minor must be between {settings.donation_min_minor} and {settings.donation_max_minor} "
            f"minor units",
        )
    digest = ledger.request_hash(body)
    try:
        opened = ledger.open_donation(session, settings, idempotency_key, digest, body)
    except ledger.UnknownChannel:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"channel {body.channel_id!r} does not exist"
        ) from None
    except IntegrityError:
        # Another request with the same key committed first: answer what it stored.
        session.rollback()
        with session.begin():
            stored = ledger.stored_response(session, idempotency_key)
        if stored is None:
            raise
        return _replay(stored, digest)
    if isinstance(opened, ledger.StoredResponse):
        return _replay(opened, digest)

    donation, created = opened.donation, opened.response.model_dump(mode="json")
    metrics.donations_created.labels(currency=donation.currency).inc()
    request = PaymentRequest(
        reference=donation.donation_id,
        amount_minor=donation.amount_minor,
        currency=body.currency,
        description=f"Donation to {donation.channel_id}",
        payment_token=body.payment_token,
        callback_url=f"{settings.public_url.rstrip('/')}/api/v1/payments/webhook",
    )
    try:
        payment = payments.create_payment(request)
    except PaymentServiceError as exc:
        log.warning("donation %s failed: %s", donation.donation_id, exc)
        detail = (
            "the payment service is unavailable; the donation was not charged. Try again later "
            "with a new Idempotency-Key"
        )
        ledger.fail_unsent(session, settings, idempotency_key, donation.donation_id, str(exc), 502, detail)
        return JSONResponse({"detail": detail, "donation_id": donation.donation_id}, status_code=502)
    except PaymentRefused as exc:
        detail = f"the payment was refused: {exc}"
        ledger.fail_unsent(session, settings, idempotency_key, donation.donation_id, str(exc), 402, detail)
        return JSONResponse({"detail": detail, "donation_id": donation.donation_id}, status_code=402)
    ledger.record_payment(session, idempotency_key, donation.donation_id, payment.payment_id, created)
    return JSONResponse(created, status_code=status.HTTP_201_CREATED)


@router.get("/{donation_id}")
def get_donation(donation_id: str, session: SessionDep) -> DonationOut:
    donation = session.get(Donation, donation_id)
    if donation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"donation {donation_id!r} does not exist")
    return DonationOut.model_validate(donation, from_attributes=True)
