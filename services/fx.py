"""The dated FX table: roubles per unit of each currency, valid from a date until the next row.

Conversion to the settlement currency uses the rate in force on the event's date, as a Decimal, and
the one rounding rule of `services.money`.
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from services.money import SETTLEMENT_CURRENCY, Currency, Money

FX_TABLE = Path(__file__).parent / "data" / "fx_rates.csv"


class MissingRate(LookupError):
    """No rate for that currency on or before that date."""


@dataclass(frozen=True)
class FxTable:
    rows: dict[Currency, list[tuple[date, Decimal]]]

    @classmethod
    def load(cls, path: Path = FX_TABLE) -> FxTable:
        rows: dict[Currency, list[tuple[date, Decimal]]] = {}
        with open(path, newline="") as fh:
            for rec in csv.DictReader(fh):
                rows.setdefault(Currency(rec["currency"]), []).append(
                    (date.fromisoformat(rec["date"]), Decimal(rec["rub_per_unit"]))
                )
        return cls({cur: sorted(series) for cur, series in rows.items()})

    def rate(self, currency: Currency, on: date) -> Decimal:
        if currency == SETTLEMENT_CURRENCY:
            return Decimal(1)
        series = self.rows.get(currency, [])
        idx = bisect.bisect_right(series, (on, Decimal("Infinity"))) - 1
        if idx < 0:
            raise MissingRate(f"no {currency}/RUB rate on or before {on}")
        return series[idx][1]

    def to_rub(self, money: Money, on: date) -> Money:
        return money.convert(self.rate(money.currency, on), SETTLEMENT_CURRENCY)
