"""The pure parts of the demo: seeded draws of amounts, currencies, donors and payment tokens.

The HTTP side is exercised against the real node by tests/e2e/test_make_up.py.
"""

from __future__ import annotations

import statistics
from collections import Counter
from decimal import Decimal

import pytest

from services.demo import (
    CURRENCY_WEIGHTS,
    DemoError,
    DemoSender,
    DemoStats,
    DonationFactory,
    demo_channels,
    run_demo,
)
from services.money import Currency

RATES = {Currency.RUB: Decimal(1), Currency.USD: Decimal("90"), Currency.EUR: Decimal("100")}
CHANNELS = ["kotik-plays", "speedrun-sasha", "pixel-knight"]


def factory(seed: int = 7, **kwargs: int) -> DonationFactory:
    return DonationFactory(CHANNELS, seed=seed, rates=RATES, **kwargs)  # type: ignore[arg-type]


def test_rouble_amounts_have_a_median_near_450() -> None:
    f = factory()
    draws = [f.amount(Currency.RUB) for _ in range(10_000)]
    assert 42_000 <= statistics.median(draws) <= 48_000
    assert all(type(a) is int for a in draws)
    assert min(draws) >= 1_000 and max(draws) <= 5_000_000
    # Mostly whole roubles, but not only.
    whole = sum(a % 100 == 0 for a in draws) / len(draws)
    assert 0.85 <= whole < 1.0
    # The tail is long: some donations of thousands of roubles.
    assert max(draws) > 500_000


def test_bounds_are_respected_also_when_narrowed() -> None:
    f = factory(min_minor=5_000, max_minor=100_000)
    draws = [f.amount(cur) for cur in Currency for _ in range(3_000)]
    assert min(draws) == 5_000 and max(draws) == 100_000


def test_foreign_amounts_are_scaled_by_the_rate() -> None:
    f = factory(min_minor=1, max_minor=10**9)
    usd = [f.amount(Currency.USD) for _ in range(5_000)]
    # 450 RUB at 90 RUB/USD is about 5 dollars (500 cents).
    assert 400 <= statistics.median(usd) <= 600
    assert all(type(a) is int and a >= 1 for a in usd)


def test_drafts_are_valid_api_bodies() -> None:
    f = factory()
    drafts = [f.draft() for _ in range(5_000)]
    for d in drafts[:500]:
        body = d.body()
        assert set(body) == {
            "channel_id",
            "amount_minor",
            "currency",
            "message",
            "donor_name",
            "payment_token",
        }
        assert type(body["amount_minor"]) is int and 1_000 <= body["amount_minor"] <= 5_000_000
        assert body["currency"] in {"RUB", "USD", "EUR"}
        assert len(body["message"]) <= 300
        assert body["channel_id"] in CHANNELS
    currencies = Counter(d.currency for d in drafts)
    assert currencies[Currency.RUB] / len(drafts) > 0.8
    assert currencies[Currency.USD] > 0 and currencies[Currency.EUR] > 0
    tokens = Counter(d.payment_token for d in drafts)
    assert tokens["tok_success"] / len(drafts) > 0.85
    for unhappy in ("tok_fail", "tok_refund", "tok_chargeback"):
        assert 0.01 < tokens[unhappy] / len(drafts) < 0.06
    donors = Counter(d.donor_name for d in drafts)
    assert 0.15 < donors[None] / len(drafts) < 0.35
    names = {n for n in donors if n}
    assert any(any("а" <= ch <= "я" for ch in n.lower()) for n in names)  # Russian names
    assert any(n.isascii() for n in names)  # and English ones
    # The first channel is the most popular one.
    channels = Counter(d.channel_id for d in drafts)
    assert channels.most_common(1)[0][0] == CHANNELS[0]


def test_the_same_seed_gives_the_same_traffic() -> None:
    a, b, c = factory(seed=42), factory(seed=42), factory(seed=43)
    first = [a.draft() for _ in range(200)]
    assert first == [b.draft() for _ in range(200)]
    assert first != [c.draft() for _ in range(200)]


def test_currency_weights_sum_to_one() -> None:
    assert sum(CURRENCY_WEIGHTS.values()) == pytest.approx(1.0)


def test_demo_channels_are_slugs_and_unique() -> None:
    chans = demo_channels(12)
    ids = [c.channel_id for c in chans]
    assert len(set(ids)) == 12
    assert all(cid.replace("-", "").isalnum() and cid.isascii() and cid == cid.lower() for cid in ids)
    assert [c.channel_id for c in demo_channels(2)] == ids[:2]
    with pytest.raises(ValueError):
        demo_channels(0)


def test_bad_factory_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        DonationFactory([], rates=RATES)
    with pytest.raises(ValueError):
        DonationFactory(CHANNELS, min_minor=10, max_minor=5, rates=RATES)


def test_idempotency_keys_are_fresh_and_valid() -> None:
    sender = DemoSender("http://127.0.0.1:9", "token")
    other = DemoSender("http://127.0.0.1:9", "token")
    try:
        keys = [sender.next_key() for _ in range(100)] + [other.next_key() for _ in range(100)]
    finally:
        sender.close()
        other.close()
    assert len(set(keys)) == 200
    assert all(8 <= len(k) <= 128 and k.isprintable() for k in keys)


def test_unreachable_node_is_a_clear_error() -> None:
    """Channel creation retries, then says the node did not answer (port 9 is discard: closed here)."""
    sender = DemoSender("http://127.0.0.1:9", "token", attempts=2, backoff=0.01, echo=lambda _: None)
    try:
        with pytest.raises(DemoError, match="did not answer"):
            sender.ensure_channels(demo_channels(1))
    finally:
        sender.close()


def test_missing_admin_token_is_a_clear_error() -> None:
    with pytest.raises(DemoError, match="EFIR_ADMIN_TOKEN"):
        run_demo("http://127.0.0.1:9", "", rate=1, channels=1, count=1, echo=lambda _: None)
    with pytest.raises(DemoError, match="rate"):
        run_demo("http://127.0.0.1:9", "t", rate=0, channels=1, count=1, echo=lambda _: None)


def test_progress_line() -> None:
    assert DemoStats(10, 8, 1, 1).line() == "demo: sent 10, accepted 8, rejected 1, gave up 1"
