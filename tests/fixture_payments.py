"""Money events of the subscription, gift, interactive and sponsorship topics, shaped as the node emits
them, for the money-mart and revenue tests (land them with `tests.fixture_lake.land(topic=...)`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services import events
from services.events import Envelope
from services.ids import new_id
from services.money import Currency


def _wrap(payload: events.Payload, channel_id: str, at: datetime) -> Envelope:
    return Envelope.wrap(payload, channel_id=channel_id, node_id="node-test", occurred_at=at, user_id="u1")


def subscription(
    cls: type[events.SubscriptionPayload], channel_id: str, amount_minor: int, at: datetime, **kw: Any
) -> Envelope:
    """A subscription change charging `amount_minor` RUB as it settles at `at` (no settled_at field)."""
    payload = cls(
        subscription_id=kw.pop("subscription_id", new_id()),
        subscriber_id="u1",
        tier="tier1",
        amount_minor=amount_minor,
        currency=kw.pop("currency", Currency.RUB),
        payment_id=f"pay_{new_id()}" if amount_minor else None,
        **kw,
    )
    return _wrap(payload, channel_id, at)


def gift(channel_id: str, amount_minor: int, currency: Currency, at: datetime) -> Envelope:
    payload = events.GiftSent(
        gift_id=new_id(),
        item_id="rose",
        item_name="Rose",
        rarity="common",
        kind="item",
        quantity=1,
        amount_minor=amount_minor,
        currency=currency,
        payment_id=f"pay_{new_id()}",
        settled_at=at,
    )
    return _wrap(payload, channel_id, at)


def boost(channel_id: str, amount_minor: int, currency: Currency, at: datetime) -> Envelope:
    payload = events.BoostPinned(
        boost_id=new_id(),
        charge_id=new_id(),
        amount_minor=amount_minor,
        currency=currency,
        message="hi",
        pin_seconds=60,
        payment_id=f"pay_{new_id()}",
        settled_at=at,
    )
    return _wrap(payload, channel_id, at)


def request(channel_id: str, amount_minor: int, currency: Currency, at: datetime) -> Envelope:
    payload = events.RequestSubmitted(
        request_id=new_id(),
        kind="music",
        title="Song",
        amount_minor=amount_minor,
        currency=currency,
        charge_id=new_id(),
        payment_id=f"pay_{new_id()}",
        settled_at=at,
    )
    return _wrap(payload, channel_id, at)


def sponsorship(channel_id: str, amount_minor: int, currency: Currency, at: datetime) -> Envelope:
    payload = events.SponsorshipPaid(
        sponsorship_id=new_id(),
        sponsor_name="Brand",
        title="Integration",
        payment_id=f"inv_{new_id()}",
        amount_minor=amount_minor,
        currency=currency,
        settled_at=at,
    )
    return _wrap(payload, channel_id, at)


def reversal(original: Envelope, cls: type[events.Payload], at: datetime) -> Envelope:
    """`cls` (a refund or chargeback) of `original` at `at`, as the node emits it: the same payment,
    amount and currency, and the original settlement (a subscription charge's is its event time)."""
    p = original.payload
    settled = p.get("settled_at") or original.occurred_at.isoformat()
    ids: dict[str, Any] = {
        k: p[k] for k in ("gift_id", "item_id", "quantity", "boost_id", "request_id") if k in p
    }
    if "sponsorship_id" in p:
        ids |= {k: p[k] for k in ("sponsorship_id", "sponsor_name", "title")}
    if "subscription_id" in p:
        ids |= {
            "subscription_id": p["subscription_id"],
            "subscriber_id": p["subscriber_id"],
            "tier": p["tier"],
            "charge_id": new_id(),
            "charge_kind": "sub_create",
        }
    if "charge_id" in p:
        ids["charge_id"] = p["charge_id"]
    payload = cls.model_validate(
        {
            "payment_id": p["payment_id"],
            "amount_minor": p["amount_minor"],
            "currency": p["currency"],
            "settled_at": settled,
            "reason": "test",
            **ids,
        }
    )
    return _wrap(payload, original.channel_id, at)
