"""Per-channel donation settings, the per-donation edge record, flagged donors, and the donor's fee.

A streamer narrows the global 10..50,000 bounds per currency, offers preset amounts, asks for manual
approval, and lets donors cover the fee. The fee a donor covers is the platform's part of the revenue
split (`services.revenue.split_for`) of the amount they chose: it is charged on top, the donation itself
stays the chosen amount, so the streamer's credit is exactly that amount's share. Reading messages aloud
is not here: the alert settings hold the channel's one TTS switch (`ingest_node.money.alert_settings`),
which the donation-settings route still accepts and shows as `tts_enabled`.

`donation_edges` keeps what the edge checks need per donation (hashed IP, card and device fingerprints,
the fee, the original message when it was hidden, the review state); `flagged_donors` holds cards and
devices of donors who charged back, whose next donations are held for review.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest_node.models import Base, UTCDateTime, utcnow
from services.money import Currency
from services.revenue import RevenueSource, split_for
from services.settings import Settings


class DonationRules(Base):
    """One row per channel; limits are JSON `{"RUB": [min, max], ...}` of minor units."""

    __tablename__ = "donation_rules"
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), primary_key=True)
    limits: Mapped[dict[str, list[int]]] = mapped_column(sa.JSON, default=dict)
    presets: Mapped[dict[str, list[int]]] = mapped_column(sa.JSON, default=dict)
    requires_approval: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    donor_covers_fee: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DonationEdge(Base):
    """What the edge knew about one donation; fingerprints are SHA-256, the raw token only while held."""

    __tablename__ = "donation_edges"
    donation_id: Mapped[str] = mapped_column(sa.ForeignKey("donations.donation_id"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    ip_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    card_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    device_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    fee_minor: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    charged_minor: Mapped[int] = mapped_column(sa.BigInteger)
    hidden_message: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    moderation: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    review: Mapped[str] = mapped_column(sa.String(16), default="none")  # none | held | approved | rejected
    held_reason: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    held_token: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FlaggedDonor(Base):
    """A card or device fingerprint whose owner charged back; kind is `card` or `device`."""

    __tablename__ = "flagged_donors"
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    donation_id: Mapped[str] = mapped_column(sa.String(36))
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def fingerprint(value: str, settings: Settings) -> str:
    """One-way fingerprint of an IP, payment token or device id: the edge never stores them raw.

    Keyed (HMAC): a plain hash of an IPv4 address is reversed by trying all 2^32 of them."""
    key = settings.fingerprint_secret.get_secret_value().encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


# ---- the rules a donation must meet --------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    min_minor: int
    max_minor: int


def bounds_for(settings: Settings, rules: DonationRules | None, currency: Currency) -> Bounds:
    """The channel's range for `currency`, never wider than the global one."""
    low, high = settings.donation_min_minor, settings.donation_max_minor
    if rules is not None and currency.value in (rules.limits or {}):
        narrowed = rules.limits[currency.value]
        low, high = max(low, narrowed[0]), min(high, narrowed[1])
    return Bounds(low, high)


def donor_fee(amount_minor: int) -> int:
    """The platform's part of the split of `amount_minor`: what a donor covering the fee adds on top."""
    return split_for(RevenueSource.DONATION, amount_minor).platform_minor


@dataclass(frozen=True)
class Quote:
    """What the donor sees before paying: the donation, the fee they cover, and the charge."""

    amount_minor: int
    fee_minor: int
    charged_minor: int
    streamer_minor: int


def quote(amount_minor: int, cover_fee: bool) -> Quote:
    fee = donor_fee(amount_minor) if cover_fee else 0
    streamer = split_for(RevenueSource.DONATION, amount_minor).streamer_minor
    return Quote(amount_minor, fee, amount_minor + fee, streamer)


def rules_of(session: Session, channel_id: str) -> DonationRules | None:
    return session.get(DonationRules, channel_id)


def is_flagged(session: Session, card_hash: str, device_hash: str | None) -> bool:
    keys = [("card", card_hash)] + ([("device", device_hash)] if device_hash else [])
    return any(session.get(FlaggedDonor, key) is not None for key in keys)


def flag_donor(session: Session, donation_id: str, reason: str) -> int:
    """Flag the card and device of `donation_id` (in the caller's transaction); returns how many new flags."""
    edge = session.get(DonationEdge, donation_id)
    if edge is None:
        return 0
    added = 0
    for kind, value in (("card", edge.card_hash), ("device", edge.device_hash)):
        if value and session.get(FlaggedDonor, (kind, value)) is None:
            session.add(
                FlaggedDonor(kind=kind, fingerprint=value, donation_id=donation_id, reason=reason[:300])
            )
            added += 1
    return added


def charged_amount(session: Session, donation_id: str, amount_minor: int) -> int:
    """What the provider charges for a donation: its amount plus the fee its donor covered."""
    edge = session.get(DonationEdge, donation_id)
    return edge.charged_minor if edge is not None else amount_minor


def fingerprints(session: Session, donation_id: str) -> dict[str, str | None]:
    """The keyed IP, card and device fingerprints the edge saw, for the settled event: the fraud model
    learns velocity and diversity from them in the lake (never a raw address or card)."""
    edge = session.get(DonationEdge, donation_id)
    if edge is None:
        return {"ip_hash": None, "card_hash": None, "device_hash": None}
    return {"ip_hash": edge.ip_hash, "card_hash": edge.card_hash, "device_hash": edge.device_hash}
