"""`streamer_revenue_daily`: what each channel earned per day and source, split between streamer and
platform payment by payment.

Every source of revenue comes through a money mart with one row per money event (`event_id`, `event_type`,
`channel_id`, `gross_rub_minor`, negative for a reversal). `REVENUE_INPUTS` says, as data, which mart,
topic and event types carry each `RevenueSource`; a source lands in the revenue mart as soon as its
entry (and its mart asset, added to the asset's deps) exists. Today only donations have events.
"""

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from assets.donations import PROCESSED, REVERSALS, donations
from assets.lake import DONATIONS_TOPIC
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import MartsResource
from services.lake import mart_partition_path
from services.marts import DONATIONS_MART, REVENUE_MART
from services.revenue import RevenueSource, split_for


@dataclass(frozen=True)
class SourceInputs:
    """Where one revenue source's money events are: the lake topic, the mart that values them in
    roubles, the event type that credits the streamer and those that reverse a credit."""

    topic: str
    mart: str
    credit: str
    reversals: tuple[str, ...]


# The sources whose events exist; subscriptions, gifts and sponsored content join with one entry each.
REVENUE_INPUTS: dict[RevenueSource, SourceInputs] = {
    RevenueSource.DONATION: SourceInputs(DONATIONS_TOPIC, DONATIONS_MART, PROCESSED, REVERSALS),
}
# The mart assets the revenue asset reads, one per entry above.
SOURCE_MART_ASSETS = [donations]

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
       -- donations_count counts crediting payments of any source (the column predates other sources).
       count(*) FILTER (WHERE d.event_type = $credit) AS donations_count,
       count(*) FILTER (WHERE d.event_type <> $credit) AS reversals_count
FROM read_parquet($path) AS d JOIN splits AS s USING (gross_rub_minor)
GROUP BY d.channel_id
ORDER BY d.channel_id
"""


def payment_splits(grosses: list[int], source: RevenueSource = RevenueSource.DONATION) -> pa.Table:
    """The `source` split of each distinct payment amount, by the one rule in `services.revenue`.

    Splitting each payment (not the day's total) rounds exactly as the payment was credited, so a
    reversal, which splits to the exact negatives, cancels its donation's share to the kopeck.
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


def source_revenue(day: date, source: RevenueSource, inputs: SourceInputs, marts: Path) -> pa.Table:
    """One source's rows of the day: per channel, gross, streamer share and fee, split per payment."""
    path = mart_partition_path(marts, inputs.mart, day)
    if not path.exists():
        raise dg.Failure(
            description=f"the {inputs.mart} mart has no partition {day.isoformat()}: materialise it first"
        )
    con = duckdb.connect()
    try:
        distinct = con.sql("SELECT DISTINCT gross_rub_minor FROM read_parquet($p)", params={"p": str(path)})
        con.register("splits", payment_splits([gross for (gross,) in distinct.fetchall()], source))
        table = con.sql(
            _AGGREGATE,
            params={
                "day": day.isoformat(),
                "source": source.value,
                "credit": inputs.credit,
                "path": str(path),
            },
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(REVENUE_SCHEMA)


@dg.asset(partitions_def=DAILY, deps=SOURCE_MART_ASSETS, group_name="revenue", kinds={"duckdb", "parquet"})
def streamer_revenue_daily(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult:
    """Per channel, day and source, gross in roubles split per payment by the source's share (donations
    85%, subscriptions 70%, gifts 80%, sponsored 90%) rounded half-up once, the remainder to the platform;
    refunds and chargebacks subtract exactly what they credited."""
    day = partition_day(context.partition_key)
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


@dg.asset_check(
    asset=streamer_revenue_daily,
    name=GROSS_RECONCILES_WITH_DONATIONS,
    blocking=True,
    additional_deps=SOURCE_MART_ASSETS,
)
def revenue_gross_reconciles_with_donations(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Per source, the day's revenue gross equals the sum of the day's rows in the source's money mart
    (the landed payment events, valued), and so do the event counts."""
    day = checked_day(context)
    mismatches: dict[str, str] = {}
    totals: dict[str, int] = {}
    for source, inputs in REVENUE_INPUTS.items():
        ((revenue_gross, revenue_events),) = query_mart(
            marts.path,
            REVENUE_MART,
            day,
            "SELECT coalesce(sum(gross_rub_minor), 0)::BIGINT, "
            "coalesce(sum(donations_count + reversals_count), 0)::BIGINT FROM part "
            f"WHERE source = '{source.value}'",
        )
        ((events_gross, events),) = query_mart(
            marts.path,
            inputs.mart,
            day,
            "SELECT coalesce(sum(gross_rub_minor), 0)::BIGINT, count(*) FROM part",
        )
        totals[f"{source.value}_gross_rub_minor"] = int(revenue_gross)
        if (revenue_gross, revenue_events) != (events_gross, events):
            mismatches[source.value] = (
                f"revenue {revenue_gross} in {revenue_events} events, "
                f"{inputs.mart} {events_gross} in {events}"
            )
    return dg.AssetCheckResult(passed=not mismatches, metadata={**totals, "mismatches": mismatches})
