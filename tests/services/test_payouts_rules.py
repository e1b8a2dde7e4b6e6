"""Payout rules by hand: periods, profiles, ledger balances, the 1,000 ₽ threshold, carry-over, tax."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payouts import (
    CARRIED,
    PAYOUT,
    Accrual,
    Period,
    PeriodError,
    PriorPayout,
    ProfilesError,
    Schedule,
    StreamerProfile,
    StreamerProfiles,
    accruals_by_payer,
    build_lines,
    line_errors,
)
from services.tax import PayerKind, TaxStatus, TaxTables

TABLES = TaxTables.load()
W48 = Period.parse("2026-W48")
IND, COM = PayerKind.INDIVIDUAL, PayerKind.COMPANY


def test_periods_are_iso_weeks_and_calendar_months() -> None:
    assert (W48.start, W48.end, W48.schedule) == (date(2026, 11, 23), date(2026, 11, 29), Schedule.WEEKLY)
    assert W48.start.weekday() == 0 and len(W48.days()) == 7
    feb = Period.parse("2024-02")
    assert (feb.start, feb.end, feb.schedule) == (date(2024, 2, 1), date(2024, 2, 29), Schedule.MONTHLY)
    # ISO week 1 of 2026 starts on Monday 29 December 2025.
    assert Period.parse("2026-W01").start == date(2025, 12, 29)
    assert Period.from_partition_key(Schedule.WEEKLY, "2026-11-23") == W48
    assert Period.from_partition_key(Schedule.MONTHLY, "2026-11-01").name == "2026-11"
    assert (W48.name, W48.partition_key) == ("2026-W48", "2026-11-23")


@pytest.mark.parametrize("text", ["2026-W54", "2026-13", "2026-00", "november", "2026-W4", ""])
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(PeriodError):
        Period.parse(text)


def test_profiles_from_yaml_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    assert StreamerProfiles.load(path).of("anyone") == StreamerProfile()
    path.write_text(
        "alpha: {tax_status: self_employed, payout_method: yoomoney, schedule: monthly, verified: true}\n"
    )
    profiles = StreamerProfiles.load(path)
    assert profiles.of("alpha").tax_status is TaxStatus.SELF_EMPLOYED
    assert profiles.of("alpha").schedule is Schedule.MONTHLY and profiles.of("alpha").verified
    default = profiles.of("beta")
    assert (default.tax_status, default.payout_method.value, default.schedule) == (
        TaxStatus.INDIVIDUAL,
        "bank_transfer",
        Schedule.WEEKLY,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alpha: {schedule: daily}\n", "profile of 'alpha' is invalid"),
        ("alpha: {payout_method: cash}\n", "profile of 'alpha' is invalid"),
        ("alpha: {tax: none}\n", "profile of 'alpha' is invalid"),
        ("- alpha\n", "expected a mapping"),
        ("alpha: [\n", "not YAML"),
    ],
)
def test_bad_profiles_are_refused_with_the_channel_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    with pytest.raises(ProfilesError, match=message):
        StreamerProfiles.load(path)


def test_accruals_fold_sources_into_payer_kinds() -> None:
    rows = [
        ("a", "donation", 100, 10),
        ("a", "gift", 5, 5),
        ("a", "sponsored", 40, 0),
        ("b", "donation", 7, 7),
    ]
    assert accruals_by_payer(TABLES, rows) == [
        Accrual("a", COM, 40, 0),
        Accrual("a", IND, 105, 15),
        Accrual("b", IND, 7, 7),
    ]


def by_channel(lines: list) -> dict:  # type: ignore[type-arg]
    return {line.channel_id: line for line in lines}


def test_threshold_carry_over_and_negative_carry_forward() -> None:
    profiles = StreamerProfiles(
        {
            "dora": StreamerProfile(schedule=Schedule.MONTHLY),
            "beta": StreamerProfile(tax_status=TaxStatus.SELF_EMPLOYED),
        }
    )
    accruals = [
        # alpha: 850 ₽ earned before the week and 425 ₽ in it: 1,275 ₽ >= 1,000 ₽, paid whole.
        Accrual("alpha", IND, 127_500, 42_500),
        # beta: 1,700 ₽ from viewers and 900 ₽ from a sponsor, all this week.
        Accrual("beta", IND, 170_000, 170_000),
        Accrual("beta", COM, 90_000, 90_000),
        # carol: 999.99 ₽, one kopeck short: carried over.
        Accrual("carol", IND, 99_999, 10_000),
        # gamma: 2,000 ₽ earned and paid in W47, then a 300 ₽ chargeback this week: -300 ₽ carried forward.
        Accrual("gamma", IND, 170_000, -30_000),
        # dora is paid monthly: not in a weekly batch.
        Accrual("dora", IND, 500_000, 500_000),
    ]
    prior = [PriorPayout("gamma", date(2026, 11, 22), 200_000, 0)]
    lines = by_channel(build_lines(W48, profiles, TABLES, accruals, prior))
    assert sorted(lines) == ["alpha", "beta", "carol", "gamma"]

    alpha = lines["alpha"]
    assert (alpha.status, alpha.carried_in_minor, alpha.period_share_minor, alpha.balance_minor) == (
        PAYOUT,
        85_000,
        42_500,
        127_500,
    )
    # НДФЛ 13% of 1,275 ₽ = 165.75 ₽.
    assert (alpha.gross_minor, alpha.tax_minor, alpha.net_minor, alpha.carried_out_minor) == (
        127_500,
        16_575,
        110_925,
        0,
    )

    beta = lines["beta"]
    # НПД: 4% of 1,700 ₽ + 6% of 900 ₽ = 68 + 54 = 122 ₽.
    assert (beta.gross_individuals_minor, beta.gross_companies_minor, beta.gross_minor) == (
        170_000,
        90_000,
        260_000,
    )
    assert (beta.tax_minor, beta.net_minor, beta.tax_status) == (12_200, 247_800, "self_employed")

    carol = lines["carol"]
    assert (carol.status, carol.gross_minor, carol.tax_minor, carol.carried_out_minor) == (
        CARRIED,
        0,
        0,
        99_999,
    )

    gamma = lines["gamma"]
    assert (gamma.status, gamma.carried_in_minor, gamma.period_share_minor) == (CARRIED, 0, -30_000)
    assert (gamma.balance_minor, gamma.gross_minor, gamma.carried_out_minor) == (-30_000, 0, -30_000)
    assert line_errors(line.as_row() for line in lines.values()) == []


def test_exactly_the_threshold_is_paid() -> None:
    (line,) = build_lines(W48, StreamerProfiles({}), TABLES, [Accrual("a", IND, 100_000, 100_000)], [])
    assert (line.status, line.gross_minor, line.tax_minor) == (PAYOUT, 100_000, 13_000)


def test_ytd_income_from_earlier_batches_of_the_year_moves_the_band() -> None:
    # 2,390,000 ₽ paid earlier in 2026 (and 5M ₽ in 2025, which does not count); 20,000 ₽ now:
    # 10,000 at 13% + 10,000 at 15% = 2,800 ₽.
    prior = [
        PriorPayout("a", date(2025, 12, 28), 500_000_000, 0),
        PriorPayout("a", date(2026, 10, 4), 239_000_000, 0),
    ]
    accrued = 500_000_000 + 239_000_000 + 2_000_000
    (line,) = build_lines(W48, StreamerProfiles({}), TABLES, [Accrual("a", IND, accrued, 2_000_000)], prior)
    assert (line.ytd_income_before_minor, line.gross_minor, line.tax_minor) == (
        239_000_000,
        2_000_000,
        280_000,
    )


def test_later_batches_do_not_count_and_a_settled_ledger_gives_no_line() -> None:
    prior = [PriorPayout("a", date(2026, 11, 22), 150_000, 0), PriorPayout("a", date(2026, 12, 6), 1, 0)]
    assert build_lines(W48, StreamerProfiles({}), TABLES, [Accrual("a", IND, 150_000, 0)], prior) == []


@given(
    st.lists(
        st.tuples(st.integers(-500_000, 5_000_000), st.integers(0, 5_000_000), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_every_line_adds_up_and_the_batch_reconciles(ledgers: list[tuple[int, int, bool]]) -> None:
    accruals, profiles = [], {}
    for n, (individuals, companies, self_employed) in enumerate(ledgers):
        channel = f"c{n}"
        accruals += [Accrual(channel, IND, individuals, individuals), Accrual(channel, COM, companies, 0)]
        status = TaxStatus.SELF_EMPLOYED if self_employed else TaxStatus.INDIVIDUAL
        profiles[channel] = StreamerProfile(tax_status=status)
    lines = build_lines(W48, StreamerProfiles(profiles), TABLES, accruals, [])
    assert line_errors(line.as_row() for line in lines) == []
    assert sum(x.gross_minor + x.carried_out_minor for x in lines) == sum(x.balance_minor for x in lines)
    for line in lines:
        assert line.tax_minor + line.net_minor == line.gross_minor
        assert (line.status == PAYOUT) == (line.balance_minor >= 100_000)
