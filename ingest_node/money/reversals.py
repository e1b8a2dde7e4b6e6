"""A settled subscription or gift charge refunded or charged back: reverse what it credited.

The rule is the donations' one (DESIGN.md: chargebacks and refunds reverse the streamer's share): the
reversal event repeats the original credit's amount and settlement time, so a revenue split of it is the
exact negative of the credit's. Per kind:
- a subscription charge (first month, gift, upgrade, renewal): one `subscription.refunded|charged_back`
  per subscription it paid for (a batch of N gifts: N events of the tier's price, mirroring its N
  `subscription.gifted`), and each subscription ends at once (`subscription.expired`, perks end too);
- a gift: `gift.refunded|charged_back`, and the gift leaves the collection.
A chargeback also flags the payer (`payer_checks.flag_payer`). All of it joins the webhook's transaction,
with the charge's own audit row (money credited before and after) written by `charges.set_status`.
Boosts and requests (`interactive.py`) reverse their own entity but share `settled_fields` and
`flag_charged_back`, so their reversal events and payer flags are made the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ingest_node.audit import audit
from ingest_node.money import charges, gifts, payer_checks
from ingest_node.money import subscriptions as subs
from ingest_node.money.models import ChargeKind, ChargeStatus, MoneyCharge
from services import events
from services import gifts as catalogue
from services import subscriptions as rules
from services.money import Currency
from services.revenue import RevenueSource, split_for
from services.settings import Settings
from services.subscriptions import Tier

REVERSED = (ChargeStatus.REFUNDED, ChargeStatus.CHARGED_BACK)


def on_reversed(
    session: Session, settings: Settings, charge: MoneyCharge, target: ChargeStatus, reason: str
) -> None:
    assert target in REVERSED and charge.provider_payment_id is not None and charge.settled_at is not None
    charged_back = target == ChargeStatus.CHARGED_BACK
    why = reason_for(target, reason)
    if charge.kind == ChargeKind.GIFT:
        payer, token = _reverse_gift(session, settings, charge, charged_back, why)
    else:
        payer, token = _reverse_subscriptions(session, settings, charge, charged_back, why)
    if charged_back:
        flag_charged_back(session, settings, charge, why, user_id=payer, payment_token=token)


def reason_for(target: ChargeStatus, reason: str) -> str:
    """The provider's reason, or what happened when it gave none (the events and flags say why)."""
    return reason or ("charged back" if target == ChargeStatus.CHARGED_BACK else "refunded")


def flag_charged_back(
    session: Session,
    settings: Settings,
    charge: MoneyCharge,
    reason: str,
    *,
    user_id: str | None,
    payment_token: str | None,
) -> None:
    """Flag the payer of a charged-back charge and audit it (`payer.flagged`): every paid kind (a
    subscription, a gift, a boost, a request) flags the same way, so one chargeback anywhere stops the
    payer's next charge everywhere (`payer_checks.refuse_flagged_payer`)."""
    payer_checks.flag_payer(
        session, settings, charge.charge_id, reason, user_id=user_id, payment_token=payment_token
    )
    audit(
        session,
        actor=charges.PROVIDER_ACTOR,
        action="payer.flagged",
        entity=f"charge:{charge.charge_id}",
        currency=charge.currency,
        amount_before=charge.amount_minor,
        amount_after=0,
        status_before=ChargeStatus.SUCCEEDED,
        status_after="flagged",
    )


def settled_fields(charge: MoneyCharge, amount: int, source: RevenueSource, reason: str) -> dict[str, Any]:
    """The `_SettledCharge` fields of a reversal of `amount` of the charge: the ORIGINAL settlement time
    and the split of `amount` by `source`'s share, so the reversal cancels its credit exactly."""
    assert charge.provider_payment_id is not None and charge.settled_at is not None
    split = split_for(source, amount)
    return {
        "payment_id": charge.provider_payment_id,
        "amount_minor": amount,
        "currency": Currency(charge.currency),
        "settled_at": charge.settled_at,
        "reason": reason[:300],
        "streamer_share_minor": split.streamer_minor,
        "platform_fee_minor": split.platform_minor,
    }


def _reverse_subscriptions(
    session: Session, settings: Settings, charge: MoneyCharge, charged_back: bool, reason: str
) -> tuple[str | None, str | None]:
    cls = events.SubscriptionChargedBack if charged_back else events.SubscriptionRefunded
    payer: str | None = None
    token: str | None = None
    batch = charge.kind == ChargeKind.SUB_GIFT_BATCH
    for subscription_id in subs.paid_by(session, charge):
        sub = subs.locked(session, subscription_id)
        # A batch credited each recipient the tier's price; any other charge credited its own amount.
        amount = rules.TIER_PRICE_MINOR[Tier(sub.tier)] if batch else charge.amount_minor
        reversal = cls(
            charge_id=charge.charge_id,
            charge_kind=charge.kind,
            subscription_id=sub.subscription_id,
            subscriber_id=sub.subscriber_id,
            tier=charge.tier or sub.tier,
            gifted_by=sub.gifted_by,
            **settled_fields(charge, amount, RevenueSource.SUBSCRIPTION, reason),
        )
        charges.emit(session, settings, reversal, channel_id=sub.channel_id, user_id=sub.subscriber_id)
        subs.revoke(
            session, settings, sub, reason=f"the payment was {cls.event_type.split('.')[1]}: {reason}"
        )
        payer = sub.gifted_by or sub.subscriber_id
        token = token or sub.payment_token
    return payer, token


def _reverse_gift(
    session: Session, settings: Settings, charge: MoneyCharge, charged_back: bool, reason: str
) -> tuple[str | None, str | None]:
    gift = gifts.reverse(
        session, charge, ChargeStatus.CHARGED_BACK if charged_back else ChargeStatus.REFUNDED
    )
    cls = events.GiftChargedBack if charged_back else events.GiftRefunded
    item = catalogue.item(gift.item_id)
    reversal = cls(
        gift_id=gift.gift_id,
        item_id=item.id,
        quantity=gift.quantity,
        sender_id=gift.sender_id,
        recipient_id=gift.recipient_id,
        **settled_fields(charge, charge.amount_minor, RevenueSource.GIFT, reason),
    )
    charges.emit(session, settings, reversal, channel_id=gift.channel_id, user_id=gift.sender_id)
    return gift.sender_id, None
