"""Every change of a donation's state, each in ONE transaction with its audit row and outbox event.

The routes stay thin: they validate, call one function here, and turn its outcome into HTTP. Keeping
the state machine in one place makes the rule visible: pending → succeeded | failed,
succeeded → refunded | charged_back, nothing else (the provider's part of it is
`payment_webhooks.PAYMENT_TRANSITIONS`, shared with subscription and gift charges; `DonationPayments`
is the donation's side of that dispatcher).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node import payment_webhooks
from ingest_node.audit import audit
from ingest_node.models import Channel, Donation, DonationStatus, IdempotencyKey, WebhookEventRecord, utcnow
from ingest_node.money import donation_rules
from ingest_node.outbox import enqueue
from ingest_node.payment_webhooks import Found, WebhookOutcome
from ingest_node.schemas import DonationCreatedOut, DonationIn
from services.events import (
    ChargebackReceived,
    DonationChargedBack,
    DonationCreated,
    DonationFailed,
    DonationHeld,
    DonationProcessed,
    DonationRefunded,
    Envelope,
    Payload,
)
from services.ids import new_id
from services.money import Currency
from services.payments import WebhookData, WebhookEvent
from services.revenue import RevenueSource, split_for
from services.settings import Settings

API_ACTOR = "api"
PROVIDER_ACTOR = "payment-service"

# The provider's transitions (pending → succeeded | failed, succeeded → refunded | charged_back) are
# `payment_webhooks.PAYMENT_TRANSITIONS`, shared with subscription and gift charges.
# Review of a held donation (not a provider event): approval asks for the payment, rejection fails it.
REVIEW_TRANSITIONS: dict[tuple[str, str], DonationStatus] = {
    (DonationStatus.HELD, "approve"): DonationStatus.PENDING,
    (DonationStatus.HELD, "reject"): DonationStatus.FAILED,
}
# What the streamer is credited with in each state (the audit log's amounts before/after).
CREDITED = {DonationStatus.SUCCEEDED}


class UnknownChannel(LookupError):
    pass


@dataclass(frozen=True)
class StoredResponse:
    """An idempotency record's answer; `status is None` while the first request is still running."""

    status: int | None
    body: str | None  # the stored JSON, replayed as it was
    request_hash: str


@dataclass(frozen=True)
class Opened:
    donation: Donation
    response: DonationCreatedOut


def stored_response(session: Session, key: str) -> StoredResponse | None:
    record = session.get(IdempotencyKey, key, populate_existing=True)
    if record is None:
        return None
    return StoredResponse(record.response_status, record.response_body, record.request_hash)


def open_donation(
    session: Session,
    settings: Settings,
    key: str,
    digest: str,
    body: DonationIn,
    *,
    held_reason: str | None = None,
    message: str | None = None,
    extra: Callable[[Session, Donation], None] | None = None,
) -> Opened | StoredResponse:
    """Record a pending donation, its idempotency key, audit row and `donation.created` in one transaction.

    Returns the stored response instead when the key was seen before. A concurrent request with the
    same key loses on the key's primary key (IntegrityError, raised to the caller after rollback).
    With `held_reason` the donation is `held` for review instead (and `donation.held` follows);
    `message` replaces the donor's (a moderated one); `extra` adds rows to the same transaction.
    """
    with session.begin():
        previous = stored_response(session, key)
        if previous is not None:
            return previous
        if session.get(Channel, body.channel_id) is None:
            raise UnknownChannel(body.channel_id)
        now = utcnow()
        donation = Donation(
            donation_id=new_id(),
            channel_id=body.channel_id,
            amount_minor=body.amount_minor,
            currency=body.currency.value,
            message=body.message if message is None else message,
            donor_name=body.donor_name,
            tts=body.tts,
            status=DonationStatus.HELD if held_reason else DonationStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        session.add(donation)
        session.flush()
        session.add(IdempotencyKey(key=key, request_hash=digest, donation_id=donation.donation_id))
        if extra is not None:
            extra(session, donation)
        audit(
            session,
            actor=API_ACTOR,
            action="donation.created",
            entity=f"donation:{donation.donation_id}",
            currency=donation.currency,
            amount_before=None,
            amount_after=0,
            status_after=donation.status,
        )
        _emit(
            session,
            settings,
            donation,
            DonationCreated(
                donation_id=donation.donation_id,
                amount_minor=donation.amount_minor,
                currency=Currency(donation.currency),
                donor_name=donation.donor_name,
                message=donation.message,
                tts=donation.tts,
            ),
        )
        if held_reason:
            _emit(session, settings, donation, _payload(donation, DonationStatus.HELD, held_reason))
    response = DonationCreatedOut(
        donation_id=donation.donation_id,
        status=donation.status,
        channel_id=donation.channel_id,
        amount_minor=donation.amount_minor,
        currency=Currency(donation.currency),
        created_at=donation.created_at,
    )
    return Opened(donation, response)


def record_payment(
    session: Session, key: str, donation_id: str, payment_id: str, response: dict[str, Any]
) -> None:
    """The provider took the payment: remember its id and the answer replays will get."""
    with session.begin():
        donation = _locked(session, donation_id)
        if donation.provider_payment_id is None:
            donation.provider_payment_id = payment_id
        _store_response(session, key, 201, response)


def remember_response(session: Session, key: str, status: int, response: dict[str, Any]) -> None:
    """The answer replays of `key` get, for a donation that asks the provider nothing yet (held)."""
    with session.begin():
        _store_response(session, key, status, response)


def fail_unsent(
    session: Session, settings: Settings, key: str, donation_id: str, reason: str, status: int, detail: str
) -> None:
    """The provider never took the payment: the donation fails (with `donation.failed`), the key
    remembers the error so a retry with it answers the same."""
    with session.begin():
        donation = _locked(session, donation_id)
        if donation.status == DonationStatus.PENDING:
            _transition(session, settings, donation, DonationStatus.FAILED, actor=API_ACTOR, reason=reason)
        _store_response(session, key, status, {"detail": detail, "donation_id": donation_id})


class DonationPayments:
    """Donations as a `payment_webhooks.PaymentKind`: found by the reference (the donation id) or, for a
    webhook that names only the provider's id, by that; charged the amount plus any fee the donor covered."""

    noun = "donation"

    def seen(self, session: Session, webhook_id: str) -> bool:
        return session.get(WebhookEventRecord, webhook_id) is not None

    def find(self, session: Session, data: WebhookData) -> Found | None:
        donation = session.execute(
            sa.select(Donation).where(Donation.donation_id == data.reference).with_for_update()
        ).scalar_one_or_none()
        if donation is None:
            donation = session.execute(
                sa.select(Donation).where(Donation.provider_payment_id == data.payment_id).with_for_update()
            ).scalar_one_or_none()
        if donation is None:
            return None
        charged = donation_rules.charged_amount(session, donation.donation_id, donation.amount_minor)
        return Found(
            donation,
            donation.donation_id,
            donation.status,
            donation.provider_payment_id,
            charged,
            donation.currency,
        )

    def transition(
        self, session: Session, settings: Settings, found: Found, target: str, event: WebhookEvent
    ) -> None:
        donation: Donation = found.row
        data = event.data
        status = DonationStatus(target)
        donation.provider_payment_id = data.payment_id
        settled_at = (
            datetime.fromtimestamp(event.created, UTC) if status == DonationStatus.SUCCEEDED else None
        )
        _transition(
            session,
            settings,
            donation,
            status,
            actor=PROVIDER_ACTOR,
            reason=data.reason,
            settled_at=settled_at,
        )
        if status == DonationStatus.CHARGED_BACK:
            donation_rules.flag_donor(session, donation.donation_id, data.reason or "chargeback")
            _emit(session, settings, donation, _chargeback(session, donation, data.reason))
        session.add(
            WebhookEventRecord(webhook_id=event.id, event_type=event.type, donation_id=donation.donation_id)
        )


DONATIONS = DonationPayments()


def apply_webhook(session: Session, settings: Settings, event: WebhookEvent) -> WebhookOutcome:
    """Apply one provider webhook about a donation (the shared dispatcher, the donation's transitions)."""
    return payment_webhooks.apply_webhook(session, settings, DONATIONS, event)


class NotHeld(LookupError):
    """The donation is not (or no longer) held for review."""


@dataclass(frozen=True)
class Reviewed:
    donation: Donation
    payment_token: str | None  # what the approved donation is charged with (None once rejected)
    charged_minor: int


def review_held(
    session: Session, settings: Settings, donation_id: str, channel_id: str, verdict: str, actor: str
) -> Reviewed:
    """Approve (→ pending, the caller then asks for the payment) or reject (→ failed) a held donation;
    the held payment token leaves the database either way."""
    with session.begin():
        donation = session.execute(
            sa.select(Donation)
            .where(Donation.donation_id == donation_id, Donation.channel_id == channel_id)
            .with_for_update()
        ).scalar_one_or_none()
        if donation is None:
            raise LookupError(donation_id)
        target = REVIEW_TRANSITIONS.get((DonationStatus(donation.status), verdict))
        if target is None:
            raise NotHeld(f"donation {donation_id} is {donation.status}, not held")
        reason = f"rejected in review by {actor}" if target == DonationStatus.FAILED else ""
        _transition(session, settings, donation, target, actor=actor, reason=reason)
        edge = session.get(donation_rules.DonationEdge, donation_id)
        token, charged = None, donation.amount_minor
        if edge is not None:
            token, charged = edge.held_token, edge.charged_minor
            edge.held_token = None
            edge.review = "approved" if target == DonationStatus.PENDING else "rejected"
    return Reviewed(donation, token if target == DonationStatus.PENDING else None, charged)


def attach_payment(session: Session, donation_id: str, payment_id: str) -> None:
    """The provider took the payment of an approved donation: remember its id."""
    with session.begin():
        donation = _locked(session, donation_id)
        if donation.provider_payment_id is None:
            donation.provider_payment_id = payment_id


def fail_released(session: Session, settings: Settings, donation_id: str, reason: str) -> None:
    """The provider refused or was down when an approved donation was charged: it fails."""
    with session.begin():
        donation = _locked(session, donation_id)
        if donation.status == DonationStatus.PENDING:
            _transition(session, settings, donation, DonationStatus.FAILED, actor=API_ACTOR, reason=reason)


# ---- internals -------------------------------------------------------------------------------------


def _locked(session: Session, donation_id: str) -> Donation:
    return session.execute(
        sa.select(Donation).where(Donation.donation_id == donation_id).with_for_update()
    ).scalar_one()


def _store_response(session: Session, key: str, status: int, body: dict[str, Any]) -> None:
    record = session.get(IdempotencyKey, key)
    assert record is not None, "the key was stored with the donation"
    record.response_status = status
    record.response_body = json.dumps(body)


def _transition(
    session: Session,
    settings: Settings,
    donation: Donation,
    target: DonationStatus,
    *,
    actor: str,
    reason: str = "",
    settled_at: datetime | None = None,
) -> None:
    before = DonationStatus(donation.status)
    now = utcnow()
    if target == DonationStatus.SUCCEEDED:
        donation.settled_at = settled_at or now
    if target == DonationStatus.FAILED:
        donation.failure_reason = (reason or "declined")[:300]
    donation.status = target
    donation.updated_at = now
    audit(
        session,
        actor=actor,
        action=f"donation.{target}",
        entity=f"donation:{donation.donation_id}",
        currency=donation.currency,
        amount_before=donation.amount_minor if before in CREDITED else 0,
        amount_after=donation.amount_minor if target in CREDITED else 0,
        status_before=before,
        status_after=target,
    )
    if before == DonationStatus.HELD and target == DonationStatus.PENDING:
        return  # approval: audited; the payment's own events follow
    _emit(session, settings, donation, _payload(donation, target, reason, session))


def _chargeback(session: Session, donation: Donation, reason: str) -> ChargebackReceived:
    assert donation.provider_payment_id is not None and donation.settled_at is not None
    return ChargebackReceived(
        donation_id=donation.donation_id,
        payment_id=donation.provider_payment_id,
        amount_minor=donation.amount_minor,
        currency=Currency(donation.currency),
        settled_at=donation.settled_at,
        reason=reason,
        **fees(session, donation),
    )


def fees(session: Session, donation: Donation) -> dict[str, int]:
    """The split of the donation's amount (85% to the streamer by the one rule in services.revenue) and
    the fee its donor covered on top, as stamped on settled and reversal events: the lake then holds
    what the provider charged (amount + donor fee) and what each side got, without re-deriving them."""
    split = split_for(RevenueSource.DONATION, donation.amount_minor)
    charged = donation_rules.charged_amount(session, donation.donation_id, donation.amount_minor)
    return {
        "streamer_share_minor": split.streamer_minor,
        "platform_fee_minor": split.platform_minor,
        "donor_fee_minor": charged - donation.amount_minor,
    }


def _payload(
    donation: Donation, target: DonationStatus, reason: str, session: Session | None = None
) -> Payload:
    currency = Currency(donation.currency)
    common: dict[str, Any] = {
        "donation_id": donation.donation_id,
        "amount_minor": donation.amount_minor,
        "currency": currency,
    }
    if target == DonationStatus.FAILED:
        return DonationFailed(**common, reason=(reason or "declined"))
    if target == DonationStatus.HELD:
        return DonationHeld(**common, reason=reason)
    assert donation.provider_payment_id is not None and donation.settled_at is not None
    settled: dict[str, Any] = {"payment_id": donation.provider_payment_id, "settled_at": donation.settled_at}
    if session is not None:
        settled.update(fees(session, donation))
    if target == DonationStatus.SUCCEEDED:
        edge = donation_rules.fingerprints(session, donation.donation_id) if session is not None else {}
        return DonationProcessed(
            **common,
            **settled,
            **edge,
            donor_name=donation.donor_name,
            message=donation.message,
            tts=donation.tts,
        )
    if target == DonationStatus.REFUNDED:
        return DonationRefunded(**common, **settled, reason=reason)
    return DonationChargedBack(**common, **settled, reason=reason)


def _emit(session: Session, settings: Settings, donation: Donation, payload: Payload) -> None:
    enqueue(session, Envelope.wrap(payload, channel_id=donation.channel_id, node_id=settings.node_id))
