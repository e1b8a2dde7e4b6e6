"""What every money mart shares: one row per money-moving event of a topic, once each by `event_id`,
valued in roubles at the rate of its settlement date, negative for a reversal.

A `MoneyMart` says, as data, which topic and event types feed a mart and which payload columns it keeps;
`money_mart_asset` and `event_id_unique_check` turn it into the daily asset and its blocking check, so
donations, subscriptions, gifts, interactive donations and sponsored content are valued by one rule and a
revenue source joins with one spec. A day without events still gets its (empty) partition, so the revenue
asset downstream never fails on a quiet source.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa

from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from services.fx import FxTable, MissingRate
from services.lake import partition_dir
from services.money import Currency, Money

EVENT_ID_UNIQUE = "event_id_unique"

TS = pa.timestamp("us", tz="UTC")
_HEAD = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("occurred_at", TS, nullable=False),
    # The settlement the rate is taken on: a reversal repeats its credit's, so both convert alike.
    pa.field("settled_at", TS, nullable=False),
    pa.field("channel_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string()),
]
_TAIL = [
    pa.field("amount_minor", pa.int64(), nullable=False),
    pa.field("currency", pa.string(), nullable=False),
    # Rates are Decimal by contract; a decimal column keeps them exact in the mart too.
    pa.field("rub_per_unit", pa.decimal128(18, 6), nullable=False),
    pa.field("gross_rub_minor", pa.int64(), nullable=False),
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
]
_VALUED = ("rub_per_unit", "gross_rub_minor")


@dataclass(frozen=True)
class MoneyMart:
    """One money mart: its name, the lake topic it reads, the event types that credit the streamer and
    those that reverse a credit, and the payload columns it keeps (`extras`, between the envelope's and
    the money's). `credit_settled_at` is the column that times a credit's settlement: `occurred_at` where
    the credit carries none (a subscription charge is emitted in the transaction that settles it, and
    its reversal's `settled_at` is that same settlement); a reversal always carries `settled_at`."""

    name: str
    topic: str
    credits: tuple[str, ...]
    reversals: tuple[str, ...]
    extras: tuple[pa.Field, ...]
    credit_settled_at: str = "settled_at"

    @property
    def event_types(self) -> tuple[str, ...]:
        return (*self.credits, *self.reversals)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([*_HEAD, *self.extras, *_TAIL])


def _select_list(mart: MoneyMart, present: set[str]) -> str:
    """The columns to read; one that no landed file of the day has yet (written before the field
    existed) is read as NULL, and the non-null constraints of the schema then say if it mattered."""

    def column(name: str) -> str:
        return name if name in present else "NULL"

    wanted = [f.name for f in mart.schema if f.name not in _VALUED]
    cols = [f"{column(name)} AS {name}" for name in wanted]
    credits = ", ".join(f"'{t}'" for t in mart.credits)
    cols[wanted.index("settled_at")] = (
        f"CASE WHEN event_type IN ({credits}) THEN {column(mart.credit_settled_at)} "
        f"ELSE {column('settled_at')} END AS settled_at"
    )
    return ", ".join(cols)


def read_money_events(mart: MoneyMart, lake: Path, day: date) -> list[dict[str, Any]]:
    """The day's money events of the mart's topic, one row per event_id (a republished event lands again
    under another offset: the same event, kept once); an event that moved no money (0) is no payment."""
    files = sorted(str(p) for p in partition_dir(lake, mart.topic, day).glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    try:
        source = "read_parquet($files, union_by_name = true, hive_partitioning = false)"
        present = {
            row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {source}", params={"files": files}).fetchall()
        }
        rel = con.sql(
            f"SELECT {_select_list(mart, present)} FROM {source} "
            "WHERE list_contains($types, event_type) AND amount_minor IS DISTINCT FROM 0 "
            "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1 "
            "ORDER BY occurred_at, event_id",
            params={"files": files, "types": list(mart.event_types)},
        )
        rows: list[dict[str, Any]] = rel.to_arrow_table().to_pylist()
        return rows
    finally:
        con.close()


def value_in_rub(mart: MoneyMart, rows: list[dict[str, Any]], fx: FxTable) -> pa.Table:
    """Convert each event to roubles at the rate in force on its settlement date; reversals are negative.

    A refund or chargeback carries the original settlement time, so it converts at the original rate and
    cancels its credit to the kopeck even when the rate has moved since.
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
        gross = -rub if row["event_type"] in mart.reversals else rub
        valued.append({**row, "rub_per_unit": rate, "gross_rub_minor": gross})
    return pa.Table.from_pylist(valued, schema=mart.schema)


def money_mart_asset(mart: MoneyMart, lake_spec: dg.AssetSpec, description: str) -> dg.AssetsDefinition:
    """The daily asset that writes `mart` from its lake topic (an empty partition on a quiet day)."""

    @dg.asset(
        name=mart.name,
        partitions_def=DAILY,
        deps=[lake_spec],
        group_name="revenue",
        kinds={"duckdb", "parquet"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext, lake: LakeResource, marts: MartsResource
    ) -> dg.MaterializeResult:
        day = partition_day(context.partition_key)
        table = value_in_rub(mart, read_money_events(mart, lake.path, day), FxTable.load())
        path = write_mart_partition(marts.path, mart.name, day, table)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "dagster/row_count": table.num_rows,
                "gross_rub_minor": sum(table.column("gross_rub_minor").to_pylist()),
            }
        )

    return _asset


def event_id_unique_check(asset: dg.AssetsDefinition, mart: MoneyMart) -> dg.AssetChecksDefinition:
    """The blocking check that a money event is counted once: event_id is unique in the day's mart."""

    @dg.asset_check(
        asset=asset,
        name=EVENT_ID_UNIQUE,
        blocking=True,
        description=f"A {mart.topic} money event is counted once: event_id is unique in the day's mart.",
    )
    def _check(context: dg.AssetCheckExecutionContext, marts: MartsResource) -> dg.AssetCheckResult:
        day = checked_day(context)
        ((rows, distinct),) = query_mart(
            marts.path, mart.name, day, "SELECT count(*), count(DISTINCT event_id) FROM part"
        )
        return dg.AssetCheckResult(
            passed=rows == distinct, metadata={"rows": rows, "duplicates": int(rows) - int(distinct)}
        )

    return _check
