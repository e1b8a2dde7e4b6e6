"""Revenue marts written straight from hand-picked payments (split by services.revenue), for payout tests
that need whole weeks of days without materialising each one from a lake."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.mart_files import write_mart_partition
from assets.payouts import PAYOUT_ASSETS, PAYOUT_CHECKS, StreamerProfilesResource
from assets.resources import MartsResource
from assets.revenue import REVENUE_SCHEMA
from services.marts import REVENUE_MART
from services.payouts import Period
from services.revenue import RevenueSource, split_for


def write_revenue(marts: Path, day: date, payments: list[tuple[str, RevenueSource, int]]) -> None:
    """The day's revenue mart from (channel, source, gross) payments; an empty list is a quiet day."""
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for channel, source, gross in payments:
        split = split_for(source, gross)
        row = rows[(channel, source.value)]
        row["gross_rub_minor"] += gross
        row["streamer_share_minor"] += split.streamer_minor
        row["platform_fee_minor"] += split.platform_minor
        row["donations_count" if gross > 0 else "reversals_count"] += 1
    table = pa.Table.from_pylist(
        [
            {
                "day": day,
                "channel_id": channel,
                "source": source,
                "gross_rub_minor": r["gross_rub_minor"],
                "streamer_share_minor": r["streamer_share_minor"],
                "platform_fee_minor": r["platform_fee_minor"],
                "donations_count": r["donations_count"],
                "reversals_count": r["reversals_count"],
            }
            for (channel, source), r in sorted(rows.items())
        ],
        schema=REVENUE_SCHEMA,
    )
    write_mart_partition(marts, REVENUE_MART, day, table)


def quiet_days(marts: Path, period: Period) -> None:
    for day in period.days():
        write_revenue(marts, day, [])


def build(marts: Path, profiles: Path, period: Period) -> dg.ExecuteInProcessResult:
    """Materialise the period's batch asset and its blocking checks, as the payout job does."""
    asset = PAYOUT_ASSETS[0] if period.schedule.value == "weekly" else PAYOUT_ASSETS[1]
    return dg.materialize(
        [*PAYOUT_ASSETS, *PAYOUT_CHECKS],
        selection=dg.AssetSelection.assets(asset),
        partition_key=period.partition_key,
        resources={
            "marts": MartsResource(root=str(marts)),
            "streamer_profiles": StreamerProfilesResource(path=str(profiles)),
        },
        raise_on_error=False,
    )
