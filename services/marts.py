"""Read-only queries over the marts, shared by the dashboards and the notebooks.

The marts are Parquet files the Dagster assets write (`MARTS/<asset>/date=YYYY-MM-DD/part.parquet`);
readers go through DuckDB here and never read raw events, so a page shows exactly what the checked
marts say. Every amount stays in integer minor units; formatting is the caller's (`format_minor`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from services.events import DonationProcessed
from services.lake import mart_dir

DONATIONS_MART = "donations"
REVENUE_MART = "streamer_revenue_daily"
VIEWING_SESSIONS_MART = "viewing_sessions"
AUDIENCE_MART = "audience_daily"
BROADCAST_MART = "broadcast_analytics_daily"
REVENUE_FORECAST_MART = "revenue_forecast"
AUDIENCE_BREAKDOWN_MART = "audience_breakdown_daily"
STREAM_ANALYTICS_MART = "stream_analytics_daily"
GAME_ANALYTICS_MART = "game_analytics_daily"  # per game and day (assets/stream_analytics.py)
LOYALTY_POINTS_MART = "loyalty_points_daily"
LOYALTY_BALANCES_MART = "loyalty_balances"
#: The node reads `MARTS/loyalty_export/balances.parquet` (docs/contracts.md): the latest balances whole.
LOYALTY_EXPORT = "loyalty_export"
LOYALTY_EXPORT_FILE = "balances.parquet"
FRAUD_FEATURES_MART = "fraud_features"
FRAUD_SCORES_MART = "fraud_scores"
FRAUD_REVIEW_MART = "fraud_review_queue"
#: Not a daily mart: `MARTS/fraud_model/<version>/model.joblib` and `current.json` (assets/fraud.py).
FRAUD_MODEL_DIR = "fraud_model"
FRAUD_MODEL_POINTER = "current.json"
FRAUD_MODEL_METRICS = "metrics.json"


@dataclass(frozen=True, slots=True)
class DailyRevenue:
    """One channel's revenue on one day, all sources together, in RUB minor units (`donations_count`:
    crediting payments of any source, as the mart's column)."""

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


def mart_files(marts: Path, asset: str) -> list[str]:
    """Every partition file of a daily mart, oldest day first."""
    return sorted(str(p) for p in mart_dir(marts, asset).glob("date=*/*.parquet"))


def _query(marts: Path, asset: str, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run `sql` over every partition of `asset` (the view `mart`); no partitions yet means no rows."""
    files = mart_files(marts, asset)
    if not files:
        return []
    con = duckdb.connect()
    try:
        # The day is a column of the file; the hive folder adds nothing, so it is not read as a column.
        # By name: a partition written before a column existed (e.g. a broadcast's game) reads it as null.
        con.read_parquet(files, hive_partitioning=False, union_by_name=True).create_view("mart")
        rows: list[tuple[Any, ...]] = con.sql(sql, params=params or None).fetchall()
        return rows
    finally:
        con.close()


def has_revenue(marts: Path) -> bool:
    """Whether any revenue has been computed yet (the dashboards show an empty state until then)."""
    return bool(mart_files(marts, REVENUE_MART))


def channels(marts: Path) -> list[str]:
    """Channels that have revenue rows, in name order."""
    rows = _query(marts, REVENUE_MART, "SELECT DISTINCT channel_id FROM mart ORDER BY channel_id", {})
    return [str(channel) for (channel,) in rows]


def revenue_by_day(marts: Path, channel_id: str) -> list[DailyRevenue]:
    """The channel's daily revenue, all sources together, oldest day first."""
    rows = _query(
        marts,
        REVENUE_MART,
        "SELECT day, sum(gross_rub_minor)::BIGINT, sum(streamer_share_minor)::BIGINT, "
        "sum(platform_fee_minor)::BIGINT, sum(donations_count)::BIGINT, sum(reversals_count)::BIGINT "
        "FROM mart WHERE channel_id = $channel GROUP BY day ORDER BY day",
        {"channel": channel_id},
    )
    return [DailyRevenue(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class SourceRevenue:
    """One channel's revenue from one source (donation, subscription, gift, sponsored) over all days."""

    source: str
    gross_rub_minor: int
    streamer_share_minor: int
    platform_fee_minor: int
    payments_count: int
    reversals_count: int


def revenue_by_source(marts: Path, channel_id: str) -> list[SourceRevenue]:
    """The channel's revenue per source, largest gross first, so a streamer sees where money comes from
    and what share each source pays them."""
    rows = _query(
        marts,
        REVENUE_MART,
        "SELECT source, sum(gross_rub_minor)::BIGINT, sum(streamer_share_minor)::BIGINT, "
        "sum(platform_fee_minor)::BIGINT, sum(donations_count)::BIGINT, sum(reversals_count)::BIGINT "
        "FROM mart WHERE channel_id = $channel GROUP BY source ORDER BY 2 DESC, source",
        {"channel": channel_id},
    )
    return [SourceRevenue(*row) for row in rows]


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


# ---- audience and loyalty (assets/stream_analytics.py, assets/loyalty.py) ------------------------


@dataclass(frozen=True, slots=True)
class StreamDay:
    """One channel's audience on one day, as `stream_analytics_daily` holds it."""

    day: date
    peak_concurrent_viewers: int
    avg_concurrent_viewers: float | None
    watch_minutes: int
    unique_viewers: int
    new_viewers: int
    returning_viewers: int
    chat_messages: int
    messages_per_viewer_hour: float | None
    revenue_per_viewer_hour_minor: int | None


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    """A viewer's place on a channel's loyalty leaderboard as of the newest balances."""

    position: int
    user_id: str
    points: int
    rank: str
    badges: tuple[str, ...]
    watch_minutes: int
    as_of: date


def audience_channels(marts: Path) -> list[str]:
    """Channels with stream analytics, in name order."""
    rows = _query(
        marts, STREAM_ANALYTICS_MART, "SELECT DISTINCT channel_id FROM mart ORDER BY channel_id", {}
    )
    return [str(channel) for (channel,) in rows]


def stream_days(marts: Path, channel_id: str) -> list[StreamDay]:
    """The channel's daily audience, oldest day first."""
    rows = _query(
        marts,
        STREAM_ANALYTICS_MART,
        "SELECT day, peak_concurrent_viewers, avg_concurrent_viewers, watch_minutes, unique_viewers, "
        "new_viewers, returning_viewers, chat_messages, messages_per_viewer_hour, "
        "revenue_per_viewer_hour_minor FROM mart WHERE channel_id = $channel ORDER BY day",
        {"channel": channel_id},
    )
    return [StreamDay(*row) for row in rows]


def leaderboard(marts: Path, channel_id: str, limit: int = 20) -> list[LeaderboardEntry]:
    """The channel's top viewers by points in the newest balances partition."""
    rows = _query(
        marts,
        LOYALTY_BALANCES_MART,
        "SELECT position, user_id, points, rank, badges, watch_minutes, as_of FROM mart "
        "WHERE channel_id = $channel AND as_of = (SELECT max(as_of) FROM mart) "
        "ORDER BY position LIMIT $limit",
        {"channel": channel_id, "limit": limit},
    )
    return [LeaderboardEntry(p, u, pts, r, tuple(b), m, d) for p, u, pts, r, b, m, d in rows]


@dataclass(frozen=True, slots=True)
class BroadcastDay:
    """One broadcast's figures on one day, next to the channel's previous broadcast."""

    day: date
    broadcast_id: str
    started_at: datetime | None
    live_minutes: int
    peak_concurrent_viewers: int
    avg_concurrent_viewers: float
    watch_minutes: int
    previous_broadcast_id: str | None
    previous_avg_concurrent_viewers: float | None
    game: str  # the slug of the game of most of its live minutes that day; "" for none


def broadcasts(marts: Path, channel_id: str, limit: int = 20) -> list[BroadcastDay]:
    """The channel's latest broadcast-days, newest first."""
    rows = _query(
        marts,
        BROADCAST_MART,
        "SELECT day, broadcast_id, started_at, live_minutes, peak_concurrent_viewers, "
        "avg_concurrent_viewers, watch_minutes, previous_broadcast_id, previous_avg_concurrent_viewers, "
        "coalesce(game, '') FROM mart "
        "WHERE channel_id = $channel ORDER BY day DESC, started_at DESC NULLS LAST LIMIT $limit",
        {"channel": channel_id, "limit": limit},
    )
    return [BroadcastDay(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class GameWeek:
    """One game's demand and supply on the platform over the latest `days` days of the by-game mart."""

    game: str  # slug; "" for streams with no game set
    live_minutes: int  # supply: minutes channels streamed it
    watch_minutes: int  # demand: viewer-minutes spent on it
    peak_concurrent_viewers: int  # the highest daily peak
    max_channels: int  # the most channels that streamed it on one day


def games_this_week(marts: Path, days: int = 7) -> list[GameWeek]:
    """Games by watch time over the newest `days` days, so a streamer can see where viewers are and how
    crowded each game is (watch minutes per live minute = viewers an average stream of it holds)."""
    rows = _query(
        marts,
        GAME_ANALYTICS_MART,
        "SELECT game, sum(live_minutes)::BIGINT, sum(watch_minutes)::BIGINT, "
        "max(peak_concurrent_viewers)::BIGINT, max(channels)::BIGINT FROM mart "
        "WHERE day > (SELECT max(day) FROM mart) - $days::INTEGER GROUP BY game ORDER BY 3 DESC, game",
        {"days": days},
    )
    return [GameWeek(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class ForecastDay:
    """One forecast day of a channel's gross revenue, with the backtest error of the method behind it."""

    day: date
    method: str
    forecast_rub_minor: int
    backtest_mae_rub_minor: int | None


def revenue_forecast(marts: Path, channel_id: str) -> list[ForecastDay]:
    """The channel's newest 7-day revenue forecast, first day first (empty before 28 days of history)."""
    rows = _query(
        marts,
        REVENUE_FORECAST_MART,
        "SELECT day, method, forecast_rub_minor, backtest_mae_rub_minor FROM mart "
        "WHERE channel_id = $channel "
        "AND as_of = (SELECT max(as_of) FROM mart WHERE channel_id = $channel) ORDER BY day",
        {"channel": channel_id},
    )
    return [ForecastDay(*row) for row in rows]


# ---- fraud review (assets/fraud.py) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedDonation:
    """A donation waiting for a moderator: its fraud score, why, and who gave what."""

    day: date
    occurred_at: datetime
    donation_id: str
    channel_id: str
    donor: str
    amount_minor: int
    currency: str
    gross_rub_minor: int
    score: float
    reasons: tuple[str, ...]
    rules_flag: str | None
    model_version: str


def review_days(marts: Path) -> list[date]:
    """Days that have a fraud review queue, newest first."""
    rows = _query(marts, FRAUD_REVIEW_MART, "SELECT DISTINCT day FROM mart ORDER BY day DESC", {})
    files = sorted(mart_dir(marts, FRAUD_REVIEW_MART).glob("date=*/*.parquet"))
    # A day whose queue came out empty has a file but no rows: it is still a reviewed day.
    seen = {d for (d,) in rows} | {date.fromisoformat(f.parent.name.removeprefix("date=")) for f in files}
    return sorted(seen, reverse=True)


def review_queue(
    marts: Path, day: date | None = None, limit: int = 200, exclude: Collection[str] = ()
) -> list[QueuedDonation]:
    """The queue of `day` (every day when None), highest score first, without the donations in `exclude`
    (the decided ones, when the page shows only undecided: the limit then counts undecided ones). The
    donor is the name they gave, else their account, else "anonymous"."""
    rows = _query(
        marts,
        FRAUD_REVIEW_MART,
        "SELECT day, occurred_at, donation_id, channel_id, "
        "coalesce(donor_name, user_id, 'anonymous'), amount_minor, currency, gross_rub_minor, score, "
        "reasons, rules_flag, model_version FROM mart WHERE ($day IS NULL OR day = $day) "
        "AND NOT list_contains($exclude::VARCHAR[], donation_id) "
        "ORDER BY score DESC, occurred_at DESC, donation_id LIMIT $limit",
        {"day": day, "limit": limit, "exclude": sorted(exclude)},
    )
    return [
        QueuedDonation(
            day=r[0], occurred_at=r[1], donation_id=r[2], channel_id=r[3], donor=r[4], amount_minor=r[5],
            currency=r[6], gross_rub_minor=r[7], score=r[8], reasons=tuple(r[9]), rules_flag=r[10],
            model_version=r[11],
        )
        for r in rows
    ]  # fmt: skip


def fraud_model_summary(marts: Path) -> dict[str, Any] | None:
    """The current fraud model's version, kind and time-split metrics (`metrics.json` beside the model),
    or None before a model was trained."""
    folder = mart_dir(marts, FRAUD_MODEL_DIR)
    pointer = folder / FRAUD_MODEL_POINTER
    if not pointer.exists():
        return None
    version = json.loads(pointer.read_text())["version"]
    summary: dict[str, Any] = json.loads((folder / version / FRAUD_MODEL_METRICS).read_text())
    return summary


# The money marts besides `donations` (assets/payment_marts.py): one row per money event, valued in RUB,
# each feeding one revenue source of `streamer_revenue_daily` (docs/contracts.md).
SUBSCRIPTION_PAYMENTS_MART = "subscription_payments"
GIFT_PAYMENTS_MART = "gift_payments"
INTERACTIVE_PAYMENTS_MART = "interactive_payments"
SPONSORSHIP_PAYMENTS_MART = "sponsorship_payments"
