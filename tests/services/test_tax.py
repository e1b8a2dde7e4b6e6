"""Tax withheld from payouts: every figure computed by hand from the tables in services/data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.money import round_half_up
from services.revenue import RevenueSource
from services.tax import (
    PayerKind,
    TaxStatus,
    TaxTableError,
    TaxTables,
    ndfl_withheld,
    npd_withheld,
    progressive_tax,
    withheld,
)

TABLES = TaxTables.load()
PAID_2026 = date(2026, 11, 29)
RUB = 100  # kopecks per rouble


def test_tables_say_who_pays_each_source() -> None:
    assert TABLES.payer_by_source == {
        RevenueSource.DONATION: PayerKind.INDIVIDUAL,
        RevenueSource.SUBSCRIPTION: PayerKind.INDIVIDUAL,
        RevenueSource.GIFT: PayerKind.INDIVIDUAL,
        RevenueSource.SPONSORED: PayerKind.COMPANY,
    }
    assert TABLES.self_employed == {PayerKind.INDIVIDUAL: Decimal("0.04"), PayerKind.COMPANY: Decimal("0.06")}


def test_ndfl_inside_the_first_band_is_13_percent_rounded_half_up() -> None:
    # 1000.01 ₽ * 13% = 130.0013 ₽ -> 13000 kopecks; 1000.50 ₽ * 13% = 130.065 ₽ -> 13006.5 -> 13007.
    assert ndfl_withheld(TABLES, PAID_2026, 0, 100_001) == 13_000
    assert ndfl_withheld(TABLES, PAID_2026, 0, 100_050) == 13_007


def test_a_payout_crossing_2_4_million_is_taxed_partly_at_13_and_partly_at_15() -> None:
    # 2,300,000 ₽ paid before; 200,000 ₽ now: 100,000 at 13% + 100,000 at 15% = 13,000 + 15,000 ₽.
    assert ndfl_withheld(TABLES, PAID_2026, 2_300_000 * RUB, 200_000 * RUB) == 28_000 * RUB


def test_every_band_of_the_2025_scale() -> None:
    # 4,990,000 ₽ before, 20,000 ₽ now: 10,000 at 15% + 10,000 at 18% = 1,500 + 1,800 ₽.
    assert ndfl_withheld(TABLES, PAID_2026, 4_990_000 * RUB, 20_000 * RUB) == 3_300 * RUB
    # 19,990,000 before: 10,000 at 18% + 10,000 at 20%.
    assert ndfl_withheld(TABLES, PAID_2026, 19_990_000 * RUB, 20_000 * RUB) == 3_800 * RUB
    # 49,990,000 before: 10,000 at 20% + 10,000 at 22%.
    assert ndfl_withheld(TABLES, PAID_2026, 49_990_000 * RUB, 20_000 * RUB) == 4_200 * RUB
    # Far above: 22% only.
    assert ndfl_withheld(TABLES, PAID_2026, 90_000_000 * RUB, 10_000 * RUB) == 2_200 * RUB
    # A whole year of 60M ₽ at once: 2.4M*13% + 2.6M*15% + 15M*18% + 30M*20% + 10M*22%.
    scale = TABLES.scale_on(PAID_2026)
    assert progressive_tax(scale, 60_000_000 * RUB) == Decimal(
        (312_000 + 390_000 + 2_700_000 + 6_000_000 + 2_200_000) * RUB
    )


def test_before_2025_the_old_two_band_scale_applies() -> None:
    # 2024: 13% up to 5M ₽, 15% above. 4,990,000 before, 20,000 now: 1,300 + 1,500 ₽.
    assert ndfl_withheld(TABLES, date(2024, 6, 30), 4_990_000 * RUB, 20_000 * RUB) == 2_800 * RUB
    with pytest.raises(TaxTableError, match="no НДФЛ scale in force on 2019-12-31"):
        ndfl_withheld(TABLES, date(2019, 12, 31), 0, 100_000)


def test_cumulative_rounding_withholds_exactly_the_tax_on_the_sum() -> None:
    # 1000.50 ₽ twice: 13007 then 26013 - 13007 = 13006; together the 13% of 2001.00 ₽ = 26013.
    first = ndfl_withheld(TABLES, PAID_2026, 0, 100_050)
    second = ndfl_withheld(TABLES, PAID_2026, 100_050, 100_050)
    assert (first, second) == (13_007, 13_006)


def test_npd_is_4_percent_from_individuals_and_6_from_companies_rounded_once() -> None:
    assert npd_withheld(TABLES, {PayerKind.INDIVIDUAL: 100_000, PayerKind.COMPANY: 50_000}) == 4_000 + 3_000
    # 4001.52 + 0.54 = 4002.06 -> 4002 (rounding each part would give 4002 + 1).
    assert npd_withheld(TABLES, {PayerKind.INDIVIDUAL: 100_038, PayerKind.COMPANY: 9}) == 4_002
    by_payer = {PayerKind.INDIVIDUAL: 100_038, PayerKind.COMPANY: 9}
    assert (
        withheld(
            TABLES, TaxStatus.SELF_EMPLOYED, paid_on=PAID_2026, gross_by_payer=by_payer, ytd_before_minor=0
        )
        == 4_002
    )
    # An individual pays НДФЛ on the whole payout whoever paid: 13% of 100047 = 13006.11 -> 13006.
    assert (
        withheld(TABLES, TaxStatus.INDIVIDUAL, paid_on=PAID_2026, gross_by_payer=by_payer, ytd_before_minor=0)
        == 13_006
    )


PAYERS = (
    "payer_by_source: {donation: individual, subscription: individual, gift: individual, sponsored: company}"
)
FLAT = "self_employed: {individual: '0.04', company: '0.06'}"
BANDS = "[{up_to_rub: 5, rate: '0.1'}, {up_to_rub: 2, rate: '0.2'}, {up_to_rub: null, rate: '0.3'}]"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (f"payer_by_source: {{donation: individual}}\n{FLAT}\nndfl: []", "no payer kind"),
        (
            f"{PAYERS}\nself_employed: {{individual: 0.04, company: '0.06'}}\nndfl: []",
            "quoted decimal string",
        ),
        (f"{PAYERS}\n{FLAT}\nndfl: [{{valid_from: '2025-01-01', bands: {BANDS}}}]", "must increase"),
        (
            f"{PAYERS}\n{FLAT}\nndfl: [{{valid_from: '2025-01-01', bands: [{{up_to_rub: 5, rate: '0.1'}}]}}]",
            "open-ended",
        ),
        ("nothing: here", "malformed tax table"),
    ],
)
def test_malformed_tables_are_refused_with_a_reason(yaml_text: str, message: str) -> None:
    import yaml

    with pytest.raises(TaxTableError, match=message):
        TaxTables.parse(yaml.safe_load(yaml_text))


amounts = st.integers(min_value=0, max_value=10_000_000_000)


@given(ytd=amounts, gross=amounts, company=amounts)
def test_tax_plus_net_is_gross_and_tax_never_exceeds_gross(ytd: int, gross: int, company: int) -> None:
    for status in TaxStatus:
        by_payer = {PayerKind.INDIVIDUAL: gross, PayerKind.COMPANY: company}
        tax = withheld(TABLES, status, paid_on=PAID_2026, gross_by_payer=by_payer, ytd_before_minor=ytd)
        net = gross + company - tax
        assert tax + net == gross + company
        assert 0 <= tax <= gross + company


@given(st.lists(st.integers(min_value=0, max_value=3_000_000_000), max_size=8))
def test_payouts_of_a_year_withhold_the_tax_on_their_sum(payouts: list[int]) -> None:
    ytd, total_tax = 0, 0
    for gross in payouts:
        total_tax += ndfl_withheld(TABLES, PAID_2026, ytd, gross)
        ytd += gross
    assert total_tax == round_half_up(progressive_tax(TABLES.scale_on(PAID_2026), ytd))
