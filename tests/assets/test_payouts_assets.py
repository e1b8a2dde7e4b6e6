"""The payout batch assets over hand-made revenue marts: hand-computed lines, idempotent re-runs, the
order rules, approval, and the blocking checks."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.payouts import (
    GROSS_MINUS_TAX_EQUALS_NET,
    PAYOUT_ASSETS,
    PAYOUT_CHECKS,
    PAYOUTS_RECONCILE_WITH_BALANCES,
    StreamerProfilesResource,
)
from assets.resources import MartsResource
from services.payout_store import (
    APPROVED,
    BATCH_CSV,
    BATCH_PARQUET,
    DRAFT,
    TAMPERED,
    PayoutBatchError,
    approve,
    batch_dir,
    batch_info,
    read_audit,
    read_batch,
)
from services.payouts import Period
from services.revenue import RevenueSource
from tests.fixture_payouts import build, quiet_days, write_revenue

DON, SPONSORED = RevenueSource.DONATION, RevenueSource.SPONSORED
# The test machine's clock may sit in late November 2026: every period here has ended by then.
PREV, WEEK, NEXT = (Period.parse(f"2026-W{n}") for n in (45, 46, 47))
PROFILES = "beta: {tax_status: self_employed, payout_method: yoomoney}\ndora: {schedule: monthly}\n"


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    return tmp_path / "marts"


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "streamer_profiles.yaml"
    path.write_text(PROFILES)
    return path


def two_weeks(marts: Path) -> None:
    """PREV (2026-W45): alpha 1,000 ₽ of donations (850 ₽ share). WEEK (W46): alpha 500 ₽ (425); beta
    2,000 ₽ of donations (1,700) and 1,000 ₽ sponsored (900 at 90%); carol 1,000 ₽ (850, under the
    threshold); dora, monthly, 5,000 ₽. NEXT (W47): alpha's 500 ₽ charged back; carol 200 ₽ more (170)."""
    quiet_days(marts, PREV)
    quiet_days(marts, WEEK)
    quiet_days(marts, NEXT)
    write_revenue(marts, date(2026, 11, 6), [("alpha", DON, 100_000)])
    write_revenue(
        marts,
        date(2026, 11, 10),
        [
            ("alpha", DON, 50_000),
            ("beta", DON, 200_000),
            ("beta", SPONSORED, 100_000),
            ("dora", DON, 500_000),
        ],
    )
    write_revenue(marts, date(2026, 11, 12), [("carol", DON, 100_000)])
    write_revenue(marts, date(2026, 11, 18), [("alpha", DON, -50_000), ("carol", DON, 20_000)])


def lines(marts: Path, period: Period) -> dict[str, dict[str, object]]:
    return {row["channel_id"]: row for row in read_batch(marts, period).to_pylist()}


def picked(row: dict[str, object], *names: str) -> tuple[object, ...]:
    return tuple(row[n] for n in names)


MONEY = ("status", "carried_in_minor", "period_share_minor", "balance_minor", "gross_minor", "tax_minor",
         "net_minor", "carried_out_minor")  # fmt: skip


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_batch_lines_match_the_hand_computed_ledger(marts: Path, profiles: Path) -> None:
    two_weeks(marts)
    result = build(marts, profiles, WEEK)
    assert result.success
    assert checks_passed(result) == {GROSS_MINUS_TAX_EQUALS_NET: True, PAYOUTS_RECONCILE_WITH_BALANCES: True}
    got = lines(marts, WEEK)
    assert sorted(got) == ["alpha", "beta", "carol"]  # dora is paid monthly
    # alpha: 850 carried in + 425 = 1,275 ₽ paid; НДФЛ 13% = 165.75 ₽.
    assert picked(got["alpha"], *MONEY) == ("payout", 85_000, 42_500, 127_500, 127_500, 16_575, 110_925, 0)
    # beta: 1,700 ₽ from viewers, 900 ₽ from a sponsor; НПД 4% * 1,700 + 6% * 900 = 68 + 54 = 122 ₽.
    assert picked(got["beta"], *MONEY) == ("payout", 0, 260_000, 260_000, 260_000, 12_200, 247_800, 0)
    assert picked(got["beta"], "gross_individuals_minor", "gross_companies_minor", "payout_method") == (
        170_000,
        90_000,
        "yoomoney",
    )
    # carol: 850 ₽ < 1,000 ₽: carried over.
    assert picked(got["carol"], *MONEY) == ("carried", 0, 85_000, 85_000, 0, 0, 0, 85_000)
    assert batch_info(marts, WEEK).status == DRAFT
    csv_text = (batch_dir(marts, WEEK) / BATCH_CSV).read_text().splitlines()
    assert csv_text[0].startswith("period,schedule,period_start,period_end,channel_id,")
    assert csv_text[1].startswith(
        "2026-W46,weekly,2026-11-09,2026-11-15,alpha,individual,bank_transfer,false,"
    )
    assert len(csv_text) == 4


def test_rerun_is_byte_identical_and_approval_makes_the_next_period_build_on_it(
    marts: Path, profiles: Path
) -> None:
    two_weeks(marts)
    assert build(marts, profiles, WEEK).success
    first = (batch_dir(marts, WEEK) / BATCH_PARQUET).read_bytes()
    first_csv = (batch_dir(marts, WEEK) / BATCH_CSV).read_bytes()
    assert build(marts, profiles, WEEK).success
    assert (batch_dir(marts, WEEK) / BATCH_PARQUET).read_bytes() == first
    assert (batch_dir(marts, WEEK) / BATCH_CSV).read_bytes() == first_csv
    assert [a["action"] for a in read_audit(marts)] == ["built"]  # the identical re-run wrote nothing

    # NEXT cannot build on a draft: WEEK's payouts could still change under it.
    refused = build(marts, profiles, NEXT)
    assert not refused.success
    assert "earlier batch(es) 2026-W46 are not approved" in str(
        refused.failure_data_for_node("weekly_payout_batch")
    )

    approve(marts, WEEK, "Olga")
    assert batch_info(marts, WEEK).status == APPROVED
    assert build(marts, profiles, NEXT).success
    got = lines(marts, NEXT)
    # alpha: paid out everything in WEEK, then a 425 ₽ chargeback: -425 ₽ carried forward, nothing paid.
    assert picked(got["alpha"], *MONEY) == ("carried", 0, -42_500, -42_500, 0, 0, 0, -42_500)
    # carol: 850 ₽ carried in + 170 ₽ = 1,020 ₽ paid; 13% = 132.60 ₽.
    assert picked(got["carol"], *MONEY) == ("payout", 85_000, 17_000, 102_000, 102_000, 13_260, 88_740, 0)
    # beta was paid in full and earned nothing since: no line.
    assert "beta" not in got
    # A payout in NEXT counts towards alpha's, beta's and carol's year to date in later periods.
    assert got["carol"]["ytd_income_before_minor"] == 0


def test_an_approved_batch_is_never_overwritten(marts: Path, profiles: Path) -> None:
    two_weeks(marts)
    assert build(marts, profiles, WEEK).success
    approve(marts, WEEK, "Olga")
    approved = (batch_dir(marts, WEEK) / BATCH_PARQUET).read_bytes()
    assert build(marts, profiles, WEEK).success  # same inputs: a no-op
    # A late donation lands in WEEK after approval: WEEK stays as approved, the run says why.
    write_revenue(marts, date(2026, 11, 14), [("alpha", DON, 10_000)])
    result = build(marts, profiles, WEEK)
    assert not result.success
    assert "approved and final" in str(result.failure_data_for_node("weekly_payout_batch"))
    assert (batch_dir(marts, WEEK) / BATCH_PARQUET).read_bytes() == approved
    # ...and the late 85 ₽ reaches alpha through the ledger of NEXT: -425 + 85 = -340 ₽ carried.
    assert build(marts, profiles, NEXT).success
    assert lines(marts, NEXT)["alpha"]["balance_minor"] == -42_500 + 8_500
    assert lines(marts, NEXT)["alpha"]["carried_in_minor"] == 8_500


def test_approval_rules_and_audit(marts: Path, profiles: Path) -> None:
    two_weeks(marts)
    with pytest.raises(PayoutBatchError, match="no payout batch for 2026-W46"):
        approve(marts, WEEK, "Olga")
    assert build(marts, profiles, WEEK).success
    with pytest.raises(PayoutBatchError, match="needs the approver's name"):
        approve(marts, WEEK, "  ")
    approval = approve(marts, WEEK, "Olga")
    with pytest.raises(PayoutBatchError, match="already approved"):
        approve(marts, WEEK, "Ivan")
    audit = read_audit(marts)
    assert [(a["action"], a["actor"]) for a in audit][1:] == [("approved", "Olga")]
    assert audit[0]["actor"].startswith("dagster:")
    # 1,275 + 2,600 ₽ paid, 165.75 + 122 ₽ withheld.
    assert picked(audit[1], "payouts", "gross_minor", "tax_minor", "net_minor", "batch_sha256") == (
        "2",
        str(127_500 + 260_000),
        str(16_575 + 12_200),
        str(110_925 + 247_800),
        approval.batch_sha256,
    )


def test_a_batch_changed_after_approval_is_tampered_and_blocks_what_follows(
    marts: Path, profiles: Path
) -> None:
    two_weeks(marts)
    assert build(marts, profiles, WEEK).success
    approve(marts, WEEK, "Olga")
    path = batch_dir(marts, WEEK) / BATCH_PARQUET
    table = pq.read_table(path)
    net = table.schema.get_field_index("net_minor")
    pq.write_table(table.set_column(net, table.schema.field(net), pa.array([1, 1, 0], pa.int64())), path)
    assert batch_info(marts, WEEK).status == TAMPERED
    assert not build(marts, profiles, NEXT).success
    # Run on their own, the blocking checks find the broken lines.
    result = dg.materialize(
        [*PAYOUT_ASSETS, *PAYOUT_CHECKS],
        selection=dg.AssetSelection.checks(*PAYOUT_CHECKS[:2]),
        resources={
            "marts": MartsResource(root=str(marts)),
            "streamer_profiles": StreamerProfilesResource(path=str(profiles)),
        },
        raise_on_error=False,
    )
    assert checks_passed(result) == {GROSS_MINUS_TAX_EQUALS_NET: False, PAYOUTS_RECONCILE_WITH_BALANCES: True}


def test_missing_revenue_days_fail_the_run_with_the_days_named(marts: Path, profiles: Path) -> None:
    two_weeks(marts)
    for day in WEEK.days()[:3]:
        (marts / "streamer_revenue_daily" / f"date={day.isoformat()}" / "part.parquet").unlink()
    result = build(marts, profiles, WEEK)
    assert not result.success
    assert "lacks 3 day(s) of 2026-W46 (2026-11-09, 2026-11-10, 2026-11-11)" in str(
        result.failure_data_for_node("weekly_payout_batch")
    )
    assert not batch_dir(marts, WEEK).exists()


def test_a_later_batch_blocks_building_an_earlier_one(marts: Path, profiles: Path) -> None:
    two_weeks(marts)
    assert build(marts, profiles, NEXT).success
    result = build(marts, profiles, WEEK)
    assert not result.success
    assert "after the later batch(es) 2026-W47" in str(result.failure_data_for_node("weekly_payout_batch"))


def test_monthly_batch_pays_monthly_streamers(marts: Path, profiles: Path) -> None:
    october = Period.parse("2026-10")
    day = october.start
    while day <= october.end:
        write_revenue(marts, day, [])
        day += timedelta(days=1)
    write_revenue(marts, date(2026, 10, 20), [("dora", DON, 500_000), ("alpha", DON, 500_000)])
    assert build(marts, profiles, october).success
    got = lines(marts, october)
    # Only dora; 4,250 ₽ at 13% = 552.50 ₽.
    assert list(got) == ["dora"]
    assert picked(got["dora"], *MONEY) == ("payout", 0, 425_000, 425_000, 425_000, 55_250, 369_750, 0)
