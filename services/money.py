"""Money in integer minor units, and the single rounding rule of Efir.

Floats never hold money. Rates and shares are Decimal; a product is rounded half-up to the minor
unit exactly once, and the remainder of a split goes to the platform, so parts always sum to the
whole to the kopeck.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum


class Currency(StrEnum):
    RUB = "RUB"
    USD = "USD"
    EUR = "EUR"


SETTLEMENT_CURRENCY = Currency.RUB
# All supported currencies have 100 minor units per major unit.
MINOR_PER_MAJOR = 100


def round_half_up(value: Decimal) -> int:
    """The one rounding rule: half-up to a whole minor unit."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency, in minor units (kopecks, cents)."""

    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor must be an int of minor units")

    def convert(self, rate: Decimal, to: Currency) -> Money:
        """Convert with a Decimal rate (units of `to` per unit of self.currency)."""
        return Money(round_half_up(Decimal(self.amount_minor) * rate), to)


@dataclass(frozen=True, slots=True)
class Split:
    """A gross amount split between the streamer and the platform."""

    gross_minor: int
    streamer_minor: int
    platform_minor: int


def split_revenue(gross_minor: int, streamer_rate: Decimal) -> Split:
    """Streamer share rounded half-up once; the platform takes the remainder so the parts sum exactly.

    A negative gross (a refund or chargeback) splits to the exact negatives of the positive split, so
    a reversal undoes precisely what the original credited.
    """
    sign = -1 if gross_minor < 0 else 1
    streamer = round_half_up(Decimal(abs(gross_minor)) * streamer_rate)
    return Split(gross_minor, sign * streamer, gross_minor - sign * streamer)


def format_minor(amount_minor: int, currency: Currency | str) -> str:
    """Human form for logs and pages: 1234567 RUB -> '12 345.67 RUB'."""
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), MINOR_PER_MAJOR)
    return f"{sign}{major:,}.{minor:02d} {currency}".replace(",", " ")
