"""Screening one donation before it is recorded: the channel's rules, fraud rules and message moderation.

The outcome is data (`Screened`): a refusal (status and detail), or what to record: the fee, whether to
hold it for review and why, and the message the alert may show. Message moderation is the chat's own
auto-moderation (`services.chat.automod`) with the channel's chat configuration, so a word the streamer
blocked in chat is blocked in donations too; the per-user repeat rule does not apply to donations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ingest_node.chat.models import ChatChannelSettings
from ingest_node.money import donation_rules
from ingest_node.money.donation_rules import DonationEdge
from ingest_node.money.edge_guard import EdgeGuard, tripped_rule
from ingest_node.schemas import DonationIn
from services.chat.automod import Action, AutoMod, AutoModConfig, Rule
from services.settings import Settings

SKIPPED_RULES = frozenset({Rule.REPEAT})


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str


@dataclass(frozen=True)
class Screened:
    quote: donation_rules.Quote
    held_reason: str | None
    message: str  # what alerts show
    hidden_message: str | None  # the donor's message when moderation hid it
    moderation: str | None
    ip_hash: str
    card_hash: str
    device_hash: str | None

    def edge_row(self, donation_id: str, channel_id: str, token: str) -> DonationEdge:
        return DonationEdge(
            donation_id=donation_id,
            channel_id=channel_id,
            ip_hash=self.ip_hash,
            card_hash=self.card_hash,
            device_hash=self.device_hash,
            amount_minor=self.quote.amount_minor,
            fee_minor=self.quote.fee_minor,
            charged_minor=self.quote.charged_minor,
            hidden_message=self.hidden_message,
            moderation=self.moderation,
            review="held" if self.held_reason else "none",
            held_reason=self.held_reason,
            held_token=token if self.held_reason else None,
        )


def screen(
    session: Session,
    settings: Settings,
    guard: EdgeGuard,
    body: DonationIn,
    *,
    ip: str,
    device: str | None,
) -> Screened | Refusal:
    """Decide in the caller's (read) transaction; nothing is written here."""
    rules = donation_rules.rules_of(session, body.channel_id)
    bounds = donation_rules.bounds_for(settings, rules, body.currency)
    if not bounds.min_minor <= body.amount_minor <= bounds.max_minor:
        return Refusal(
            422,
            f"amount_minor must be between {bounds.min_minor} and {bounds.max_minor} minor units "
            f"for {body.currency.value} donations to this channel",
        )
    if body.cover_fee and not (rules is not None and rules.donor_covers_fee):
        return Refusal(422, "this channel does not offer donors to cover the fee; send cover_fee false")
    card_hash = donation_rules.fingerprint(body.payment_token, settings)
    device_hash = donation_rules.fingerprint(device, settings) if device else None
    ip_hash = donation_rules.fingerprint(ip, settings)
    held: str | None = None
    if not guard.exempt(ip):
        if donation_rules.is_flagged(session, card_hash, device_hash):
            held = "flagged_donor"
        else:
            keys = {"ip_hash": ip_hash, "card_hash": card_hash, "device_hash": device_hash}
            rule = tripped_rule(session, guard.rules, body.amount_minor, keys)
            held = rule.name if rule is not None else None
    message, hidden, moderation = body.message, None, None
    verdict = _automod(session, body.channel_id).evaluate(
        body.message, user="donation", now=0.0, skip=SKIPPED_RULES
    )
    if verdict is not None:
        moderation = f"{verdict.rule}: {verdict.detail}"[:200]
        approval = rules is not None and rules.requires_approval
        if held is None and (verdict.action is Action.HOLD or approval):
            held = f"moderation_{verdict.rule}"
        elif held is None:
            message, hidden = "", body.message
    if held is None and rules is not None and rules.requires_approval:
        held = "manual_approval"
    return Screened(
        quote=donation_rules.quote(body.amount_minor, body.cover_fee),
        held_reason=held,
        message=message,
        hidden_message=hidden,
        moderation=moderation,
        ip_hash=ip_hash,
        card_hash=card_hash,
        device_hash=device_hash,
    )


def _automod(session: Session, channel_id: str) -> AutoMod:
    row = session.get(ChatChannelSettings, channel_id)
    return AutoMod(AutoModConfig.model_validate_json(row.automod if row and row.automod else "{}"))
