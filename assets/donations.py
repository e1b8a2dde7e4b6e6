"""The `donations` mart: each day's money-moving donation events, once each, valued in roubles."""

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa

from assets.lake import DONATIONS_TOPIC, LAKE_DONATIONS
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from services.events import DonationChargedBack, DonationProcessed, DonationRefunded
from services.fx import FxTable, MissingRate
from services.lake import partition_dir
from services.marts import DONATIONS_MART
from services.money import Currency, Money

PROCESSED = DonationProcessed.event_type
REVERSALS = (DonationRefunded.event_type, DonationChargedBack.event_type)
MONEY_EVENTS = (PROCESSED, *REVERSALS)

EVENT_ID_UNIQUE = "event_id_unique"

_TS = pa.timestamp("us", tz="UTC")
DONATIONS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("occurred_at", _TS, nullable=False),
        pa.field("settled_at", _TS, nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("donation_id", pa.string(), nullable=False),
        pa.field("payment_id", pa.string()),
        pa.field("donor_name", pa.string()),
        pa.field("message", pa.string()),
        pa.field("amount_minor", pa.int64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        # Rates are Decimal by contract; a decimal column keeps them exact in the mart too.
        pa.field("rub_per_unit", pa.decimal128(18, 6), nullable=False),
        pa.field("gross_rub_minor", pa.int64(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ]
)

_READ_MONEY_EVENTS = """
SELECT event_id, event_type, occurred_at, settled_at, channel_id, user_id, donation_id, payment_id,
       donor_name, message, amount_minor, currency, kafka_partition, kafka_offset
FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
WHERE list_contains($money_events, event_type)
-- A republished event lands again under another offset: keep one landing (they are the same event).
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1
ORDER BY occurred_at, event_id
"""


def read_money_events(lake: Path, day: date) -> list[dict[str, Any]]:
    """The day's processed, refunded and charged-back events from the lake, one row per event_id."""
    files = sorted(str(p) for p in partition_dir(lake, DONATIONS_TOPIC, day).glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    try:
        rel = con.sql(
            _READ_MONEY_EVENTS,
            params={"files": files, "money_events": list(MONEY_EVENTS)},
        )
        rows: list[dict[str, Any]] = rel.to_arrow_table().to_pylist()
        return rows
    finally:
        con.close()


def value_in_rub(rows: list[dict[str, Any]], fx: FxTable) -> pa.Table:
    """Convert each event to roubles at the rate in force on its settlement date; reversals are negative.

    A refund or chargeback carries the original `settled_at`, so it converts at the original rate and
    cancels the donation to the kopeck even when the rate has moved since.
    """
    valued: list[dict[str, Any]] = []
    for row in rows:
        settled_at: datetime | None = row["settled_at"]
        if settled_at is None or row["amount_minor"] is None or row["currency"] is None:
            raise dg.Failure(
                description=f"money event {row['event_id']} ({row['event_type']}) lacks settled_at, "
                "amount_minor or currency",
            )
        currency = Currency(row["currency"])
        on = settled_at.date()
        try:
            rate: Decimal = fx.rate(currency, on)
        except MissingRate as exc:
            raise dg.Failure(description=f"event {row['event_id']}: {exc}") from exc
        rub = fx.to_rub(Money(row["amount_minor"], currency), on).amount_minor
        valued.append(
            {**row, "rub_per_unit": rate, "gross_rub_minor": -rub if row["event_type"] in REVERSALS else rub}
        )
    return pa.Table.from_pylist(valued, schema=DONATIONS_SCHEMA)


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_DONATIONS],
    group_name="revenue",
    kinds={"duckdb", "parquet"},
)
def donations(
    context: dg.AssetExecutionContext, lake: LakeResource, marts: MartsResource
) -> dg.MaterializeResult:
    """Every donation that moved money on the day (processed, refunded, charged back), each event once,
    with its gross in roubles at the settlement-date rate, negative for a reversal."""
    day = partition_day(context.partition_key)
    table = value_in_rub(read_money_events(lake.path, day), FxTable.load())
    path = write_mart_partition(marts.path, DONATIONS_MART, day, table)
    gross = sum(table.column("gross_rub_minor").to_pylist())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "gross_rub_minor": gross,
        }
    )


@dg.asset_check(asset=donations, name=EVENT_ID_UNIQUE, blocking=True)
def donations_event_id_unique(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A donation event is counted once: event_id is unique in the day's mart."""
    day = checked_day(context)
    ((rows, distinct),) = query_mart(
        marts.path, DONATIONS_MART, day, "SELECT count(*), count(DISTINCT event_id) FROM part"
    )
    return dg.AssetCheckResult(
        passed=rows == distinct, metadata={"rows": rows, "duplicates": int(rows) - int(distinct)}
    )
