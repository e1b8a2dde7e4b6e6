"""A channel's donation settings: the admin (for now; the channel owner later) sets them, anyone reads
them and asks for a quote, so the donation page shows the range, the presets and the fee up front.

`tts_enabled` is not stored here: it is the alert settings' `tts.enabled` (the channel's one TTS switch,
`ingest_node.money.alert_settings`), shown as is and written there when a PUT names it, so the two
endpoints can never disagree. A PUT without it leaves the switch as it was."""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from ingest_node.audit import audit
from ingest_node.deps import AdminDep, SessionDep, SettingsDep
from ingest_node.models import Channel, utcnow
from ingest_node.money import alert_settings, donation_rules
from ingest_node.money.alert_settings import AlertSettings
from ingest_node.money.donation_rules import DonationRules
from services.money import Currency
from services.settings import Settings

router = APIRouter(prefix="/api/v1/channels", tags=["donation settings"])


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_minor: StrictInt
    max_minor: StrictInt


class DonationRulesIn(BaseModel):
    """Limits narrow the global range per currency; presets must lie inside the channel's range."""

    model_config = ConfigDict(extra="forbid")
    limits: dict[Currency, RangeIn] = Field(default_factory=dict)
    presets: dict[Currency, Annotated[list[StrictInt], Field(max_length=8)]] = Field(default_factory=dict)
    tts_enabled: Annotated[
        StrictBool | None,
        Field(description="The alert settings' tts.enabled; omitted or null leaves it unchanged."),
    ] = None
    requires_approval: StrictBool = False
    donor_covers_fee: StrictBool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for currency, r in self.limits.items():
            if r.min_minor > r.max_minor:
                raise ValueError(f"{currency.value}: min_minor is above max_minor")
        return self


class CurrencyRules(BaseModel):
    min_minor: int
    max_minor: int
    presets: list[int]


class DonationRulesOut(BaseModel):
    channel_id: str
    currencies: dict[Currency, CurrencyRules]
    tts_enabled: bool
    requires_approval: bool
    donor_covers_fee: bool


class QuoteOut(BaseModel):
    amount_minor: int
    currency: Currency
    fee_minor: int
    charged_minor: int
    streamer_minor: int


def _out(
    settings: Settings, channel_id: str, rules: DonationRules | None, alerts: AlertSettings
) -> DonationRulesOut:
    currencies = {}
    for currency in Currency:
        b = donation_rules.bounds_for(settings, rules, currency)
        presets = list((rules.presets or {}).get(currency.value, [])) if rules else []
        currencies[currency] = CurrencyRules(min_minor=b.min_minor, max_minor=b.max_minor, presets=presets)
    return DonationRulesOut(
        channel_id=channel_id,
        currencies=currencies,
        tts_enabled=alerts.tts.enabled,
        requires_approval=rules.requires_approval if rules else False,
        donor_covers_fee=rules.donor_covers_fee if rules else False,
    )


def _channel(session: SessionDep, channel_id: str) -> None:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")


@router.put("/{channel_id}/donation-settings")
def set_donation_rules(
    channel_id: str, body: DonationRulesIn, session: SessionDep, settings: SettingsDep, actor: AdminDep
) -> DonationRulesOut:
    low, high = settings.donation_min_minor, settings.donation_max_minor
    for currency, r in body.limits.items():
        if r.min_minor < low or r.max_minor > high:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{currency.value} limits must lie within the global {low}..{high} minor units",
            )
    for currency, amounts in body.presets.items():
        narrowed = body.limits.get(currency)
        lo, hi = (narrowed.min_minor, narrowed.max_minor) if narrowed else (low, high)
        outside = [a for a in amounts if not lo <= a <= hi]
        if outside:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"{currency.value} presets {outside} are outside the channel's {lo}..{hi} minor units",
            )
    with session.begin():
        _channel(session, channel_id)
        rules = session.get(DonationRules, channel_id) or DonationRules(channel_id=channel_id)
        rules.limits = {c.value: [r.min_minor, r.max_minor] for c, r in body.limits.items()}
        rules.presets = {c.value: sorted(set(a)) for c, a in body.presets.items()}
        rules.requires_approval = body.requires_approval
        rules.donor_covers_fee = body.donor_covers_fee
        rules.updated_at = utcnow()
        session.add(rules)
        audit(session, actor=actor, action="donation.settings", entity=f"channel:{channel_id}")
        if body.tts_enabled is None:
            alerts = alert_settings.load(session, channel_id)
        else:
            alerts = alert_settings.set_tts_enabled(session, channel_id, body.tts_enabled)
            audit(session, actor=actor, action="alerts.configured", entity=f"channel:{channel_id}")
        session.flush()
        return _out(settings, channel_id, rules, alerts)


@router.get("/{channel_id}/donation-settings")
def get_donation_rules(channel_id: str, session: SessionDep, settings: SettingsDep) -> DonationRulesOut:
    with session.begin():
        _channel(session, channel_id)
        rules = donation_rules.rules_of(session, channel_id)
        return _out(settings, channel_id, rules, alert_settings.load(session, channel_id))


@router.get("/{channel_id}/donation-quote")
def donation_quote(
    channel_id: str,
    session: SessionDep,
    settings: SettingsDep,
    amount_minor: Annotated[int, Query()],
    currency: Annotated[Currency, Query()],
    cover_fee: Annotated[bool, Query()] = False,
) -> QuoteOut:
    """What the donor pays and what the streamer gets, before paying."""
    with session.begin():
        _channel(session, channel_id)
        rules = donation_rules.rules_of(session, channel_id)
        b = donation_rules.bounds_for(settings, rules, currency)
        if not b.min_minor <= amount_minor <= b.max_minor:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"amount_minor must be between {b.min_minor} and {b.max_minor} minor units "
                f"for {currency.value} donations to this channel",
            )
        if cover_fee and not (rules is not None and rules.donor_covers_fee):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "this channel does not offer donors to cover the fee"
            )
    q = donation_rules.quote(amount_minor, cover_fee)
    return QuoteOut(currency=currency, **q.__dict__)
