"""Revenue-share rules: what part of each source of income goes to the streamer."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from services.money import Split, split_revenue


class RevenueSource(StrEnum):
    DONATION = "donation"
    SUBSCRIPTION = "subscription"
    GIFT = "gift"
    SPONSORED = "sponsored"


# The plan's shares to the streamer; the platform keeps the rest.
STREAMER_SHARE: dict[RevenueSource, Decimal] = {
    RevenueSource.DONATION: Decimal("0.85"),
    RevenueSource.SUBSCRIPTION: Decimal("0.70"),
    RevenueSource.GIFT: Decimal("0.80"),
    RevenueSource.SPONSORED: Decimal("0.90"),
}


def split_for(source: RevenueSource, gross_minor: int) -> Split:
    """Split one payment (or its reversal) of `source` between streamer and platform."""
    return split_revenue(gross_minor, STREAMER_SHARE[source])
