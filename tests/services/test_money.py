from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.money import Currency, Money, format_minor, round_half_up, split_revenue
from services.revenue import STREAMER_SHARE, RevenueSource, split_for


def test_round_half_up_rounds_halves_away_from_zero() -> None:
    assert round_half_up(Decimal("850.5")) == 851
    assert round_half_up(Decimal("850.49")) == 850
    assert round_half_up(Decimal("-850.5")) == -851


def test_donation_split_by_hand() -> None:
    # 10.01 RUB: 85% = 8.5085 -> 8.51 to the streamer, the platform keeps the remainder 1.50.
    assert split_for(RevenueSource.DONATION, 1001) == split_revenue(1001, Decimal("0.85"))
    s = split_for(RevenueSource.DONATION, 1001)
    assert (s.streamer_minor, s.platform_minor) == (851, 150)


def test_plan_shares() -> None:
    assert STREAMER_SHARE == {
        RevenueSource.DONATION: Decimal("0.85"),
        RevenueSource.SUBSCRIPTION: Decimal("0.70"),
        RevenueSource.GIFT: Decimal("0.80"),
        RevenueSource.SPONSORED: Decimal("0.90"),
    }


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(list(RevenueSource)))
def test_parts_always_sum_to_the_whole(gross: int, source: RevenueSource) -> None:
    s = split_for(source, gross)
    assert s.streamer_minor + s.platform_minor == gross
    # A reversal undoes exactly what the payment credited.
    assert split_for(source, -gross).streamer_minor == -s.streamer_minor


def test_money_refuses_floats_and_bools() -> None:
    with pytest.raises(TypeError):
        Money(10.5, Currency.RUB)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, Currency.RUB)


def test_convert_and_format() -> None:
    assert Money(1001, Currency.USD).convert(Decimal("80.1214"), Currency.RUB) == Money(80202, Currency.RUB)
    assert format_minor(1234567, "RUB") == "12 345.67 RUB"
    assert format_minor(-5, "RUB") == "-0.05 RUB"
