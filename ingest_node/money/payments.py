"""The money path of subscription and gift charges: ask the provider, apply its webhooks, renew.

The same order as donations: the charge is committed (pending) before the Payment Service is asked,
so a crash or an unreachable provider never loses an acknowledged request; the provider's answer or
error is stored under the Idempotency-Key so a retry replays it. Webhooks whose reference starts with
`sub:` or `gift:` come here from the shared webhook route.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ingest_node import idempotency, payment_webhooks
from ingest_node.models import utcnow
from ingest_node.money import charges, gifts, interactive, reversals, subscriptions
from ingest_node.money.models import ChargeKind, ChargeStatus, MoneyCharge, MoneyWebhookEvent, Subscription
from ingest_node.payment_webhooks import Found, WebhookOutcome
from services import events
from services import subscriptions as rules
from services.money import Currency
from services.payments import (
    PaymentClient,
    PaymentRefused,
    PaymentRequest,
    PaymentServiceError,
    WebhookData,
    WebhookEvent,
)
from services.settings import Settings
from services.subscriptions import SubStatus, Tier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    status: int
    body: dict[str, Any]


def submit(
    session: Session,
    settings: Settings,
    payments: PaymentClient,
    charge: MoneyCharge,
    *,
    payment_token: str,
    description: str,
    created: dict[str, Any],
    actor: str = charges.API_ACTOR,
) -> Submitted:
    """Ask the provider for the charge; store the outcome under the charge's key (its own transaction)."""
    request = PaymentRequest(
        reference=charge.reference,
        amount_minor=charge.amount_minor,
        currency=Currency(charge.currency),
        description=description,
        payment_token=payment_token,
        callback_url=f"{settings.public_url.rstrip('/')}/api/v1/payments/webhook",
    )
    try:
        payment = payments.create_payment(request)
    except (PaymentServiceError, PaymentRefused) as exc:
        unavailable = isinstance(exc, PaymentServiceError)
        code = 502 if unavailable else 402
        detail = (
            "the payment service is unavailable; nothing was charged. Retry later with a new Idempotency-Key"
            if unavailable
            else f"the payment was refused: {exc}"
        )
        body = {**created, "detail": detail}
        with session.begin():
            locked = _locked(session, charge.charge_id)
            if locked.status == ChargeStatus.PENDING:
                charges.set_status(session, locked, ChargeStatus.FAILED, actor=actor, reason=str(exc))
                _dispatch_failed(session, settings, locked, str(exc))
            charges.store_response(locked, code, body)
        return Submitted(code, body)
    with session.begin():
        locked = _locked(session, charge.charge_id)
        if locked.provider_payment_id is None:
            locked.provider_payment_id = payment.payment_id
        charges.store_response(locked, 201, created)
    return Submitted(201, created)


class ChargePayments:
    """Subscription and gift charges as a `payment_webhooks.PaymentKind`: found by the reference only
    (`sub:`/`gift:` + charge id); a transition dispatches to what the charge paid for."""

    noun = "charge"

    def seen(self, session: Session, webhook_id: str) -> bool:
        return session.get(MoneyWebhookEvent, webhook_id) is not None

    def find(self, session: Session, data: WebhookData) -> Found | None:
        charge = session.execute(
            sa.select(MoneyCharge).where(MoneyCharge.reference == data.reference).with_for_update()
        ).scalar_one_or_none()
        if charge is None:
            return None
        return Found(
            charge,
            charge.charge_id,
            charge.status,
            charge.provider_payment_id,
            charge.amount_minor,
            charge.currency,
        )

    def transition(
        self, session: Session, settings: Settings, found: Found, target: str, event: WebhookEvent
    ) -> None:
        charge: MoneyCharge = found.row
        data, status = event.data, ChargeStatus(target)
        charge.provider_payment_id = data.payment_id
        if status == ChargeStatus.SUCCEEDED:
            charge.settled_at = datetime.fromtimestamp(event.created, UTC)
        charges.set_status(session, charge, status, actor=charges.PROVIDER_ACTOR, reason=data.reason)
        if charge.kind in interactive.KINDS and status != ChargeStatus.FAILED:
            # boosts and requests handle their own, reversal events and payer flags included
            interactive.on_charge(session, settings, charge, status, data.reason)
        elif status == ChargeStatus.SUCCEEDED:
            assert charge.settled_at is not None
            if charge.kind == ChargeKind.GIFT:
                gifts.on_settled(session, settings, charge, charge.settled_at)
            else:
                subscriptions.on_settled(session, settings, charge, charge.settled_at)
        elif status == ChargeStatus.FAILED:
            _dispatch_failed(session, settings, charge, data.reason or "declined")
        else:  # refunded or charged back: the streamer's share goes back, a chargeback flags the payer
            reversals.on_reversed(session, settings, charge, status, data.reason)
        session.add(MoneyWebhookEvent(webhook_id=event.id, event_type=event.type, charge_id=charge.charge_id))


CHARGES = ChargePayments()


def apply_webhook(session: Session, settings: Settings, event: WebhookEvent) -> WebhookOutcome:
    """Apply one provider webhook about a charge (the shared dispatcher, the charge's transitions)."""
    return payment_webhooks.apply_webhook(session, settings, CHARGES, event)


def _dispatch_failed(session: Session, settings: Settings, charge: MoneyCharge, reason: str) -> None:
    if charge.kind in interactive.KINDS:
        interactive.on_charge(session, settings, charge, ChargeStatus.FAILED)
    elif charge.kind == ChargeKind.GIFT:
        gifts.on_status(session, charge, ChargeStatus.FAILED)
    else:
        subscriptions.on_failed(session, settings, charge, reason)


def _locked(session: Session, charge_id: str) -> MoneyCharge:
    return session.execute(
        sa.select(MoneyCharge).where(MoneyCharge.charge_id == charge_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one()


# ---- the renewal job ----------------------------------------------------------------------------------


@dataclass
class RenewalReport:
    notices: list[str] = field(default_factory=list)
    charged: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


def renewal_key(sub: Subscription) -> str:
    """One charge per subscription and period, whoever runs the job and however often."""
    return f"renew:{sub.subscription_id}:{sub.period_no + 1}"


def renew_due(
    sessions: sessionmaker[Session], settings: Settings, payments: PaymentClient, now: datetime | None = None
) -> RenewalReport:
    """Send renewal notices, expire what ended, and charge due renewals; safe to run again at any time.

    Each subscription is handled in its own transaction. A renewal charge has a deterministic
    Idempotency-Key (`renew:<subscription>:<period>`), and the provider deduplicates by the charge's
    reference, so a rerun, a crash between commit and the provider call, or two nodes racing never
    charge a period twice.
    """
    now = now or utcnow()
    report = RenewalReport()
    with sessions() as session:
        ids = list(
            session.execute(
                sa.select(Subscription.subscription_id)
                .where(
                    Subscription.status.in_([SubStatus.ACTIVE, SubStatus.CANCELLED]),
                    Subscription.period_end.is_not(None),
                    Subscription.period_end <= now + timedelta(days=rules.RENEWAL_NOTICE_DAYS),
                )
                .order_by(Subscription.period_end)
            ).scalars()
        )
        session.rollback()
        for subscription_id in ids:
            try:
                _renew_one(session, settings, payments, subscription_id, now, report)
            except IntegrityError:
                # Another runner committed this period's charge first (same deterministic key): its
                # round owns it; nothing was charged twice.
                session.rollback()
                log.info("renewal of %s is being handled by another runner", subscription_id)
    return report


def _renew_one(
    session: Session,
    settings: Settings,
    payments: PaymentClient,
    subscription_id: str,
    now: datetime,
    report: RenewalReport,
) -> None:
    to_submit: tuple[MoneyCharge, str] | None = None
    with session.begin():
        sub = subscriptions.locked(session, subscription_id)
        assert sub.period_end is not None
        status = SubStatus(sub.status)
        renewing = status == SubStatus.ACTIVE and sub.auto_renew
        if rules.notice_due(sub.period_end, now) and renewing and sub.notice_period_no < sub.period_no:
            sub.notice_period_no = sub.period_no
            tier = Tier(sub.pending_tier or sub.tier)
            notice = subscriptions.payload(
                sub, events.SubscriptionRenewalNotice, amount=rules.TIER_PRICE_MINOR[tier], tier=tier
            )
            charges.emit(session, settings, notice, channel_id=sub.channel_id, user_id=sub.subscriber_id)
            report.notices.append(subscription_id)
        if sub.period_end > now:
            return
        if not renewing:
            if status in (SubStatus.ACTIVE, SubStatus.CANCELLED):
                subscriptions.expire(session, settings, sub, reason="the paid period ended")
                report.expired.append(subscription_id)
            return
        key = renewal_key(sub)
        charge = charges.by_key(session, key)
        if charge is None:
            tier = Tier(sub.pending_tier or sub.tier)
            charge = charges.new_charge(
                session,
                kind=ChargeKind.SUB_RENEW,
                channel_id=sub.channel_id,
                amount_minor=rules.TIER_PRICE_MINOR[tier],
                currency=rules.SUBSCRIPTION_CURRENCY,
                key=key,
                digest=idempotency.request_hash({"renew": key}),
                actor=charges.JOB_ACTOR,
                subscription_id=sub.subscription_id,
                tier=tier,
            )
        if charge.status == ChargeStatus.PENDING and charge.provider_payment_id is None and sub.payment_token:
            to_submit = (charge, sub.payment_token)
    if to_submit is not None:
        charge, token = to_submit
        created = {"charge_id": charge.charge_id, "subscription_id": subscription_id, "status": "pending"}
        submit(
            session,
            settings,
            payments,
            charge,
            payment_token=token,
            description=f"Subscription renewal {subscription_id}",
            created=created,
            actor=charges.JOB_ACTOR,
        )
        report.charged.append(subscription_id)
