"""Every revenue source through its money mart into `streamer_revenue_daily`, against sums worked out by
hand: donations and interactive donations 85%, subscriptions 70%, gifts 80%, sponsored content 90%."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.donations import EVENT_ID_UNIQUE, donations, donations_event_id_unique
from assets.lake import GIFTS_TOPIC, INTERACTIVE_TOPIC, SPONSORSHIPS_TOPIC, SUBSCRIPTIONS_TOPIC
from assets.payment_marts import PAYMENT_MART_ASSETS, PAYMENT_MART_CHECKS
from assets.resources import LakeResource, MartsResource
from assets.revenue import (
    GROSS_EQUALS_SHARE_PLUS_FEE,
    GROSS_RECONCILES_WITH_PAYMENTS,
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
    streamer_revenue_daily,
)
from services import events
from services.lake import mart_partition_path
from services.marts import (
    DONATIONS_MART,
    GIFT_PAYMENTS_MART,
    INTERACTIVE_PAYMENTS_MART,
    REVENUE_MART,
    SPONSORSHIP_PAYMENTS_MART,
    SUBSCRIPTION_PAYMENTS_MART,
)
from services.money import Currency
from tests.fixture_lake import land, processed
from tests.fixture_payments import boost, gift, request, reversal, sponsorship, subscription

DAY = "2026-11-27"
NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
MONEY_MARTS = (
    DONATIONS_MART,
    SUBSCRIPTION_PAYMENTS_MART,
    GIFT_PAYMENTS_MART,
    INTERACTIVE_PAYMENTS_MART,
    SPONSORSHIP_PAYMENTS_MART,
)
EVERYTHING = [
    donations,
    donations_event_id_unique,
    *PAYMENT_MART_ASSETS,
    *PAYMENT_MART_CHECKS,
    streamer_revenue_daily,
    revenue_gross_equals_share_plus_fee,
    revenue_gross_reconciles_with_payments,
]
Row = tuple[int, int, int, int, int]  # gross, streamer share, platform fee, credits, reversals


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    return tmp_path / "marts"


def resources(lake: Path, marts: Path) -> dict[str, object]:
    return {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(marts))}


def materialise(lake: Path, marts: Path, day: str, **kw: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(EVERYTHING, partition_key=day, resources=resources(lake, marts), **kw)  # type: ignore[arg-type]


def run_checks(lake: Path, marts: Path, *checks: dg.AssetChecksDefinition) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        EVERYTHING,
        selection=dg.AssetSelection.checks(*checks),
        resources=resources(lake, marts),  # type: ignore[arg-type]
        raise_on_error=False,
    )


def revenue(marts: Path, day: str) -> dict[tuple[str, str], Row]:
    table = pq.read_table(mart_partition_path(marts, REVENUE_MART, date.fromisoformat(day)))
    return {
        (r["channel_id"], r["source"]): (
            r["gross_rub_minor"],
            r["streamer_share_minor"],
            r["platform_fee_minor"],
            r["donations_count"],
            r["reversals_count"],
        )
        for r in table.to_pylist()
    }


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }


def land_every_source(lake: Path) -> None:
    """One small day of every source on two channels (amounts chosen so each split rounds)."""
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)])
    paid_boost = boost("alpha", 2000, Currency.RUB, NOON)
    land(
        lake,
        [
            paid_boost,
            reversal(paid_boost, events.BoostChargedBack, NOON.replace(hour=13)),
            request("alpha", 1001, Currency.USD, NOON),  # 10.01 USD
        ],
        topic=INTERACTIVE_TOPIC,
    )
    renewed = subscription(events.SubscriptionRenewed, "alpha", 14999, NOON)
    land(
        lake,
        [
            subscription(events.SubscriptionCreated, "alpha", 29999, NOON),
            renewed,
            reversal(renewed, events.SubscriptionRefunded, NOON.replace(hour=14)),
            # Moves no money: a notice of a future charge, a cancellation, a downgrade.
            subscription(events.SubscriptionRenewalNotice, "alpha", 14999, NOON),
            subscription(events.SubscriptionCancelled, "alpha", 0, NOON),
            subscription(events.SubscriptionDowngraded, "alpha", 0, NOON),
        ],
        topic=SUBSCRIPTIONS_TOPIC,
    )
    small = gift("alpha", 333, Currency.RUB, NOON)
    land(
        lake,
        [gift("alpha", 4999, Currency.RUB, NOON), small, reversal(small, events.GiftChargedBack, NOON)],
        topic=GIFTS_TOPIC,
    )
    brand = sponsorship("beta", 1_000_000, Currency.RUB, NOON)
    land(
        lake,
        [
            brand,
            reversal(brand, events.SponsorshipRefunded, NOON.replace(hour=15)),
            sponsorship("beta", 12345, Currency.USD, NOON),  # 123.45 USD
        ],
        topic=SPONSORSHIPS_TOPIC,
    )


def test_every_source_matches_hand_computed_splits(lake: Path, marts: Path) -> None:
    land_every_source(lake)
    result = materialise(lake, marts, DAY)
    assert result.success
    checks = check_results(result)
    assert len(checks) == 1 + len(PAYMENT_MART_CHECKS) + 2 and all(checks.values()), checks
    assert {name for _, name in checks} == {
        EVENT_ID_UNIQUE,
        GROSS_EQUALS_SHARE_PLUS_FEE,
        GROSS_RECONCILES_WITH_PAYMENTS,
    }

    # USD on 2026-11-27 is 80.1214 RUB (from 2026-07-01), each conversion rounded half-up once:
    #   10.01 USD  -> 1001 * 80.1214  = 80201.5214 -> 80202 kopecks
    #   123.45 USD -> 12345 * 80.1214 = 989098.683 -> 989099 kopecks
    # Each payment split on its own, the streamer's part rounded half-up, the rest to the platform.
    assert revenue(marts, DAY) == {
        # donation 85%: 1001 -> 851 + 150; boost 2000 -> 1700 + 300 and its chargeback -1700 - 300;
        # request 80202 -> 68172 (68171.7) + 12030.
        ("alpha", "donation"): (
            1001 + 2000 - 2000 + 80202,
            851 + 1700 - 1700 + 68172,
            150 + 300 - 300 + 12030,
            3,
            1,
        ),
        # gift 80%: 4999 -> 3999 (3999.2) + 1000; 333 -> 266 (266.4) + 67, charged back exactly.
        ("alpha", "gift"): (4999 + 333 - 333, 3999 + 266 - 266, 1000 + 67 - 67, 2, 1),
        # subscription 70%: 29999 -> 20999 (20999.3) + 9000; 14999 -> 10499 (10499.3) + 4500, refunded.
        ("alpha", "subscription"): (29999 + 14999 - 14999, 20999 + 10499 - 10499, 9000 + 4500 - 4500, 2, 1),
        # sponsored 90%: 1000000 -> 900000 + 100000, refunded; 989099 -> 890189 (890189.1) + 98910.
        ("beta", "sponsored"): (
            1_000_000 - 1_000_000 + 989099,
            900_000 - 900_000 + 890189,
            100_000 - 100_000 + 98910,
            2,
            1,
        ),
    }
    day = date.fromisoformat(DAY)
    subs = pq.read_table(mart_partition_path(marts, SUBSCRIPTION_PAYMENTS_MART, day)).to_pylist()
    assert sorted((r["event_type"], r["gross_rub_minor"]) for r in subs) == [
        ("subscription.created", 29999),
        ("subscription.refunded", -14999),
        ("subscription.renewed", 14999),
    ]


def test_a_subscription_refund_days_later_values_at_its_charge_rate(lake: Path, marts: Path) -> None:
    # Charged (and so settled) on 2026-06-30, when USD was 78.2326; refunded on 2026-07-02 at 80.1214.
    charged = subscription(
        events.SubscriptionCreated,
        "alpha",
        1001,
        datetime(2026, 6, 30, 23, tzinfo=UTC),
        currency=Currency.USD,
    )
    refunded = reversal(charged, events.SubscriptionChargedBack, datetime(2026, 7, 2, 9, tzinfo=UTC))
    land(lake, [charged, refunded], topic=SUBSCRIPTIONS_TOPIC)
    assert materialise(lake, marts, "2026-06-30").success
    assert materialise(lake, marts, "2026-07-02").success
    # 1001 * 78.2326 = 78310.8326 -> 78311 kopecks; 0.70 * 78311 = 54817.7 -> 54818, the platform 23493.
    assert revenue(marts, "2026-06-30") == {("alpha", "subscription"): (78311, 54818, 23493, 1, 0)}
    assert revenue(marts, "2026-07-02") == {("alpha", "subscription"): (-78311, -54818, -23493, 0, 1)}


def test_a_quiet_day_writes_every_money_mart_empty(lake: Path, marts: Path) -> None:
    land(lake, [gift("alpha", 500, Currency.RUB, NOON)], topic=GIFTS_TOPIC)
    result = materialise(lake, marts, DAY)
    assert result.success and all(check_results(result).values())
    day = date.fromisoformat(DAY)
    rows = {name: pq.read_metadata(mart_partition_path(marts, name, day)).num_rows for name in MONEY_MARTS}
    assert rows == {name: int(name == GIFT_PAYMENTS_MART) for name in MONEY_MARTS}
    assert revenue(marts, DAY) == {("alpha", "gift"): (500, 400, 100, 1, 0)}


def test_a_republished_gift_counts_once(lake: Path, marts: Path) -> None:
    sent = gift("alpha", 500, Currency.RUB, NOON)
    land(lake, [sent, sent], topic=GIFTS_TOPIC)
    land(lake, [sent], topic=GIFTS_TOPIC, partition=1)
    result = materialise(lake, marts, DAY)
    assert result.success and all(check_results(result).values())
    assert revenue(marts, DAY) == {("alpha", "gift"): (500, 400, 100, 1, 0)}


def test_revenue_fails_clearly_when_a_source_mart_was_not_built(lake: Path, marts: Path) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, NOON)])
    result = dg.materialize(
        [donations, streamer_revenue_daily],
        partition_key=DAY,
        resources=resources(lake, marts),  # type: ignore[arg-type]
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("streamer_revenue_daily")
    assert failure is not None
    for name in (SUBSCRIPTION_PAYMENTS_MART, GIFT_PAYMENTS_MART, INTERACTIVE_PAYMENTS_MART):
        assert name in str(failure.error)
    assert not mart_partition_path(marts, REVENUE_MART, date.fromisoformat(DAY)).exists()


def _rewrite(path: Path, column: str, change: pa.Array) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, table.schema.field(index), change), path)


def test_reconciliation_fails_when_an_input_mart_drifts_from_revenue(lake: Path, marts: Path) -> None:
    land_every_source(lake)
    assert materialise(lake, marts, DAY).success
    day = date.fromisoformat(DAY)
    # An interactive payment's value moved by a kopeck after revenue was built: the donation source of
    # alpha no longer sums its two marts (donations + interactive), although the donations mart agrees.
    path = mart_partition_path(marts, INTERACTIVE_PAYMENTS_MART, day)
    gross = pq.read_table(path).column("gross_rub_minor").to_pylist()
    _rewrite(path, "gross_rub_minor", pa.array([gross[0] + 1, *gross[1:]], pa.int64()))

    result = run_checks(lake, marts, revenue_gross_reconciles_with_payments)
    assert not result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == GROSS_RECONCILES_WITH_PAYMENTS and not evaluation.passed
    mismatches = evaluation.metadata["first_mismatches"].value
    assert list(mismatches) == ["donation/alpha"]  # type: ignore[arg-type]


def test_reconciliation_fails_when_a_source_is_missing_from_revenue(lake: Path, marts: Path) -> None:
    land_every_source(lake)
    assert materialise(lake, marts, DAY).success
    path = mart_partition_path(marts, REVENUE_MART, date.fromisoformat(DAY))
    table = pq.read_table(path)
    kept = [i for i, source in enumerate(table.column("source").to_pylist()) if source != "sponsored"]
    pq.write_table(table.take(kept), path)

    result = run_checks(
        lake, marts, revenue_gross_equals_share_plus_fee, revenue_gross_reconciles_with_payments
    )
    assert not result.success
    assert check_results(result) == {
        ("streamer_revenue_daily", GROSS_EQUALS_SHARE_PLUS_FEE): True,
        ("streamer_revenue_daily", GROSS_RECONCILES_WITH_PAYMENTS): False,
    }
