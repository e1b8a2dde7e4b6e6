"""`streamer_revenue_daily`: what each channel earned per day and source, split between streamer and
platform payment by payment.

Every source of revenue comes through money marts with one row per money event (`event_id`, `event_type`,
`channel_id`, `gross_rub_minor`, negative for a reversal; assets/money_marts.py). `REVENUE_INPUTS` says,
as data, which marts carry each `RevenueSource`: a source may have several (donations and interactive
donations both are `donation`), and their rows are summed into the source's one row per channel and day.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from assets.donations import DONATIONS, donations
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.money_marts import MoneyMart
from assets.partitions import DAILY, partition_day
from assets.payment_marts import (
    GIFT_PAYMENTS,
    INTERACTIVE_PAYMENTS,
    PAYMENT_MART_ASSETS,
    SPONSORSHIP_PAYMENTS,
    SUBSCRIPTION_PAYMENTS,
)
from assets.resources import MartsResource
from services.lake import mart_partition_path
from services.marts import REVENUE_MART
from services.revenue import RevenueSource, split_for

# Each source's money marts; a new mart of a source joins its tuple (and SOURCE_MART_ASSETS).
REVENUE_INPUTS: dict[RevenueSource, tuple[MoneyMart, ...]] = {
    RevenueSource.DONATION: (DONATIONS, INTERACTIVE_PAYMENTS),
    RevenueSource.SUBSCRIPTION: (SUBSCRIPTION_PAYMENTS,),
    RevenueSource.GIFT: (GIFT_PAYMENTS,),
    RevenueSource.SPONSORED: (SPONSORSHIP_PAYMENTS,),
}
# The mart assets the revenue asset reads, one per mart above.
SOURCE_MART_ASSETS = [donations, *PAYMENT_MART_ASSETS]

GROSS_EQUALS_SHARE_PLUS_FEE = "gross_equals_share_plus_fee"
GROSS_RECONCILES_WITH_PAYMENTS = "gross_reconciles_with_payments"

REVENUE_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("gross_rub_minor", pa.int64(), nullable=False),
        pa.field("streamer_share_minor", pa.int64(), nullable=False),
        pa.field("platform_fee_minor", pa.int64(), nullable=False),
        pa.field("donations_count", pa.int64(), nullable=False),
        pa.field("reversals_count", pa.int64(), nullable=False),
    ]
)

_SPLITS_SCHEMA = pa.schema(
    [
        pa.field("gross_rub_minor", pa.int64(), nullable=False),
        pa.field("streamer_minor", pa.int64(), nullable=False),
        pa.field("platform_minor", pa.int64(), nullable=False),
    ]
)

_AGGREGATE = """
SELECT $day::DATE AS day, d.channel_id, $source AS source,
       sum(d.gross_rub_minor)::BIGINT AS gross_rub_minor,
       sum(s.streamer_minor)::BIGINT AS streamer_share_minor,
       sum(s.platform_minor)::BIGINT AS platform_fee_minor,
       -- donations_count counts crediting payments of any source (the column predates other sources).
       count(*) FILTER (WHERE list_contains($credits, d.event_type)) AS donations_count,
       count(*) FILTER (WHERE NOT list_contains($credits, d.event_type)) AS reversals_count
FROM read_parquet($paths, union_by_name = true, hive_partitioning = false) AS d
JOIN splits AS s USING (gross_rub_minor)
GROUP BY d.channel_id
ORDER BY d.channel_id
"""


def payment_splits(grosses: list[int], source: RevenueSource = RevenueSource.DONATION) -> pa.Table:
    """The `source` split of each distinct payment amount, by the one rule in `services.revenue`.

    Splitting each payment (not the day's total) rounds exactly as the payment was credited, so a
    reversal, which splits to the exact negatives, cancels its payment's share to the kopeck.
    """
    splits = [split_for(source, gross) for gross in sorted(set(grosses))]
    return pa.Table.from_pylist(
        [
            {
                "gross_rub_minor": s.gross_minor,
                "streamer_minor": s.streamer_minor,
                "platform_minor": s.platform_minor,
            }
            for s in splits
        ],
        schema=_SPLITS_SCHEMA,
    )


def input_paths(day: date, inputs: tuple[MoneyMart, ...], marts: Path) -> list[str]:
    """The day's partition of each input mart; a missing one fails the run (its asset must run first;
    it writes an empty partition on a quiet day, so a missing file is never just "no payments")."""
    paths = [mart_partition_path(marts, mart.name, day) for mart in inputs]
    missing = [mart.name for mart, path in zip(inputs, paths, strict=True) if not path.exists()]
    if missing:
        raise dg.Failure(
            description=f"the {', '.join(missing)} mart(s) have no partition {day.isoformat()}: "
            "materialise them first"
        )
    return [str(path) for path in paths]


def source_revenue(day: date, source: RevenueSource, inputs: tuple[MoneyMart, ...], marts: Path) -> pa.Table:
    """One source's rows of the day: per channel, gross, streamer share and fee over all its input marts,
    split per payment."""
    paths = input_paths(day, inputs, marts)
    con = duckdb.connect()
    try:
        distinct = con.sql(
            "SELECT DISTINCT gross_rub_minor FROM read_parquet($paths, union_by_name = true, "
            "hive_partitioning = false)",
            params={"paths": paths},
        )
        con.register("splits", payment_splits([gross for (gross,) in distinct.fetchall()], source))
        table = con.sql(
            _AGGREGATE,
            params={
                "day": day.isoformat(),
                "source": source.value,
                "credits": [t for mart in inputs for t in mart.credits],
                "paths": paths,
            },
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(REVENUE_SCHEMA)


@dg.asset(partitions_def=DAILY, deps=SOURCE_MART_ASSETS, group_name="revenue", kinds={"duckdb", "parquet"})
def streamer_revenue_daily(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult:
    """Per channel, day and source, gross in roubles split per payment by the source's share (donations
    and interactive donations 85%, subscriptions 70%, gifts 80%, sponsored 90%) rounded half-up once, the
    remainder to the platform; refunds and chargebacks subtract exactly what they credited."""
    day = partition_day(context.partition_key)
    input_paths(day, tuple(mart for inputs in REVENUE_INPUTS.values() for mart in inputs), marts.path)
    parts = [source_revenue(day, source, inputs, marts.path) for source, inputs in REVENUE_INPUTS.items()]
    table = pa.concat_tables(parts).sort_by([("channel_id", "ascending"), ("source", "ascending")])
    path = write_mart_partition(marts.path, REVENUE_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "sources": [source.value for source in REVENUE_INPUTS],
            "gross_rub_minor": sum(table.column("gross_rub_minor").to_pylist()),
            "streamer_share_minor": sum(table.column("streamer_share_minor").to_pylist()),
        }
    )


@dg.asset_check(asset=streamer_revenue_daily, name=GROSS_EQUALS_SHARE_PLUS_FEE, blocking=True)
def revenue_gross_equals_share_plus_fee(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Nothing is created or lost in a split: gross == streamer share + platform fee to the kopeck for
    every channel-day."""
    day = checked_day(context)
    broken = query_mart(
        marts.path,
        REVENUE_MART,
        day,
        "SELECT channel_id, gross_rub_minor, streamer_share_minor, platform_fee_minor FROM part "
        "WHERE gross_rub_minor <> streamer_share_minor + platform_fee_minor ORDER BY channel_id",
    )
    return dg.AssetCheckResult(
        passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "broken_rows": len(broken),
            "first_broken": [f"{c}: {g} != {s} + {f}" for c, g, s, f in broken[:10]],
        },
    )


_PER_CHANNEL = "SELECT channel_id, sum(gross_rub_minor)::BIGINT, count(*) FROM part GROUP BY channel_id"


@dg.asset_check(
    asset=streamer_revenue_daily,
    name=GROSS_RECONCILES_WITH_PAYMENTS,
    blocking=True,
    additional_deps=SOURCE_MART_ASSETS,
)
def revenue_gross_reconciles_with_payments(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Per source and channel, the revenue gross and event count equal the sums over the source's input
    marts (the landed payment events, valued); each input mart's day total is in the metadata."""
    day = checked_day(context)
    revenue: dict[tuple[str, str], tuple[int, int]] = {
        (str(source), str(channel)): (int(gross), int(events))
        for source, channel, gross, events in query_mart(
            marts.path,
            REVENUE_MART,
            day,
            "SELECT source, channel_id, sum(gross_rub_minor)::BIGINT, "
            "sum(donations_count + reversals_count)::BIGINT FROM part GROUP BY source, channel_id",
        )
    }
    expected: dict[tuple[str, str], tuple[int, int]] = {}
    totals: dict[str, int] = {}
    for source, inputs in REVENUE_INPUTS.items():
        for mart in inputs:
            rows = query_mart(marts.path, mart.name, day, _PER_CHANNEL)
            totals[f"{mart.name}_gross_rub_minor"] = sum(int(gross) for _, gross, _ in rows)
            for channel, gross, events in rows:
                key = (source.value, str(channel))
                before = expected.get(key, (0, 0))
                expected[key] = (before[0] + int(gross), before[1] + int(events))
    # (gross, events) per source and channel: in revenue, and summed over the source's input marts.
    mismatches = {
        "/".join(key): f"revenue {revenue.get(key)}, payments {expected.get(key)}"
        for key in sorted(revenue.keys() | expected.keys())
        if revenue.get(key) != expected.get(key)
    }
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            **totals,
            "mismatched": len(mismatches),
            "first_mismatches": dict(list(mismatches.items())[:10]),
        },
    )
