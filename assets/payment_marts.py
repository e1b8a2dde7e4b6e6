"""The money marts of subscriptions, gifts, interactive donations and sponsored content: each day's
crediting payments and their reversals, once each, valued in roubles like `donations` (assets/money_marts.py).
"""

from __future__ import annotations

import pyarrow as pa

from assets.lake import (
    GIFTS_TOPIC,
    INTERACTIVE_TOPIC,
    LAKE_GIFTS,
    LAKE_INTERACTIVE,
    LAKE_SPONSORSHIPS,
    LAKE_SUBSCRIPTIONS,
    SPONSORSHIPS_TOPIC,
    SUBSCRIPTIONS_TOPIC,
)
from assets.money_marts import MoneyMart, event_id_unique_check, money_mart_asset
from services import events
from services.marts import (
    GIFT_PAYMENTS_MART,
    INTERACTIVE_PAYMENTS_MART,
    SPONSORSHIP_PAYMENTS_MART,
    SUBSCRIPTION_PAYMENTS_MART,
)


def _types(*classes: type[events.Payload]) -> tuple[str, ...]:
    return tuple(cls.event_type for cls in classes)


def _strings(*names: str) -> tuple[pa.Field, ...]:
    return tuple(pa.field(name, pa.string()) for name in names)


SUBSCRIPTION_PAYMENTS = MoneyMart(
    name=SUBSCRIPTION_PAYMENTS_MART,
    topic=SUBSCRIPTIONS_TOPIC,
    # Changes that charged something (amount_minor > 0); a downgrade, cancel or pause charges nothing.
    credits=_types(
        events.SubscriptionCreated,
        events.SubscriptionRenewed,
        events.SubscriptionUpgraded,
        events.SubscriptionGifted,
    ),
    reversals=_types(events.SubscriptionRefunded, events.SubscriptionChargedBack),
    extras=_strings("payment_id", "charge_id", "subscription_id", "subscriber_id", "tier", "gifted_by"),
    credit_settled_at="occurred_at",
)
GIFT_PAYMENTS = MoneyMart(
    name=GIFT_PAYMENTS_MART,
    topic=GIFTS_TOPIC,
    credits=_types(events.GiftSent),
    reversals=_types(events.GiftRefunded, events.GiftChargedBack),
    extras=(
        *_strings("payment_id", "gift_id", "item_id"),
        pa.field("quantity", pa.int64()),
        *_strings("sender_id", "recipient_id"),
    ),
)
# Boosts and requests are donations with a purpose: their revenue source is `donation` (85%).
INTERACTIVE_PAYMENTS = MoneyMart(
    name=INTERACTIVE_PAYMENTS_MART,
    topic=INTERACTIVE_TOPIC,
    credits=_types(events.BoostPinned, events.RequestSubmitted),
    reversals=_types(
        events.BoostRefunded, events.BoostChargedBack, events.RequestRefunded, events.RequestChargedBack
    ),
    extras=_strings("payment_id", "charge_id", "boost_id", "request_id"),
)
SPONSORSHIP_PAYMENTS = MoneyMart(
    name=SPONSORSHIP_PAYMENTS_MART,
    topic=SPONSORSHIPS_TOPIC,
    credits=_types(events.SponsorshipPaid),
    reversals=_types(events.SponsorshipRefunded),
    extras=_strings("payment_id", "sponsorship_id", "sponsor_name", "title"),
)

subscription_payments = money_mart_asset(
    SUBSCRIPTION_PAYMENTS,
    LAKE_SUBSCRIPTIONS,
    "Every subscription charge of the day (first month, renewal, upgrade, gifted month) and every refund "
    "or chargeback of one, each once, in roubles at the settlement-date rate, negative for a reversal.",
)
gift_payments = money_mart_asset(
    GIFT_PAYMENTS,
    LAKE_GIFTS,
    "Every paid virtual gift of the day and every refund or chargeback of one, each once, in roubles at "
    "the settlement-date rate, negative for a reversal.",
)
interactive_payments = money_mart_asset(
    INTERACTIVE_PAYMENTS,
    LAKE_INTERACTIVE,
    "Every paid boost and request of the day and every refund or chargeback of one, each once, in roubles "
    "at the settlement-date rate, negative for a reversal (revenue counts them as donations).",
)
sponsorship_payments = money_mart_asset(
    SPONSORSHIP_PAYMENTS,
    LAKE_SPONSORSHIPS,
    "Every sponsored-content payment of the day and every refund of one, each once, in roubles at the "
    "settlement-date rate, negative for a refund.",
)

PAYMENT_MART_ASSETS = [subscription_payments, gift_payments, interactive_payments, sponsorship_payments]
PAYMENT_MART_CHECKS = [
    event_id_unique_check(asset, mart)
    for asset, mart in zip(
        PAYMENT_MART_ASSETS,
        (SUBSCRIPTION_PAYMENTS, GIFT_PAYMENTS, INTERACTIVE_PAYMENTS, SPONSORSHIP_PAYMENTS),
        strict=True,
    )
]
