"""Subscription rules: prices, proration (hypothesis: parts sum to the whole), periods, states, streaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import subscriptions as rules
from services.revenue import RevenueSource, split_for
from services.subscriptions import Action, SubStatus, Tier

fractions = st.fractions(min_value=0, max_value=1).map(
    lambda f: Decimal(f.numerator) / Decimal(f.denominator)
)
tiers = st.sampled_from(list(Tier))


def test_tier_prices_are_the_plans() -> None:
    assert rules.TIER_PRICE_MINOR == {Tier.SUPPORTER: 19_900, Tier.VIP: 49_900, Tier.CHAMPION: 99_900}


def test_unknown_tier_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown tier 'gold'"):
        rules.parse_tier("gold")
    assert rules.parse_tier("vip") is Tier.VIP


@given(price=st.integers(min_value=0, max_value=10**12), fraction=fractions)
def test_period_split_sums_to_the_price(price: int, fraction: Decimal) -> None:
    part = rules.split_period(price, fraction)
    assert part.used_minor + part.unused_minor == price
    assert 0 <= part.unused_minor <= price


@given(old=tiers, new=tiers, fraction=fractions)
def test_upgrade_proration_parts_sum_to_the_whole(old: Tier, new: Tier, fraction: Decimal) -> None:
    if rules.TIER_RANK[new] <= rules.TIER_RANK[old]:
        with pytest.raises(ValueError, match="not an upgrade"):
            rules.prorate_upgrade(old, new, fraction)
        return
    p = rules.prorate_upgrade(old, new, fraction)
    assert p.credit_minor + p.charge_minor == p.new_for_rest_minor
    assert p.charge_minor >= 0
    # What the subscriber pays in the period: old used part + the charge + (new used part after) ...
    old_split = rules.split_period(rules.TIER_PRICE_MINOR[old], fraction)
    assert old_split.used_minor + p.credit_minor == rules.TIER_PRICE_MINOR[old]
    # ... and the streamer/platform split of the charge sums to the charge to the kopeck.
    share = split_for(RevenueSource.SUBSCRIPTION, p.charge_minor)
    assert share.streamer_minor + share.platform_minor == p.charge_minor


def test_upgrade_halfway_charges_half_the_difference() -> None:
    p = rules.prorate_upgrade(Tier.SUPPORTER, Tier.CHAMPION, Decimal("0.5"))
    assert (p.credit_minor, p.new_for_rest_minor, p.charge_minor) == (9_950, 49_950, 40_000)


def test_remaining_fraction_is_clamped_and_exact() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = datetime(2025, 2, 1, tzinfo=UTC)
    assert rules.remaining_fraction(start, end, start) == 1
    assert rules.remaining_fraction(start, end, end + timedelta(days=3)) == 0
    assert rules.remaining_fraction(start, end, start - timedelta(days=3)) == 1
    assert rules.remaining_fraction(start, end, start + (end - start) / 2) == Decimal("0.5")
    with pytest.raises(ValueError):
        rules.remaining_fraction(end, start, start)


def test_add_month_clamps_to_the_last_day() -> None:
    assert rules.add_month(datetime(2025, 1, 31, 12, tzinfo=UTC)) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert rules.add_month(datetime(2024, 12, 15, tzinfo=UTC)) == datetime(2025, 1, 15, tzinfo=UTC)


def test_state_machine_refuses_what_the_issue_names() -> None:
    assert rules.next_status(SubStatus.ACTIVE, Action.CANCEL) is SubStatus.CANCELLED
    with pytest.raises(rules.TransitionRefused, match="cannot cancel a cancelled subscription"):
        rules.next_status(SubStatus.CANCELLED, Action.CANCEL)
    with pytest.raises(rules.TransitionRefused, match="cannot upgrade a paused subscription"):
        rules.next_status(SubStatus.PAUSED, Action.UPGRADE)
    assert rules.next_status(SubStatus.PAUSED, Action.RESUME) is SubStatus.ACTIVE
    assert rules.next_status(SubStatus.CANCELLED, Action.EXPIRE) is SubStatus.EXPIRED
    with pytest.raises(rules.TransitionRefused):
        rules.next_status(SubStatus.EXPIRED, Action.RESUME)


def test_streaks_and_notices() -> None:
    assert rules.next_streak(4, renewed_on_time=True) == 5
    assert rules.next_streak(4, renewed_on_time=False) == 1
    end = datetime(2025, 3, 10, tzinfo=UTC)
    assert not rules.notice_due(end, end - timedelta(days=4))
    assert rules.notice_due(end, end - timedelta(days=2))
    assert not rules.notice_due(end, end)
