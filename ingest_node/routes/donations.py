"""Donations: the money path's entry. Anyone may donate; the answer never depends on timing or retries.

POST commits the pending donation with its idempotency key, audit row and `donation.created` event
first, and only then asks the Payment Service for the payment, so a crash or an unreachable provider
never loses an acknowledged donation. GET is open to whoever holds the (unguessable) donation id.
Before that, the edge refuses blocked IPs and cards (403) and floods (429), applies the channel's
rules (422), and may hold the donation for review (`held`: card testing, a flagged donor, manual
approval): a held donation asks the provider for nothing until it is approved (routes/donation_review.py).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from ingest_node import ledger
from ingest_node.deps import MetricsDep, PaymentsDep, SessionDep, SettingsDep
from ingest_node.idempotency import Digest, request_digest
from ingest_node.models import Donation, DonationStatus
from ingest_node.money import challenges, donation_screen
from ingest_node.money.donation_rules import fingerprint
from ingest_node.money.edge_guard import DEVICE_HEADER, EdgeGuard, client_ip
from ingest_node.money.interactive import Refused
from ingest_node.routes.money_http import IdempotencyKeyDep, replay_stored
from ingest_node.schemas import DonationIn, DonationOut
from services.payments import PaymentRefused, PaymentRequest, PaymentServiceError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/donations", tags=["donations"])


def _replay(stored: ledger.StoredResponse, digest: Digest) -> JSONResponse:
    return replay_stored(stored.request_hash, stored.body, stored.status, digest)


@router.post("", status_code=status.HTTP_201_CREATED, responses={502: {"description": "provider down"}})
def create_donation(
    body: DonationIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    payments: PaymentsDep,
    metrics: MetricsDep,
    idempotency_key: IdempotencyKeyDep,
) -> JSONResponse:
    if not settings.donation_min_minor <= body.amount_minor <= settings.donation_max_minor:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"amount_minor must be between {settings.donation_min_minor} and {settings.donation_max_minor} "
            f"minor units",
        )
    guard: EdgeGuard = request.app.state.edge_guard
    ip = client_ip(
        request.client.host if request.client else None, request.headers.get("X-Forwarded-For"), settings
    )
    device = request.headers.get(DEVICE_HEADER) or None
    refusal = guard.blocked(ip, body.payment_token)
    if refusal is not None:
        log.warning("refused a donation to %s: %s", body.channel_id, refusal)
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    if not guard.exempt(ip):
        donor = (
            f"device:{fingerprint(device, settings)}"
            if device
            else f"card:{fingerprint(body.payment_token, settings)}"
        )
        wait = guard.retry_after(ip, donor, time.monotonic())
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many donation attempts; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
    with session.begin():
        screened = donation_screen.screen(session, settings, guard, body, ip=ip, device=device)
    if isinstance(screened, donation_screen.Refusal):
        raise HTTPException(screened.status, screened.detail)
    try:  # a challenge to count towards, a moment to mark (ingest_node/money/challenges.py)
        with session.begin():
            tag = challenges.check_tag(
                session,
                channel_id=body.channel_id,
                currency=body.currency,
                challenge_id=body.challenge_id,
                mark_moment=body.mark_moment,
            )
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    digest = request_digest(body)
    try:
        opened = ledger.open_donation(
            session,
            settings,
            idempotency_key,
            digest.value,
            body,
            held_reason=screened.held_reason,
            message=screened.message,
            extra=lambda s, d: s.add_all(
                [screened.edge_row(d.donation_id, d.channel_id, body.payment_token)]
                + ([tag.row(d.donation_id)] if tag is not None else [])
            ),
        )
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
    if screened.quote.fee_minor:
        created |= {"fee_minor": screened.quote.fee_minor, "charged_minor": screened.quote.charged_minor}
    metrics.donations_created.labels(currency=donation.currency).inc()
    if donation.status == DonationStatus.HELD:
        created["detail"] = "the donation is held for review; it is charged only once approved"
        ledger.remember_response(session, idempotency_key, status.HTTP_201_CREATED, created)
        return JSONResponse(created, status_code=status.HTTP_201_CREATED)
    payment_request = PaymentRequest(
        reference=donation.donation_id,
        amount_minor=screened.quote.charged_minor,
        currency=body.currency,
        description=f"Donation to {donation.channel_id}",
        payment_token=body.payment_token,
        callback_url=f"{settings.public_url.rstrip('/')}/api/v1/payments/webhook",
    )
    try:
        payment = payments.create_payment(payment_request)
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
