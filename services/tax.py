"""Tax withheld from a payout, by the streamer's tax status, from the tables in `data/tax_rates.yaml`.

Two regimes: the self-employed (НПД) pay a flat rate that depends on who paid them (individuals or
companies); individuals (НДФЛ) pay a progressive scale on their income since 1 January, each rate on the
part of that income inside its band. The НДФЛ of a payout is computed cumulatively, as Russian employers
do: tax due on the year-to-date income after the payout, minus tax due on the income before it, each
rounded half-up to the kopeck once. So the payouts of a year withhold, together, exactly the tax on their
sum, however the year's income is split between periods and whichever bands a payout crosses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from services.money import MINOR_PER_MAJOR, round_half_up
from services.revenue import RevenueSource

TAX_RATES_FILE = Path(__file__).resolve().parent / "data" / "tax_rates.yaml"


class TaxStatus(StrEnum):
    SELF_EMPLOYED = "self_employed"
    INDIVIDUAL = "individual"


class PayerKind(StrEnum):
    """Who paid the platform: НПД taxes income from individuals and from companies differently."""

    INDIVIDUAL = "individual"
    COMPANY = "company"


class TaxTableError(ValueError):
    """The tax table is malformed or has no rule for what was asked."""


@dataclass(frozen=True, slots=True)
class Band:
    """One band of a progressive scale: `rate` on income above the previous band's limit up to `up_to`."""

    up_to_minor: int | None
    rate: Decimal


@dataclass(frozen=True, slots=True)
class Scale:
    valid_from: date
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class TaxTables:
    """The configurable tables: payer kind per revenue source, НПД rates, dated НДФЛ scales."""

    payer_by_source: Mapping[RevenueSource, PayerKind]
    self_employed: Mapping[PayerKind, Decimal]
    ndfl: tuple[Scale, ...]

    @classmethod
    def load(cls, path: Path = TAX_RATES_FILE) -> TaxTables:
        return _load(path)

    @classmethod
    def parse(cls, data: Any) -> TaxTables:
        """Build the tables from the YAML's structure; anything missing or odd is a TaxTableError."""
        try:
            payer = {RevenueSource(k): PayerKind(v) for k, v in data["payer_by_source"].items()}
            flat = {PayerKind(k): _rate(v) for k, v in data["self_employed"].items()}
            scales = tuple(
                sorted(
                    (
                        Scale(
                            date.fromisoformat(str(s["valid_from"])),
                            tuple(
                                Band(
                                    None if b["up_to_rub"] is None else int(b["up_to_rub"]) * MINOR_PER_MAJOR,
                                    _rate(b["rate"]),
                                )
                                for b in s["bands"]
                            ),
                        )
                        for s in data["ndfl"]
                    ),
                    key=lambda s: s.valid_from,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TaxTableError(f"malformed tax table: {exc!r}") from exc
        missing = set(RevenueSource) - set(payer)
        if missing:
            raise TaxTableError(f"tax table names no payer kind for {sorted(missing)}")
        if set(flat) != set(PayerKind):
            raise TaxTableError("self_employed needs a rate for every payer kind")
        for scale in scales:
            limits = [b.up_to_minor for b in scale.bands]
            if not limits or limits[-1] is not None or None in limits[:-1]:
                raise TaxTableError(f"scale from {scale.valid_from}: only the last band may be open-ended")
            if limits[:-1] != sorted(set(limits[:-1])):  # type: ignore[type-var]
                raise TaxTableError(f"scale from {scale.valid_from}: band limits must increase")
        return cls(payer, flat, scales)

    def scale_on(self, day: date) -> Scale:
        """The НДФЛ scale in force on `day` (the latest one valid from on or before it)."""
        valid = [s for s in self.ndfl if s.valid_from <= day]
        if not valid:
            raise TaxTableError(f"no НДФЛ scale in force on {day.isoformat()}")
        return valid[-1]


def _rate(raw: object) -> Decimal:
    # Rates come as strings so YAML never turns them into floats; a float here would be a typo.
    if not isinstance(raw, str):
        raise TaxTableError(f"rate {raw!r} must be a quoted decimal string")
    rate = Decimal(raw)
    if not Decimal(0) <= rate < Decimal(1):
        raise TaxTableError(f"rate {raw} is not a fraction")
    return rate


@cache
def _load(path: Path) -> TaxTables:
    return TaxTables.parse(yaml.safe_load(path.read_text()))


def progressive_tax(scale: Scale, income_minor: int) -> Decimal:
    """Exact (unrounded) tax on a year's income: each band's rate on the income inside the band."""
    tax = Decimal(0)
    lower = 0
    for band in scale.bands:
        if income_minor <= lower:
            break
        upper = income_minor if band.up_to_minor is None else min(income_minor, band.up_to_minor)
        tax += Decimal(upper - lower) * band.rate
        if band.up_to_minor is None:
            break
        lower = band.up_to_minor
    return tax


def ndfl_withheld(tables: TaxTables, paid_on: date, ytd_before_minor: int, gross_minor: int) -> int:
    """НДФЛ on a payout of `gross_minor` when `ytd_before_minor` was paid earlier in the same year."""
    scale = tables.scale_on(paid_on)
    before = max(ytd_before_minor, 0)
    after = max(ytd_before_minor + gross_minor, 0)
    return round_half_up(progressive_tax(scale, after)) - round_half_up(progressive_tax(scale, before))


def npd_withheld(tables: TaxTables, gross_by_payer: Mapping[PayerKind, int]) -> int:
    """НПД on a payout: each payer kind's rate on its part of the payout, rounded once over the sum."""
    exact = sum(
        (Decimal(amount) * tables.self_employed[kind] for kind, amount in gross_by_payer.items()), Decimal(0)
    )
    return max(round_half_up(exact), 0)


def withheld(
    tables: TaxTables,
    status: TaxStatus,
    *,
    paid_on: date,
    gross_by_payer: Mapping[PayerKind, int],
    ytd_before_minor: int,
) -> int:
    """Tax to withhold from one payout whose gross splits by payer kind as `gross_by_payer`."""
    if status is TaxStatus.SELF_EMPLOYED:
        return npd_withheld(tables, gross_by_payer)
    return ndfl_withheld(tables, paid_on, ytd_before_minor, sum(gross_by_payer.values()))
