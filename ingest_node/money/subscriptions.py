"""Subscriptions on the node: open (paid first month), gift, cancel, pause, resume, change tier, and the
effects of their charges settling or failing. The rules (prices, proration, states) are in
`services.subscriptions`; this module applies them to rows, each change with its audit row and event.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.audit import audit
from ingest_node.models import Channel, utcnow
from ingest_node.money import charges
from ingest_node.money.models import ChargeKind, ChargeStatus, MoneyCharge, Subscription
from services import events
from services import subscriptions as rules
from services.ids import new_id
from services.settings import Settings
from services.subscriptions import Action, SubStatus, Tier

LIVE = (SubStatus.PENDING, SubStatus.ACTIVE, SubStatus.PAUSED, SubStatus.CANCELLED)


class Conflict(Exception):
    """A request the subscription's state refuses (answered 409)."""


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_token(sub: Subscription, token: str | None) -> None:
    """Only the holder of the subscription's manage token (given once, at creation) may change it."""
    given = token_hash(token or "")
    if not hmac.compare_digest(given.encode(), sub.manage_token_hash.encode()):
        raise Forbidden("the subscription's manage token is missing or wrong")


@dataclass(frozen=True)
class Opened:
    subscription: Subscription
    charge: MoneyCharge
    manage_token: str


def open_subscription(
    session: Session,
    *,
    key: str,
    digest: str,
    channel_id: str,
    subscriber_id: str,
    tier: Tier,
    payment_token: str,
    gifted_by: str | None = None,
) -> Opened:
    """A pending subscription and the charge for its first month (caller's transaction)."""
    if session.get(Channel, channel_id) is None:
        raise NotFound(f"channel {channel_id!r} does not exist")
    live = session.execute(
        sa.select(Subscription.subscription_id).where(
            Subscription.channel_id == channel_id,
            Subscription.subscriber_id == subscriber_id,
            Subscription.status.in_([s.value for s in LIVE]),
        )
    ).first()
    if live is not None:
        raise Conflict(f"{subscriber_id!r} already has a subscription to {channel_id!r} ({live[0]})")
    token = secrets.token_urlsafe(24)
    sub = new_subscription(
        session,
        channel_id,
        subscriber_id,
        tier,
        gifted_by=gifted_by,
        payment_token=payment_token,
        manage_token=token,
    )
    charge = charges.new_charge(
        session,
        kind=ChargeKind.SUB_GIFT if gifted_by else ChargeKind.SUB_CREATE,
        channel_id=channel_id,
        amount_minor=rules.TIER_PRICE_MINOR[tier],
        currency=rules.SUBSCRIPTION_CURRENCY,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
        subscription_id=sub.subscription_id,
        tier=tier,
    )
    return Opened(sub, charge, token)


def new_subscription(
    session: Session,
    channel_id: str,
    subscriber_id: str,
    tier: Tier,
    *,
    gifted_by: str | None,
    payment_token: str | None = None,
    manage_token: str | None = None,
) -> Subscription:
    """A pending subscription row and its audit row (caller's transaction); its charge is the caller's.

    A gifted one never keeps a payment token (it does not renew on the gifter's card); without a manage
    token (a randomly gifted one) nobody can change it by token, it simply runs out."""
    now = utcnow()
    sub = Subscription(
        subscription_id=new_id(),
        channel_id=channel_id,
        subscriber_id=subscriber_id,
        tier=tier,
        status=SubStatus.PENDING,
        auto_renew=gifted_by is None,  # a gifted month does not renew on the gifter's card
        gifted_by=gifted_by,
        period_no=0,
        notice_period_no=0,
        streak_months=0,
        manage_token_hash=token_hash(manage_token or secrets.token_urlsafe(24)),
        payment_token=payment_token if gifted_by is None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    _audit(session, sub, "subscription.requested", None, SubStatus.PENDING)
    return sub


def locked(session: Session, subscription_id: str) -> Subscription:
    sub = session.execute(
        sa.select(Subscription).where(Subscription.subscription_id == subscription_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if sub is None:
        raise NotFound(f"subscription {subscription_id!r} does not exist")
    return sub


def cancel(session: Session, settings: Settings, sub: Subscription, now: datetime) -> None:
    """No renewal; perks stay to the period end (a paused subscription gets its frozen time back)."""
    before = SubStatus(sub.status)
    target = _next(sub, Action.CANCEL)
    if before == SubStatus.PAUSED:
        _unfreeze(sub, now)
    sub.status, sub.auto_renew, sub.pending_tier = target, False, None
    _changed(
        session, settings, sub, before, events.SubscriptionCancelled, reason="cancelled by the subscriber"
    )


def pause(session: Session, settings: Settings, sub: Subscription, now: datetime) -> None:
    before = SubStatus(sub.status)
    sub.status, sub.paused_at = _next(sub, Action.PAUSE), now
    _changed(session, settings, sub, before, events.SubscriptionPaused)


def resume(session: Session, settings: Settings, sub: Subscription, now: datetime) -> None:
    before = SubStatus(sub.status)
    target = _next(sub, Action.RESUME)
    _unfreeze(sub, now)
    sub.status = target
    _changed(session, settings, sub, before, events.SubscriptionResumed)


def downgrade(session: Session, settings: Settings, sub: Subscription, tier: Tier) -> None:
    """Scheduled for the next renewal: nothing is charged or credited now."""
    _next(sub, Action.DOWNGRADE)
    previous = sub.pending_tier or sub.tier
    sub.pending_tier = tier
    _changed(
        session,
        settings,
        sub,
        SubStatus(sub.status),
        events.SubscriptionDowngraded,
        tier=tier,
        previous=previous,
    )


def open_upgrade(
    session: Session,
    settings: Settings,
    sub: Subscription,
    tier: Tier,
    *,
    key: str,
    digest: str,
    now: datetime,
) -> tuple[rules.Proration, MoneyCharge | None]:
    """Charge the prorated difference for the rest of the period; the tier changes when it settles."""
    _next(sub, Action.UPGRADE)
    pending = session.execute(
        sa.select(MoneyCharge.charge_id).where(
            MoneyCharge.subscription_id == sub.subscription_id,
            MoneyCharge.kind == ChargeKind.SUB_UPGRADE,
            MoneyCharge.status == ChargeStatus.PENDING,
        )
    ).first()
    if pending is not None:
        raise Conflict("an upgrade of this subscription is still being paid; wait for it to settle")
    assert sub.period_start is not None and sub.period_end is not None
    fraction = rules.remaining_fraction(sub.period_start, sub.period_end, now)
    proration = rules.prorate_upgrade(Tier(sub.tier), tier, fraction)
    if proration.charge_minor == 0:  # nothing left of the period to pay for: switch at once
        previous = sub.tier
        sub.tier, sub.pending_tier = tier, None
        _changed(session, settings, sub, SubStatus.ACTIVE, events.SubscriptionUpgraded, previous=previous)
        return proration, None
    charge = charges.new_charge(
        session,
        kind=ChargeKind.SUB_UPGRADE,
        channel_id=sub.channel_id,
        amount_minor=proration.charge_minor,
        currency=rules.SUBSCRIPTION_CURRENCY,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
        subscription_id=sub.subscription_id,
        tier=tier,
    )
    return proration, charge


# ---- what a settled or failed charge does -------------------------------------------------------------


def on_settled(session: Session, settings: Settings, charge: MoneyCharge, settled_at: datetime) -> None:
    assert charge.tier is not None
    if charge.kind == ChargeKind.SUB_GIFT_BATCH:
        # Each recipient's month is its own credit (the tier's price), so the N events sum to the charge.
        for subscription_id in paid_by(session, charge):
            sub = locked(session, subscription_id)
            before = SubStatus(sub.status)
            sub.status = _next(sub, Action.ACTIVATE)
            sub.period_no, sub.streak_months = 1, 1
            sub.period_start, sub.period_end = settled_at, rules.add_month(settled_at)
            amount = rules.TIER_PRICE_MINOR[Tier(sub.tier)]
            common = {"amount": amount, "payment_id": charge.provider_payment_id}
            _changed(session, settings, sub, before, events.SubscriptionGifted, **common)
        return
    assert charge.subscription_id is not None
    sub = locked(session, charge.subscription_id)
    before = SubStatus(sub.status)
    common = {"amount": charge.amount_minor, "payment_id": charge.provider_payment_id}
    if charge.kind in (ChargeKind.SUB_CREATE, ChargeKind.SUB_GIFT):
        sub.status = _next(sub, Action.ACTIVATE)
        sub.period_no, sub.streak_months = 1, 1
        sub.period_start, sub.period_end = settled_at, rules.add_month(settled_at)
        kind = events.SubscriptionGifted if charge.kind == ChargeKind.SUB_GIFT else events.SubscriptionCreated
        _changed(session, settings, sub, before, kind, **common)
    elif charge.kind == ChargeKind.SUB_UPGRADE:
        previous, sub.tier = sub.tier, charge.tier
        if sub.pending_tier == sub.tier:
            sub.pending_tier = None
        _changed(session, settings, sub, before, events.SubscriptionUpgraded, previous=previous, **common)
    elif charge.kind == ChargeKind.SUB_RENEW:
        assert sub.period_end is not None
        sub.period_start, sub.period_end = sub.period_end, rules.add_month(sub.period_end)
        sub.period_no += 1
        sub.streak_months = rules.next_streak(sub.streak_months, renewed_on_time=True)
        previous, sub.tier, sub.pending_tier = sub.tier, charge.tier, None
        _changed(session, settings, sub, before, events.SubscriptionRenewed, previous=previous, **common)


def on_failed(session: Session, settings: Settings, charge: MoneyCharge, reason: str) -> None:
    for subscription_id in paid_by(session, charge):
        sub = locked(session, subscription_id)
        before = SubStatus(sub.status)
        opening = (ChargeKind.SUB_CREATE, ChargeKind.SUB_GIFT, ChargeKind.SUB_GIFT_BATCH)
        if charge.kind in opening and before == SubStatus.PENDING:
            sub.status = _next(sub, Action.FAIL)
            sub.updated_at = utcnow()
            _audit(session, sub, "subscription.failed", before, SubStatus.FAILED)
        elif charge.kind == ChargeKind.SUB_RENEW and before == SubStatus.ACTIVE:
            expire(session, settings, sub, reason=f"renewal payment failed: {reason}"[:300])


def paid_by(session: Session, charge: MoneyCharge) -> list[str]:
    """The subscriptions a charge paid for: its own, or every recipient of a batch of gifts."""
    if charge.kind == ChargeKind.SUB_GIFT_BATCH:
        from ingest_node.money import gift_batches  # imports this module

        return gift_batches.members(session, charge.charge_id)
    assert charge.subscription_id is not None
    return [charge.subscription_id]


def revoke(session: Session, settings: Settings, sub: Subscription, *, reason: str) -> bool:
    """The payment behind the subscription was taken back: it ends now, from any live state (a paused
    one too), with no renewal; False when it had already ended (nothing to change)."""
    before = SubStatus(sub.status)
    if before not in (SubStatus.ACTIVE, SubStatus.PAUSED, SubStatus.CANCELLED, SubStatus.PENDING):
        return False
    sub.status, sub.auto_renew, sub.pending_tier = SubStatus.EXPIRED, False, None
    sub.streak_months, sub.paused_at = 0, None
    now = utcnow()
    if sub.period_end is not None and sub.period_end > now:
        sub.period_end = now  # perks end with the money
    _changed(session, settings, sub, before, events.SubscriptionExpired, reason=reason[:300])
    return True


def expire(session: Session, settings: Settings, sub: Subscription, *, reason: str) -> None:
    before = SubStatus(sub.status)
    sub.status, sub.streak_months, sub.pending_tier = _next(sub, Action.EXPIRE), 0, None
    _changed(session, settings, sub, before, events.SubscriptionExpired, reason=reason)


# ---- internals --------------------------------------------------------------------------------------


def _next(sub: Subscription, action: Action) -> SubStatus:
    try:
        return rules.next_status(SubStatus(sub.status), action)
    except rules.TransitionRefused as exc:
        raise Conflict(str(exc)) from None


def _unfreeze(sub: Subscription, now: datetime) -> None:
    if sub.paused_at is not None and sub.period_end is not None:
        sub.period_end = sub.period_end + (now - sub.paused_at)
    sub.paused_at = None


def _audit(
    session: Session, sub: Subscription, action: str, before: str | None, after: str, amount: int = 0
) -> None:
    audit(
        session,
        actor=charges.API_ACTOR,
        action=action,
        entity=f"subscription:{sub.subscription_id}",
        currency=rules.SUBSCRIPTION_CURRENCY.value,
        amount_before=None if before is None else 0,
        amount_after=amount,
        status_before=before,
        status_after=after,
    )


def payload(
    sub: Subscription,
    cls: type[events.SubscriptionPayload],
    *,
    amount: int = 0,
    payment_id: str | None = None,
    previous: str | None = None,
    reason: str = "",
    tier: str | None = None,
) -> events.SubscriptionPayload:
    return cls(
        subscription_id=sub.subscription_id,
        subscriber_id=sub.subscriber_id,
        tier=tier or sub.tier,
        amount_minor=amount,
        currency=rules.SUBSCRIPTION_CURRENCY,
        period_end=sub.period_end,
        streak_months=sub.streak_months,
        previous_tier=previous,
        gifted_by=sub.gifted_by,
        payment_id=payment_id,
        reason=reason,
    )


def _changed(
    session: Session,
    settings: Settings,
    sub: Subscription,
    before: SubStatus,
    cls: type[events.SubscriptionPayload],
    **fields: Any,
) -> None:
    sub.updated_at = utcnow()
    _audit(session, sub, cls.event_type, before, sub.status, fields.get("amount", 0))
    charges.emit(
        session, settings, payload(sub, cls, **fields), channel_id=sub.channel_id, user_id=sub.subscriber_id
    )
