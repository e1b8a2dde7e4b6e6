"""Request and response bodies of the node's HTTP API (docs/contracts.md), validated strictly.

Money fields are strict integers: a float, a bool or a numeric string is refused, never coerced,
because a silently rounded or truncated amount is a wrong charge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from services.money import Currency

CHANNEL_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,63}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{8,128}$"  # printable ASCII, no spaces


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: Annotated[StrictStr, Field(pattern=CHANNEL_ID_PATTERN, description="lowercase slug")]
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class ChannelOut(BaseModel):
    channel_id: str
    name: str
    created_at: datetime


class DonationIn(BaseModel):
    """A viewer's donation; `payment_token` comes from the provider's checkout, never a card number."""

    model_config = ConfigDict(extra="forbid")
    channel_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    amount_minor: StrictInt
    currency: Currency
    message: Annotated[StrictStr, Field(max_length=300)] = ""
    donor_name: Annotated[StrictStr | None, Field(max_length=100)] = None
    payment_token: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    cover_fee: Annotated[
        StrictBool, Field(description="The donor adds the platform fee so the donation is not reduced by it.")
    ] = False
    challenge_id: Annotated[
        StrictStr | None,
        Field(max_length=64, description="A challenge of the channel this donation counts towards."),
    ] = None
    mark_moment: Annotated[
        StrictBool,
        Field(description="Mark a highlighted moment at the current stream time (channel must be live)."),
    ] = False
    tts: Annotated[
        StrictBool,
        Field(
            description="Read the message aloud on stream (the donor's checkbox, on by default); the alert "
            "box speaks only when this, the channel's alert settings and their TTS filter all allow it."
        ),
    ] = True


class DonationCreatedOut(BaseModel):
    """The 201 answer of POST /api/v1/donations (also what an idempotent replay returns)."""

    donation_id: str
    status: str
    channel_id: str
    amount_minor: int
    currency: Currency
    created_at: datetime


class DonationOut(BaseModel):
    donation_id: str
    status: str
    channel_id: str
    amount_minor: int
    currency: Currency
    message: str
    donor_name: str | None
    created_at: datetime
    settled_at: datetime | None
    failure_reason: str | None
    tts: bool = True


class Problem(BaseModel):
    """Every refusal carries a human-readable `detail`."""

    detail: str
