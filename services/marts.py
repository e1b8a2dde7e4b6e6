"""Read-only queries over the marts, shared by the dashboards and the notebooks.

The marts are Parquet files the Dagster assets write (`MARTS/<asset>/date=YYYY-MM-DD/part.parquet`);
readers go through DuckDB here and never read raw events, so a page shows exactly what the checked
marts say. Every amount stays in integer minor units; formatting is the caller's (`format_minor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from services.events import DonationProcessed
from services.lake import mart_dir

DONATIONS_MART = "donations"
REVENUE_MART = "streamer_revenue_daily"


@dataclass(frozen=True, slots=True)
class DailyRevenue:
    """One channel's donation revenue on one day, in RUB minor units."""

    day: date
    gross_rub_minor: int
    streamer_share_minor: int
    platform_fee_minor: int
    donations_count: int
    reversals_count: int


@dataclass(frozen=True, slots=True)
class RecentDonation:
    """A money-moving donation event as the `donations` mart holds it (reversals have negative gross)."""

    occurred_at: datetime
    event_type: str
    donor_name: str | None
    message: str | None
    amount_minor: int
    currency: str
    gross_rub_minor: int


def _files(marts: Path, asset: str) -> list[str]:
    return sorted(str(p) for p in mart_dir(marts, asset).glob("date=*/*.parquet"))


def _query(marts: Path, asset: str, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run `sql` over every partition of `asset` (the view `mart`); no partitions yet means no rows."""
    files = _files(marts, asset)
    if not files:
        return []
    con = duckdb.connect()
    try:
        # The day is a column of the file; the hive folder adds nothing, so it is not read as a column.
        con.read_parquet(files, hive_partitioning=False).create_view("mart")
        rows: list[tuple[Any, ...]] = con.sql(sql, params=params or None).fetchall()
        return rows
    finally:
        con.close()


def has_revenue(marts: Path) -> bool:
    """Whether any revenue has been computed yet (the dashboards show an empty state until then)."""
    return bool(_files(marts, REVENUE_MART))


def channels(marts: Path) -> list[str]:
    """Channels that have revenue rows, in name order."""
    rows = _query(marts, REVENUE_MART, "SELECT DISTINCT channel_id FROM mart ORDER BY channel_id", {})
    return [str(channel) for (channel,) in rows]


def revenue_by_day(marts: Path, channel_id: str) -> list[DailyRevenue]:
    """The channel's daily donation revenue, oldest day first."""
    rows = _query(
        marts,
        REVENUE_MART,
        "SELECT day, sum(gross_rub_minor)::BIGINT, sum(streamer_share_minor)::BIGINT, "
        "sum(platform_fee_minor)::BIGINT, sum(donations_count)::BIGINT, sum(reversals_count)::BIGINT "
        "FROM mart WHERE channel_id = $channel GROUP BY day ORDER BY day",
        {"channel": channel_id},
    )
    return [DailyRevenue(*row) for row in rows]


def recent_donations(marts: Path, channel_id: str, limit: int = 20) -> list[RecentDonation]:
    """The channel's latest money-moving donation events, newest first (only reversals whose donation is
    also in the mart get the donor's name)."""
    rows = _query(
        marts,
        DONATIONS_MART,
        # A refund or chargeback does not carry the donor: name them from the donation it reverses.
        "SELECT d.occurred_at, d.event_type, coalesce(d.donor_name, o.donor_name), d.message, "
        "d.amount_minor, d.currency, d.gross_rub_minor "
        "FROM mart AS d LEFT JOIN (SELECT donation_id, any_value(donor_name) AS donor_name FROM mart "
        "WHERE event_type = $processed GROUP BY donation_id) AS o USING (donation_id) "
        "WHERE d.channel_id = $channel ORDER BY d.occurred_at DESC, d.event_id DESC LIMIT $limit",
        {"channel": channel_id, "limit": limit, "processed": DonationProcessed.event_type},
    )
    return [RecentDonation(*row) for row in rows]
