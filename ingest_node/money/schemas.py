"""Request and response bodies of the subscription, gift and overlay endpoints, validated strictly.

Clients never send a price: a tier or a catalogue item fixes it, so an invented amount cannot be
charged. Counts are strict integers within bounds (no floats, bools, strings or huge numbers).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from services.gifts import MAX_QUANTITY
from services.money import Currency
from services.subscriptions import Tier

UserId = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="a viewer's user id")]
Token = Annotated[StrictStr, Field(min_length=1, max_length=128)]
ChannelRef = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    subscriber_id: UserId
    tier: Tier
    payment_token: Token


class GiftSubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    recipient_id: UserId
    gifter_id: UserId
    tier: Tier
    payment_token: Token


class RandomGiftSubscriptionsIn(BaseModel):
    """One month each for `count` viewers present in the channel, drawn by the node, paid in one charge;
    `count` is at most EFIR_GIFT_SUBS_MAX_RECIPIENTS (checked by the route, which knows the setting)."""

    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    gifter_id: UserId
    tier: Tier
    count: Annotated[StrictInt, Field(ge=1)]
    payment_token: Token


class TierChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: Tier


class SubscriptionOut(BaseModel):
    subscription_id: str
    channel_id: str
    subscriber_id: str
    tier: str
    pending_tier: str | None
    status: str
    auto_renew: bool
    gifted_by: str | None
    period_start: datetime | None
    period_end: datetime | None
    streak_months: int
    badge: str


class GiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    item_id: Annotated[StrictStr, Field(min_length=1, max_length=40)]
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)] = 1
    sender_id: UserId | None = None
    sender_name: Annotated[StrictStr | None, Field(max_length=100)] = None
    recipient_id: UserId | None = None
    message: Annotated[StrictStr, Field(max_length=300)] = ""
    payment_token: Token


class GiftOut(BaseModel):
    gift_id: str
    channel_id: str
    item_id: str
    quantity: int
    amount_minor: int
    currency: Currency
    sender_id: str | None
    recipient_id: str | None
    status: str
    created_at: datetime
    settled_at: datetime | None
