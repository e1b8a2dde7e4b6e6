"""The donations and streamer revenue marts, materialised in-process over small hand-built lakes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.donations import EVENT_ID_UNIQUE, donations, donations_event_id_unique
from assets.lake import (
    LAKE_DONATIONS,
    LAKE_OFFSET_CHECKS,
    LAKE_SPECS,
    OFFSET_RANGES_DISJOINT,
    overlapping_ranges,
)
from assets.payment_marts import PAYMENT_MART_ASSETS, PAYMENT_MART_CHECKS
from assets.resources import LakeResource, MartsResource
from assets.revenue import (
    GROSS_EQUALS_SHARE_PLUS_FEE,
    GROSS_RECONCILES_WITH_PAYMENTS,
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
    streamer_revenue_daily,
)
from services.events import TOPICS
from services.lake import Manifest, mart_partition_path
from services.marts import DONATIONS_MART, REVENUE_MART
from services.money import Currency
from tests.fixture_lake import land, no_money, processed, reversal

DAY = "2026-11-27"
NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EVERYTHING = [
    donations,
    donations_event_id_unique,
    *PAYMENT_MART_ASSETS,
    *PAYMENT_MART_CHECKS,
    streamer_revenue_daily,
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
]


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    return tmp_path / "marts"


def resources(lake: Path, marts: Path) -> dict[str, object]:
    return {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(marts))}


def materialise(lake: Path, marts: Path, day: str, **kw: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(EVERYTHING, partition_key=day, resources=resources(lake, marts), **kw)  # type: ignore[arg-type]


def revenue(marts: Path, day: str) -> dict[str, dict[str, object]]:
    table = pq.read_table(mart_partition_path(marts, REVENUE_MART, datetime.fromisoformat(day).date()))
    return {row.pop("channel_id"): row for row in table.to_pylist()}


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_revenue_matches_hand_computed_split_and_fx(lake: Path, marts: Path) -> None:
    land(
        lake,
        [
            processed("alpha", 1001, Currency.RUB, NOON),
            # 10.01 USD at 80.1214 (rate from 2026-07-01) = 802.015214 RUB -> 80202 kopecks.
            processed("alpha", 1001, Currency.USD, NOON),
            # 5.00 EUR at 93.4512 = 467.256 RUB -> 46726 kopecks.
            processed("beta", 500, Currency.EUR, NOON),
            no_money("alpha", 5000, NOON, failed=False),
            no_money("alpha", 7000, NOON, failed=True),
        ],
    )
    result = materialise(lake, marts, DAY)
    assert result.success
    assert checks_passed(result) == {
        EVENT_ID_UNIQUE: True,
        GROSS_EQUALS_SHARE_PLUS_FEE: True,
        GROSS_RECONCILES_WITH_PAYMENTS: True,
    }
    rows = revenue(marts, DAY)
    # Split per payment: 1001 -> 851 + 150; 80202 -> 68172 + 12030 (0.85 * 80202 = 68171.7, half-up).
    assert rows["alpha"] == {
        "day": datetime(2026, 11, 27).date(),
        "source": "donation",
        "gross_rub_minor": 1001 + 80202,
        "streamer_share_minor": 851 + 68172,
        "platform_fee_minor": 150 + 12030,
        "donations_count": 2,
        "reversals_count": 0,
    }
    # 0.85 * 46726 = 39717.1 -> 39717; the platform keeps 7009.
    assert (rows["beta"]["gross_rub_minor"], rows["beta"]["streamer_share_minor"]) == (46726, 39717)
    assert rows["beta"]["platform_fee_minor"] == 7009
    mart = pq.read_table(mart_partition_path(marts, DONATIONS_MART, datetime(2026, 11, 27).date()))
    assert sorted(mart.column("gross_rub_minor").to_pylist()) == [1001, 46726, 80202]


def test_reversal_on_a_later_day_converts_at_the_original_rate_and_cancels_exactly(
    lake: Path, marts: Path
) -> None:
    settled = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)  # USD rate 78.2326 until 2026-07-01
    paid = processed("alpha", 1001, Currency.USD, settled)
    refunded = reversal(paid, datetime(2026, 7, 2, 9, 0, tzinfo=UTC))  # rate has become 80.1214
    paid_again = processed("alpha", 2000, Currency.RUB, datetime(2026, 7, 2, 10, 0, tzinfo=UTC))
    charged_back = reversal(paid_again, datetime(2026, 7, 2, 11, 0, tzinfo=UTC), chargeback=True)
    land(lake, [paid, refunded, paid_again, charged_back])
    assert materialise(lake, marts, "2026-06-30").success
    assert materialise(lake, marts, "2026-07-02").success

    first, later = revenue(marts, "2026-06-30")["alpha"], revenue(marts, "2026-07-02")["alpha"]
    # 10.01 USD * 78.2326 = 783.108326 RUB -> 78311; 0.85 * 78311 = 66564.35 -> 66564.
    assert (first["gross_rub_minor"], first["streamer_share_minor"], first["platform_fee_minor"]) == (
        78311,
        66564,
        11747,
    )
    # Later day: -78311 refunded at the original rate, +2000 then -2000 charged back.
    assert (later["gross_rub_minor"], later["streamer_share_minor"], later["platform_fee_minor"]) == (
        -78311,
        -66564,
        -11747,
    )
    assert (later["donations_count"], later["reversals_count"]) == (1, 2)


def test_duplicate_event_ids_count_once(lake: Path, marts: Path) -> None:
    event = processed("alpha", 1001, Currency.RUB, NOON)
    land(lake, [event, event], partition=0, first_offset=0)
    land(lake, [event], partition=1, first_offset=0)  # republished to another partition
    result = materialise(lake, marts, DAY)
    assert result.success and checks_passed(result)[EVENT_ID_UNIQUE]
    assert revenue(marts, DAY)["alpha"]["gross_rub_minor"] == 1001
    assert revenue(marts, DAY)["alpha"]["donations_count"] == 1


def test_rematerialising_a_day_replaces_it(lake: Path, marts: Path) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)])
    assert materialise(lake, marts, DAY).success
    land(lake, [processed("alpha", 2002, Currency.RUB, NOON)], first_offset=1)
    assert materialise(lake, marts, DAY).success
    assert materialise(lake, marts, DAY).success
    assert revenue(marts, DAY)["alpha"]["gross_rub_minor"] == 3003


def test_a_day_without_events_gives_empty_marts_and_passing_checks(lake: Path, marts: Path) -> None:
    result = materialise(lake, marts, DAY)
    assert result.success and all(checks_passed(result).values())
    assert revenue(marts, DAY) == {}


def test_missing_fx_rate_fails_the_run_with_a_clear_error(lake: Path, marts: Path) -> None:
    # Refunded in 2024, settled in 2023: the FX table starts in 2024, so the rate cannot be known.
    paid = processed("alpha", 1001, Currency.USD, datetime(2023, 12, 31, tzinfo=UTC))
    land(lake, [reversal(paid, datetime(2024, 1, 2, tzinfo=UTC))])
    result = materialise(lake, marts, "2024-01-02", raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("donations")
    assert failure is not None and "no USD/RUB rate on or before 2023-12-31" in str(failure.error)
    assert not mart_partition_path(marts, REVENUE_MART, datetime(2024, 1, 2).date()).exists()


def test_blocking_check_fails_the_run_on_a_corrupted_revenue_mart(lake: Path, marts: Path) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)])
    assert materialise(lake, marts, DAY).success
    path = mart_partition_path(marts, REVENUE_MART, datetime(2026, 11, 27).date())
    table = pq.read_table(path)
    fee = table.schema.get_field_index("platform_fee_minor")
    pq.write_table(table.set_column(fee, table.schema.field(fee), pa.array([149], pa.int64())), path)

    # Run the checks on their own, as from the UI: without a partition they check every day in the mart.
    result = dg.materialize(
        EVERYTHING,
        selection=dg.AssetSelection.checks(
            revenue_gross_equals_share_plus_fee, revenue_gross_reconciles_with_payments
        ),
        resources=resources(lake, marts),
        raise_on_error=False,
    )
    assert not result.success
    assert checks_passed(result) == {
        GROSS_EQUALS_SHARE_PLUS_FEE: False,
        GROSS_RECONCILES_WITH_PAYMENTS: True,
    }


def test_reconciliation_fails_when_revenue_drifts_from_donations(lake: Path, marts: Path) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)])
    assert materialise(lake, marts, DAY).success
    path = mart_partition_path(marts, DONATIONS_MART, datetime(2026, 11, 27).date())
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)  # one donation too many

    def run_checks(*checks: dg.AssetChecksDefinition) -> dict[str, bool]:
        result = dg.materialize(
            EVERYTHING,
            selection=dg.AssetSelection.checks(*checks),
            resources=resources(lake, marts),
            raise_on_error=False,
        )
        assert not result.success
        return checks_passed(result)

    assert run_checks(revenue_gross_reconciles_with_payments) == {GROSS_RECONCILES_WITH_PAYMENTS: False}
    # Both together: the failing blocking uniqueness check stops the reconciliation that reads donations.
    assert run_checks(donations_event_id_unique, revenue_gross_reconciles_with_payments) == {
        EVENT_ID_UNIQUE: False
    }


def test_overlapping_offset_ranges_are_found(lake: Path) -> None:
    def m(partition: int, first: int, last: int, epoch: str = "a") -> Manifest:
        return Manifest("donations", epoch, "c", partition, first, last, last - first + 1)

    assert overlapping_ranges([m(0, 0, 9), m(0, 10, 19), m(1, 5, 9), m(0, 0, 9, epoch="b")]) == []
    assert overlapping_ranges([m(0, 0, 99), m(0, 10, 19), m(0, 50, 59)]) == [
        (m(0, 0, 99), m(0, 10, 19)),
        (m(0, 0, 99), m(0, 50, 59)),
    ]

    def run_check() -> dict[str, bool]:
        result = dg.materialize(
            [LAKE_DONATIONS, LAKE_OFFSET_CHECKS["donations"]],
            selection=dg.AssetSelection.checks(LAKE_OFFSET_CHECKS["donations"]),
            resources={"lake": LakeResource(root=str(lake))},
        )
        return checks_passed(result)

    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)] * 3, first_offset=0)
    assert run_check() == {OFFSET_RANGES_DISJOINT: True}
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)], first_offset=2)  # lands offset 2 again
    assert run_check() == {OFFSET_RANGES_DISJOINT: False}


def test_every_landed_topic_has_an_offset_check(lake: Path) -> None:
    """A topic the lander lands but no check covers would let a broken recipe pass unseen."""
    assert set(LAKE_SPECS) == set(TOPICS) == set(LAKE_OFFSET_CHECKS)

    def commit(topic: str, first: int, last: int) -> None:
        Manifest(topic, "a", "c", 0, first, last, last - first + 1).write_atomically(lake)

    commit("views", 0, 99)
    commit("views", 100, 199)
    commit("gifts", 0, 9)
    commit("gifts", 5, 14)  # lands gifts' offsets 5-9 twice
    result = dg.materialize(
        [*LAKE_SPECS.values(), *LAKE_OFFSET_CHECKS.values()],
        selection=dg.AssetSelection.checks(*LAKE_OFFSET_CHECKS.values()),
        resources={"lake": LakeResource(root=str(lake))},
    )
    by_topic = {e.asset_key.path[-1]: e.passed for e in result.get_asset_check_evaluations()}
    assert by_topic == {topic: topic != "gifts" for topic in TOPICS}
