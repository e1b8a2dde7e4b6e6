"""`revenue_forecast`: each channel's gross revenue for the next 7 days as of a day, with the backtest
error of the method that made it (services.forecast), read from `streamer_revenue_daily`."""

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import MartsResource
from assets.revenue import streamer_revenue_daily
from services.forecast import HORIZON_DAYS, forecast
from services.lake import mart_dir
from services.marts import REVENUE_FORECAST_MART, REVENUE_MART

HORIZON_COMPLETE = "horizon_complete"

FORECAST_SCHEMA = pa.schema(
    [
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("forecast_rub_minor", pa.int64(), nullable=False),
        pa.field("backtest_mae_rub_minor", pa.int64()),
        pa.field("history_days", pa.int64(), nullable=False),
    ]
)


def daily_gross(marts: Path, as_of: date) -> dict[str, list[int]]:
    """Per channel, gross revenue of every day from its first revenue day to `as_of` (0 on days
    without revenue rows)."""
    files = sorted(
        str(p)
        for p in mart_dir(marts, REVENUE_MART).glob("date=*/part.parquet")
        if p.parent.name.removeprefix("date=") <= as_of.isoformat()
    )
    by_channel: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    if files:
        for r in pq.read_table(files, columns=["day", "channel_id", "gross_rub_minor"]).to_pylist():
            by_channel[r["channel_id"]][r["day"]] += r["gross_rub_minor"]
    series = {}
    for channel, days in by_channel.items():
        first = min(days)
        series[channel] = [days.get(first + timedelta(n), 0) for n in range((as_of - first).days + 1)]
    return series


def forecast_rows(marts: Path, as_of: date) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for channel, history in sorted(daily_gross(marts, as_of).items()):
        made = forecast(history)
        if made is None:
            continue
        for step, value in enumerate(made.values, start=1):
            rows.append(
                {
                    "as_of": as_of,
                    "channel_id": channel,
                    "day": as_of + timedelta(days=step),
                    "method": made.method,
                    "forecast_rub_minor": value,
                    "backtest_mae_rub_minor": made.backtest_mae,
                    "history_days": made.history_days,
                }
            )
    return rows


@dg.asset(partitions_def=DAILY, deps=[streamer_revenue_daily], group_name="revenue", kinds={"parquet"})
def revenue_forecast(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult[None]:
    """Per channel with 28+ days of history, gross revenue for the 7 days after the partition's day by the
    method (28-day mean or same-weekday mean of 4 weeks) with the lower rolling-origin backtest MAE,
    shown next to it. Reads every revenue partition up to the day: backfill revenue first."""
    day = partition_day(context.partition_key)
    table = pa.Table.from_pylist(forecast_rows(marts.path, day), schema=FORECAST_SCHEMA)
    path = write_mart_partition(marts.path, REVENUE_FORECAST_MART, day, table)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "dagster/row_count": table.num_rows}
    )


@dg.asset_check(asset=revenue_forecast, name=HORIZON_COMPLETE, blocking=True)
def revenue_forecast_horizon_complete(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Each forecast channel has exactly the 7 next days, one method, and no negative amount."""
    broken = query_mart(
        marts.path,
        REVENUE_FORECAST_MART,
        checked_day(context),
        f"SELECT as_of, channel_id FROM part GROUP BY ALL HAVING count(DISTINCT day) <> {HORIZON_DAYS} "
        f"OR count(*) <> {HORIZON_DAYS} OR count(DISTINCT method) <> 1 OR min(forecast_rub_minor) < 0",
    )
    return dg.AssetCheckResult(passed=not broken, metadata={"broken": [str(r) for r in broken[:10]]})
