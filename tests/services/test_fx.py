from datetime import date
from decimal import Decimal

import pytest

from services.fx import FxTable, MissingRate
from services.money import Currency, Money


def test_rate_in_force_on_a_date() -> None:
    table = FxTable.load()
    assert table.rate(Currency.USD, date(2026, 6, 30)) == Decimal("78.2326")
    assert table.rate(Currency.USD, date(2026, 7, 1)) == Decimal("80.1214")
    assert table.rate(Currency.RUB, date(2020, 1, 1)) == Decimal(1)


def test_conversion_rounds_once_half_up() -> None:
    table = FxTable.load()
    # 10.01 USD * 80.1214 = 802.015214 RUB -> 802.02
    assert table.to_rub(Money(1001, Currency.USD), date(2026, 11, 28)) == Money(80202, Currency.RUB)


def test_missing_rate_is_a_clear_error() -> None:
    with pytest.raises(MissingRate, match="EUR"):
        FxTable.load().rate(Currency.EUR, date(2000, 1, 1))
