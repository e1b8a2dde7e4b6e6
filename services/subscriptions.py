"""Subscription rules: tiers and prices, billing periods, proration, streaks and the state machine.

Pure functions and constants, no I/O, so the node, the data platform and the tests share one truth.
Prices are integer kopecks; proration multiplies by a Decimal fraction of the period and rounds
half-up once (`services.money.round_half_up`), and every split is built so its parts sum to the
whole to the kopeck.

Upgrade rule: the difference for the rest of the current period is charged now (the unused part of
the old price is credited against the new price for the same remaining time), and the new tier
applies as soon as that charge settles; the period end does not move.
Downgrade rule: nothing is charged or credited; the lower tier takes effect at the next renewal
(perks already paid for are kept to the end of the period, as with a cancellation).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from services.money import Currency, round_half_up

SUBSCRIPTION_CURRENCY = Currency.RUB
RENEWAL_NOTICE_DAYS = 3  # a notice goes out this many days before a renewal is charged


class Tier(StrEnum):
    SUPPORTER = "supporter"
    VIP = "vip"
    CHAMPION = "champion"


# Monthly prices in kopecks (Supporter 199 ₽, VIP 499 ₽, Champion 999 ₽) and the order of the tiers.
TIER_PRICE_MINOR: dict[Tier, int] = {Tier.SUPPORTER: 19_900, Tier.VIP: 49_900, Tier.CHAMPION: 99_900}
TIER_RANK: dict[Tier, int] = {Tier.SUPPORTER: 1, Tier.VIP: 2, Tier.CHAMPION: 3}
TIER_BADGE: dict[Tier, str] = {
    Tier.SUPPORTER: "badge-supporter",
    Tier.VIP: "badge-vip",
    Tier.CHAMPION: "badge-champion",
}


class SubStatus(StrEnum):
    PENDING = "pending"  # waiting for the first payment
    FAILED = "failed"  # the first payment was declined; never active
    ACTIVE = "active"
    PAUSED = "paused"  # perks and renewals stop; the unused time is kept for the resume
    CANCELLED = "cancelled"  # no renewal; perks kept to the period end, then expired
    EXPIRED = "expired"


class Action(StrEnum):
    ACTIVATE = "activate"
    FAIL = "fail"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    RENEW = "renew"
    EXPIRE = "expire"


# The state machine: (state, action) -> next state. Anything else is refused with a clear reason.
TRANSITIONS: dict[tuple[SubStatus, Action], SubStatus] = {
    (SubStatus.PENDING, Action.ACTIVATE): SubStatus.ACTIVE,
    (SubStatus.PENDING, Action.FAIL): SubStatus.FAILED,
    (SubStatus.ACTIVE, Action.CANCEL): SubStatus.CANCELLED,
    (SubStatus.PAUSED, Action.CANCEL): SubStatus.CANCELLED,
    (SubStatus.ACTIVE, Action.PAUSE): SubStatus.PAUSED,
    (SubStatus.PAUSED, Action.RESUME): SubStatus.ACTIVE,
    (SubStatus.ACTIVE, Action.UPGRADE): SubStatus.ACTIVE,
    (SubStatus.ACTIVE, Action.DOWNGRADE): SubStatus.ACTIVE,
    (SubStatus.ACTIVE, Action.RENEW): SubStatus.ACTIVE,
    (SubStatus.ACTIVE, Action.EXPIRE): SubStatus.EXPIRED,
    (SubStatus.CANCELLED, Action.EXPIRE): SubStatus.EXPIRED,
}


class TransitionRefused(ValueError):
    """An action that the subscription's state does not allow (the API answers 409 with this text)."""


def next_status(current: SubStatus, action: Action) -> SubStatus:
    target = TRANSITIONS.get((current, action))
    if target is None:
        raise TransitionRefused(f"cannot {action} a {current} subscription")
    return target


def parse_tier(value: str) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        raise ValueError(f"unknown tier {value!r}; tiers are {', '.join(t.value for t in Tier)}") from None


def add_month(moment: datetime) -> datetime:
    """The same day and time next month, clamped to the month's last day (31 Jan -> 28/29 Feb)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def remaining_fraction(period_start: datetime, period_end: datetime, now: datetime) -> Decimal:
    """The unused part of a period at `now`, in [0, 1], from whole microseconds (exact Decimal)."""
    total = _micros(period_end - period_start)
    if total <= 0:
        raise ValueError("a period must end after it starts")
    left = min(max(_micros(period_end - now), 0), total)
    return Decimal(left) / Decimal(total)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class PeriodSplit:
    """A price split into the part used so far and the unused rest; `used + unused == price`."""

    price_minor: int
    used_minor: int
    unused_minor: int


def split_period(price_minor: int, fraction_left: Decimal) -> PeriodSplit:
    """The unused part is rounded half-up once; the used part takes the remainder, so both sum exactly."""
    if not Decimal(0) <= fraction_left <= Decimal(1):
        raise ValueError("fraction_left must be within [0, 1]")
    unused = round_half_up(Decimal(price_minor) * fraction_left)
    return PeriodSplit(price_minor, price_minor - unused, unused)


@dataclass(frozen=True, slots=True)
class Proration:
    """An upgrade for the rest of a period: `charge = new_for_rest - credit` (never negative).

    `credit_minor` is the unused part of the old price, `new_for_rest_minor` the new price for the same
    remaining time; `credit + charge == new_for_rest` to the kopeck.
    """

    old_tier: Tier
    new_tier: Tier
    fraction_left: Decimal
    credit_minor: int
    new_for_rest_minor: int
    charge_minor: int


def prorate_upgrade(old: Tier, new: Tier, fraction_left: Decimal) -> Proration:
    if TIER_RANK[new] <= TIER_RANK[old]:
        raise ValueError(f"{new} is not an upgrade from {old}")
    credit = split_period(TIER_PRICE_MINOR[old], fraction_left).unused_minor
    new_for_rest = split_period(TIER_PRICE_MINOR[new], fraction_left).unused_minor
    return Proration(old, new, fraction_left, credit, new_for_rest, new_for_rest - credit)


def is_upgrade(old: Tier, new: Tier) -> bool:
    return TIER_RANK[new] > TIER_RANK[old]


def next_streak(streak_months: int, renewed_on_time: bool) -> int:
    """A streak counts consecutive paid months: a renewal continues it, a lapse starts over at 1."""
    return streak_months + 1 if renewed_on_time else 1


def notice_due(period_end: datetime, now: datetime, days: int = RENEWAL_NOTICE_DAYS) -> bool:
    """True once `now` is within `days` of the renewal (and the renewal is not yet due)."""
    return period_end - timedelta(days=days) <= now < period_end
