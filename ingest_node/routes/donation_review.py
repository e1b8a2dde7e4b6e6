"""The review queue of held donations: list, approve (the payment is asked for only now), reject (the
donation fails and is never charged, so it never alerts). Admin only for now; the channel owner later."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from ingest_node import ledger
from ingest_node.deps import AdminDep, PaymentsDep, SessionDep, SettingsDep
from ingest_node.models import Donation, DonationStatus
from ingest_node.money.donation_rules import DonationEdge
from services.money import Currency
from services.payments import PaymentRefused, PaymentRequest, PaymentServiceError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/channels", tags=["donation review"])


class HeldDonationOut(BaseModel):
    donation_id: str
    amount_minor: int
    fee_minor: int
    currency: Currency
    donor_name: str | None
    message: str
    held_reason: str | None
    moderation: str | None
    created_at: datetime


class ReviewOut(BaseModel):
    donation_id: str
    status: str
    detail: str


@router.get("/{channel_id}/donations/held")
def held_donations(channel_id: str, session: SessionDep, _: AdminDep) -> list[HeldDonationOut]:
    with session.begin():
        rows = session.execute(
            sa.select(Donation, DonationEdge)
            .join(DonationEdge, DonationEdge.donation_id == Donation.donation_id)
            .where(Donation.channel_id == channel_id, Donation.status == DonationStatus.HELD)
            .order_by(Donation.created_at)
        ).all()
        return [
            HeldDonationOut(
                donation_id=d.donation_id,
                amount_minor=d.amount_minor,
                fee_minor=e.fee_minor,
                currency=Currency(d.currency),
                donor_name=d.donor_name,
                message=d.message,
                held_reason=e.held_reason,
                moderation=e.moderation,
                created_at=d.created_at,
            )
            for d, e in rows
        ]


def _review(
    session: SessionDep, settings: SettingsDep, channel_id: str, donation_id: str, verdict: str, actor: str
) -> ledger.Reviewed:
    try:
        return ledger.review_held(session, settings, donation_id, channel_id, verdict, actor)
    except ledger.NotHeld as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except LookupError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"donation {donation_id!r} does not exist on channel {channel_id!r}"
        ) from None


@router.post("/{channel_id}/donations/{donation_id}/approve")
def approve_donation(
    channel_id: str,
    donation_id: str,
    session: SessionDep,
    settings: SettingsDep,
    payments: PaymentsDep,
    actor: AdminDep,
) -> ReviewOut:
    reviewed = _review(session, settings, channel_id, donation_id, "approve", actor)
    donation = reviewed.donation
    if reviewed.payment_token is None:  # held before this feature kept tokens: cannot be charged
        ledger.fail_released(session, settings, donation_id, "no payment method kept for the held donation")
        return ReviewOut(donation_id=donation_id, status="failed", detail="approved, but nothing to charge")
    request = PaymentRequest(
        reference=donation_id,
        amount_minor=reviewed.charged_minor,
        currency=Currency(donation.currency),
        description=f"Donation to {channel_id}",
        payment_token=reviewed.payment_token,
        callback_url=f"{settings.public_url.rstrip('/')}/api/v1/payments/webhook",
    )
    try:
        payment = payments.create_payment(request)
    except (PaymentServiceError, PaymentRefused) as exc:
        log.warning("approved donation %s could not be charged: %s", donation_id, exc)
        ledger.fail_released(session, settings, donation_id, str(exc))
        return ReviewOut(donation_id=donation_id, status="failed", detail=f"the payment failed: {exc}")
    ledger.attach_payment(session, donation_id, payment.payment_id)
    return ReviewOut(donation_id=donation_id, status="pending", detail="approved; the payment was requested")


@router.post("/{channel_id}/donations/{donation_id}/reject")
def reject_donation(
    channel_id: str, donation_id: str, session: SessionDep, settings: SettingsDep, actor: AdminDep
) -> ReviewOut:
    _review(session, settings, channel_id, donation_id, "reject", actor)
    return ReviewOut(donation_id=donation_id, status="failed", detail="rejected; nothing was charged")
