"""`streamer_revenue_daily`: what each channel earned per day and source, split between streamer and
platform payment by payment."""

import dagster as dg
import duckdb
import pyarrow as pa

from assets.donations import PROCESSED, donations
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import MartsResource
from services.lake import mart_partition_path
from services.marts import DONATIONS_MART, REVENUE_MART
from services.revenue import RevenueSource, split_for

GROSS_EQUALS_SHARE_PLUS_FEE = "gross_equals_share_plus_fee"
GROSS_RECONCILES_WITH_DONATIONS = "gross_reconciles_with_donations"

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
       count(*) FILTER (WHERE d.event_type = $processed) AS donations_count,
       count(*) FILTER (WHERE d.event_type <> $processed) AS reversals_count
FROM read_parquet($path) AS d JOIN splits AS s USING (gross_rub_minor)
GROUP BY d.channel_id
ORDER BY d.channel_id
"""


def payment_splits(grosses: list[int]) -> pa.Table:
    """The donation split of each distinct payment amount, by the one rule in `services.revenue`.

    Splitting each payment (not the day's total) rounds exactly as the payment was credited, so a
    reversal, which splits to the exact negatives, cancels its donation's share to the kopeck.
    """
    splits = [split_for(RevenueSource.DONATION, gross) for gross in sorted(set(grosses))]
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


@dg.asset(partitions_def=DAILY, deps=[donations], group_name="revenue", kinds={"duckdb", "parquet"})
def streamer_revenue_daily(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult:
    """Per channel and day, donation gross in roubles split per payment: 85% to the streamer rounded half-up
    once, the remainder to the platform; refunds and chargebacks subtract exactly what they credited."""
    day = partition_day(context.partition_key)
    source = mart_partition_path(marts.path, DONATIONS_MART, day)
    if not source.exists():
        raise dg.Failure(
            description=f"the donations mart has no partition {day.isoformat()}: materialise it first"
        )
    con = duckdb.connect()
    try:
        distinct = con.sql("SELECT DISTINCT gross_rub_minor FROM read_parquet($p)", params={"p": str(source)})
        con.register("splits", payment_splits([gross for (gross,) in distinct.fetchall()]))
        table = con.sql(
            _AGGREGATE,
            params={
                "day": day.isoformat(),
                "source": RevenueSource.DONATION.value,
                "processed": PROCESSED,
                "path": str(source),
            },
        ).to_arrow_table()
    finally:
        con.close()
    table = table.cast(REVENUE_SCHEMA)
    path = write_mart_partition(marts.path, REVENUE_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
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


@dg.asset_check(
    asset=streamer_revenue_daily,
    name=GROSS_RECONCILES_WITH_DONATIONS,
    blocking=True,
    additional_deps=[donations],
)
def revenue_gross_reconciles_with_donations(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """The day's revenue gross equals the sum of the day's `donations` mart rows, and so do the counts."""
    day = checked_day(context)
    ((revenue_gross, revenue_events),) = query_mart(
        marts.path,
        REVENUE_MART,
        day,
        "SELECT coalesce(sum(gross_rub_minor), 0)::BIGINT, "
        "coalesce(sum(donations_count + reversals_count), 0)::BIGINT FROM part",
    )
    ((donations_gross, donations_events),) = query_mart(
        marts.path,
        DONATIONS_MART,
        day,
        "SELECT coalesce(sum(gross_rub_minor), 0)::BIGINT, count(*) FROM part",
    )
    return dg.AssetCheckResult(
        passed=revenue_gross == donations_gross and revenue_events == donations_events,
        metadata={
            "revenue_gross_rub_minor": revenue_gross,
            "donations_gross_rub_minor": donations_gross,
            "revenue_events": revenue_events,
            "donations_events": donations_events,
        },
    )
