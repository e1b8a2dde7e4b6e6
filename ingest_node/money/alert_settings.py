"""The streamer's alert box settings and how they shape each alert the overlay receives.

Stored per channel as JSON (`alert_settings`), applied on the node when an alert frame is sent, so a
change takes effect on the next alert without reloading OBS, and the page never interprets templates
or filters itself: it receives finished plain text (which it sets with textContent) and the text to
speak, or none.

- Minimum amounts per alert type and currency: an alert below its minimum is not shown (a channel's
  choice, not a loss: the money and the event are unaffected).
- Durations, templates and variations by amount: the variation with the highest `min_amount_minor`
  the amount reaches (same currency) overrides duration and template and names a style class.
- Templates substitute only known placeholders (`{name}`, `{amount}`, `{message}`, `{item}`,
  `{quantity}`, `{tier}`); an unknown one is refused when saved; substituted values are plain text,
  never markup or further templates (one pass, no format-string evaluation).
- TTS: `tts.enabled` is the channel's one switch (the donation-settings route reads and writes this
  same value as `tts_enabled`), then on or off per type, then the donor's own choice (`tts` on the
  donation, default true). What is spoken is the donor's message with links removed, never spoken
  when it trips the channel's chat automod lexicon (its blocked words and, if enabled, the built-in
  profanity lexicon) or the alert's own blocked words, or when it is longer than `max_chars`.
  `display.tts` says whether the alert box speaks: true only when all of these allow it.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from sqlalchemy.orm import Session

from ingest_node.chat.models import ChatChannelSettings
from ingest_node.models import utcnow
from ingest_node.money.interactive_models import AlertSettingsRow
from services.chat.automod import AutoMod, AutoModConfig, Rule, find_links
from services.chat.lexicon import blocked_words
from services.money import Currency, format_minor

PLACEHOLDERS = frozenset({"name", "amount", "message", "item", "quantity", "tier"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TYPE_OF_EVENT = {
    "donation.processed": "donation",
    "gift.sent": "gift",
    "subscription.created": "subscription",
    "subscription.gifted": "subscription",
}
DEFAULT_TEMPLATES = {
    "donation": "{name} — {amount}",
    "gift": "{name} sent {quantity} × {item}",
    "subscription": "{name} subscribed: {tier}",
}
Amount = Annotated[StrictInt, Field(ge=0, le=10**12)]
Template = Annotated[StrictStr, Field(min_length=1, max_length=200)]


def _check_template(value: str | None) -> str | None:
    if value is None:
        return value
    unknown = sorted({p for p in _PLACEHOLDER.findall(value) if p not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}"
        )
    return value


class TypeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = True
    min_amount_minor: dict[Currency, Amount] = Field(default_factory=dict)
    duration_ms: Annotated[StrictInt, Field(ge=1000, le=60_000)] = 6000
    template: Template | None = None
    tts: StrictBool = True

    _template = field_validator("template")(_check_template)


class Variation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9-]{1,32}$")]
    currency: Currency
    min_amount_minor: Amount
    duration_ms: Annotated[StrictInt | None, Field(ge=1000, le=60_000)] = None
    template: Template | None = None

    _template = field_validator("template")(_check_template)


class TtsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = False
    max_chars: Annotated[StrictInt, Field(ge=10, le=500)] = 200
    blocked_words: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=64)]], Field(max_length=500)
    ] = Field(default_factory=list)


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    donation: TypeSettings = Field(default_factory=TypeSettings)
    gift: TypeSettings = Field(default_factory=TypeSettings)
    subscription: TypeSettings = Field(default_factory=TypeSettings)
    variations: Annotated[list[Variation], Field(max_length=20)] = Field(default_factory=list)
    tts: TtsSettings = Field(default_factory=TtsSettings)


def load(session: Session, channel_id: str) -> AlertSettings:
    row = session.get(AlertSettingsRow, channel_id, populate_existing=True)
    return AlertSettings.model_validate_json(row.settings) if row is not None else AlertSettings()


def set_tts_enabled(session: Session, channel_id: str, enabled: bool) -> AlertSettings:
    """Turn the channel's TTS switch on or off, keeping the rest of its alert settings (in the caller's
    transaction): the donation-settings route's `tts_enabled` writes here, so there is one switch."""
    current = load(session, channel_id)
    changed = current.model_copy(update={"tts": current.tts.model_copy(update={"enabled": enabled})})
    row = session.get(AlertSettingsRow, channel_id)
    if row is None:
        row = AlertSettingsRow(channel_id=channel_id)
        session.add(row)
    row.settings, row.updated_at = changed.model_dump_json(), utcnow()
    return changed


def channel_automod(session: Session, channel_id: str) -> AutoMod:
    row = session.get(ChatChannelSettings, channel_id)
    return AutoMod(AutoModConfig.model_validate_json(row.automod if row and row.automod else "{}"))


def render(template: str, values: dict[str, str]) -> str:
    """One pass over the template: `{known}` becomes its value, nothing else changes."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def tts_text(text: str, settings: AlertSettings, automod: AutoMod) -> str | None:
    """What the browser may speak of `text`, or None: links removed, blocked words and long text silent."""
    spoken = text
    for link in find_links(spoken):
        spoken = spoken.replace(link, " ")
    spoken = " ".join(spoken.split())
    if not spoken or len(spoken) > settings.tts.max_chars:
        return None
    if automod.check(Rule.BLOCKED, spoken) or automod.check(Rule.PROFANITY, spoken):
        return None
    if settings.tts.blocked_words and blocked_words(settings.tts.blocked_words).find(spoken):
        return None
    return spoken


def _values(event_type: str, payload: dict[str, Any]) -> tuple[dict[str, str], int, str]:
    amount = int(payload.get("amount_minor") or 0)
    currency = str(payload.get("currency") or "RUB")
    if event_type == "donation.processed":
        name = payload.get("donor_name") or "Anonymous"
    elif event_type == "gift.sent":
        name = payload.get("sender_name") or "Anonymous"
    else:
        name = payload.get("subscriber_id") or ""
    values = {
        "name": str(name),
        "amount": format_minor(amount, currency) if amount else "",
        "message": str(payload.get("message") or ""),
        "item": str(payload.get("item_name") or ""),
        "quantity": str(payload.get("quantity") or ""),
        "tier": str(payload.get("tier") or ""),
    }
    return values, amount, currency


def display(frame: dict[str, Any], settings: AlertSettings, automod: AutoMod) -> dict[str, Any] | None:
    """What the alert box shows for one alert frame, or None when the settings say not to show it."""
    event_type = frame["event_type"]
    kind = TYPE_OF_EVENT.get(event_type)
    if kind is None:
        return None
    per_type: TypeSettings = getattr(settings, kind)
    payload = frame.get("payload") or {}
    values, amount, currency = _values(event_type, payload)
    minimum = (
        per_type.min_amount_minor.get(Currency(currency)) if currency in Currency._value2member_map_ else None
    )
    if not per_type.enabled or (minimum is not None and amount < minimum):
        return None
    template = per_type.template or DEFAULT_TEMPLATES[kind]
    duration = per_type.duration_ms
    variation = None
    for v in sorted(settings.variations, key=lambda v: v.min_amount_minor):
        if v.currency.value == currency and amount >= v.min_amount_minor:
            variation = v
    if variation is not None:
        template = variation.template or template
        duration = variation.duration_ms or duration
    spoken = None
    if settings.tts.enabled and per_type.tts and donor_wants_tts(payload) and values["message"]:
        spoken = tts_text(values["message"], settings, automod)
    return {
        "title": render(template, values),
        "message": values["message"],
        "duration_ms": duration,
        "variation": variation.name if variation else None,
        "tts": spoken is not None,
        "tts_text": spoken,
    }


def donor_wants_tts(payload: dict[str, Any]) -> bool:
    """The donor's checkbox; events without it (gifts, older donations) count as "yes"."""
    return payload.get("tts") is not False


def decorate(body: str, settings: AlertSettings, automod: AutoMod) -> str | None:
    """A stored alert frame with its `display` added, or None when it is not to be shown."""
    frame = json.loads(body)
    shown = display(frame, settings, automod)
    if shown is None:
        return None
    frame["display"] = shown
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
