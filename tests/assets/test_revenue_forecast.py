"""The revenue forecast asset over revenue mart partitions written by hand."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.mart_files import write_mart_partition
from assets.resources import MartsResource
from assets.revenue import REVENUE_SCHEMA
from assets.revenue_forecast import HORIZON_COMPLETE, revenue_forecast, revenue_forecast_horizon_complete
from services.lake import mart_partition_path
from services.marts import REVENUE_FORECAST_MART, REVENUE_MART

FIRST = date(2026, 10, 20)
AS_OF = FIRST + timedelta(days=34)  # 2026-11-23


def revenue_day(marts: Path, day: date, amounts: dict[str, int]) -> None:
    rows = [
        {
            "day": day,
            "channel_id": channel,
            "source": "donation",
            "gross_rub_minor": gross,
            "streamer_share_minor": gross,
            "platform_fee_minor": 0,
            "donations_count": 1,
            "reversals_count": 0,
        }
        for channel, gross in amounts.items()
    ]
    write_mart_partition(marts, REVENUE_MART, day, pa.Table.from_pylist(rows, schema=REVENUE_SCHEMA))


def test_forecast_asset_picks_the_better_method_and_shows_its_error(tmp_path: Path) -> None:
    marts = tmp_path / "marts"
    # alpha earns 1000 every seventh day from the 20th of October and nothing on the days between (no
    # rows at all: they count as 0); beta has only 10 days from its first revenue, too few to forecast.
    for n in range(35):
        amounts = {"alpha": 1000} if n % 7 == 0 else {}
        if n >= 25:
            amounts["beta"] = 300
        revenue_day(marts, FIRST + timedelta(days=n), amounts)
    result = dg.materialize(
        [revenue_forecast, revenue_forecast_horizon_complete],
        partition_key=AS_OF.isoformat(),
        resources={"marts": MartsResource(root=str(marts))},
    )
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {HORIZON_COMPLETE: True}
    rows = pq.read_table(mart_partition_path(marts, REVENUE_FORECAST_MART, AS_OF)).to_pylist()
    # The same-weekday mean repeats the weekly spike exactly (backtest error 0); the 28-day mean would be
    # 143 a day with an error of 245.
    assert [
        (r["channel_id"], r["day"], r["method"], r["forecast_rub_minor"], r["backtest_mae_rub_minor"])
        for r in rows
    ] == [
        ("alpha", AS_OF + timedelta(days=k), "seasonal_mean_4w", 1000 if k == 1 else 0, 0)
        for k in range(1, 8)
    ]
    assert {r["history_days"] for r in rows} == {35}
