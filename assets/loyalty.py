"""Loyalty marts: points earned per viewer, channel and day; balances, badges, ranks and leaderboard
positions as of each day; and the export the node reads (`MARTS/loyalty_export/balances.parquet`).

Rules live in `services.loyalty`; these assets only gather the inputs: eligible watch minutes from
`audience_daily` (anti-farming already applied), donation money events from `donations` (RUB-valued,
reversals negative), visible chat messages and paid subscription events from the lake.
"""

import os
from collections import defaultdict
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets.donations import PROCESSED, donations
from assets.lake import LAKE_CHAT, LAKE_SUBSCRIPTIONS, SUBSCRIPTIONS_TOPIC
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from assets.stream_analytics import (
    LoyaltyRulesResource,
    as_int,
    audience_daily,
    connect,
    load_chat,
    topic_files,
)
from services.events import SubscriptionCreated, SubscriptionGifted, SubscriptionRenewed
from services.lake import mart_dir, mart_partition_path, tmp_path
from services.loyalty import (
    SUBSCRIPTION_BONUS_POINTS,
    DayActivity,
    donation_points,
    standing,
    watch_points,
)
from services.marts import (
    AUDIENCE_MART,
    DONATIONS_MART,
    LOYALTY_BALANCES_MART,
    LOYALTY_EXPORT,
    LOYALTY_EXPORT_FILE,
    LOYALTY_POINTS_MART,
)

POINTS_ADD_UP = "points_add_up"
WATCH_POINTS_RECONCILE = "watch_points_reconcile_with_audience"
LEADERBOARD_CONSISTENT = "leaderboard_consistent"
EXPORT_MATCHES_BALANCES = "export_matches_balances"

#: Subscription events that pay a month and so earn the subscriber the bonus.
SUBSCRIPTION_BONUS_EVENTS = (
    SubscriptionCreated.event_type,
    SubscriptionRenewed.event_type,
    SubscriptionGifted.event_type,
)

POINTS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("watch_points", pa.int64(), nullable=False),
        pa.field("donations", pa.int64(), nullable=False),
        pa.field("donated_rub_minor", pa.int64(), nullable=False),
        pa.field("donation_points", pa.int64(), nullable=False),
        pa.field("subscription_months", pa.int64(), nullable=False),
        pa.field("bonus_points", pa.int64(), nullable=False),
        pa.field("chat_messages", pa.int64(), nullable=False),
        pa.field("points", pa.int64(), nullable=False),
    ]
)


def _subscription_months(con: duckdb.DuckDBPyConnection, lake: Path, day: date) -> list[tuple[str, str, int]]:
    files = topic_files(lake, SUBSCRIPTIONS_TOPIC, day)
    if not files:
        return []
    con.register("raw_subs", con.read_parquet(files, union_by_name=True, hive_partitioning=False))
    rows: list[tuple[str, str, int]] = con.sql(
        "SELECT channel_id, subscriber_id, count(*) FROM (SELECT * FROM raw_subs "
        "WHERE list_contains($types, event_type) "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1) "
        "GROUP BY ALL",
        params={"types": list(SUBSCRIPTION_BONUS_EVENTS)},
    ).fetchall()
    return rows


def points_rows(lake: Path, marts: Path, day: date) -> list[dict[str, object]]:
    """Every signed-in viewer's earnings on each channel for the day (anonymous viewing earns nothing)."""
    for asset in (AUDIENCE_MART, DONATIONS_MART):
        if not mart_partition_path(marts, asset, day).exists():
            raise dg.Failure(
                description=f"mart {asset} has no partition {day.isoformat()}: materialise it first"
            )
    acc: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    con = connect()
    try:
        audience = con.read_parquet(
            str(mart_partition_path(marts, AUDIENCE_MART, day)), hive_partitioning=False
        )
        for channel, user, minutes in (
            audience.filter("user_id IS NOT NULL").select("channel_id, user_id, watch_minutes").fetchall()
        ):
            acc[(channel, user)]["watch_minutes"] += minutes
        money = con.read_parquet(
            str(mart_partition_path(marts, DONATIONS_MART, day)), hive_partitioning=False
        )
        for channel, user, event_type, gross in (
            money.filter("user_id IS NOT NULL")
            .select("channel_id, user_id, event_type, gross_rub_minor")
            .fetchall()
        ):
            row = acc[(channel, user)]
            # Net donations: a refund or chargeback takes back the donation (and its first-donation badge).
            row["donations"] += 1 if event_type == PROCESSED else -1
            row["donated_rub_minor"] += gross
            row["donation_points"] += donation_points(gross)
        load_chat(con, lake, day)
        for channel, user, messages in con.sql(
            "SELECT channel_id, user_id, count(*) FROM chat WHERE user_id IS NOT NULL GROUP BY ALL"
        ).fetchall():
            acc[(channel, user)]["chat_messages"] += messages
        for channel, user, months in _subscription_months(con, lake, day):
            acc[(channel, user)]["subscription_months"] += months
    finally:
        con.close()
    rows = []
    for (channel, user), got in sorted(acc.items()):
        watched = watch_points(got["watch_minutes"])
        bonus = got["subscription_months"] * SUBSCRIPTION_BONUS_POINTS
        rows.append(
            {
                "day": day,
                "channel_id": channel,
                "user_id": user,
                "watch_minutes": got["watch_minutes"],
                "watch_points": watched,
                "donations": got["donations"],
                "donated_rub_minor": got["donated_rub_minor"],
                "donation_points": got["donation_points"],
                "subscription_months": got["subscription_months"],
                "bonus_points": bonus,
                "chat_messages": got["chat_messages"],
                "points": watched + got["donation_points"] + bonus,
            }
        )
    return rows


@dg.asset(
    partitions_def=DAILY,
    deps=[audience_daily, donations, LAKE_CHAT, LAKE_SUBSCRIPTIONS],
    group_name="loyalty",
    kinds={"duckdb", "parquet"},
)
def loyalty_points_daily(
    context: dg.AssetExecutionContext, lake: LakeResource, marts: MartsResource
) -> dg.MaterializeResult[None]:
    """Per channel, signed-in viewer and day: 1 point per eligible minute watched, 1 per 10 ₽ donated
    (per donation, taken back by its refund or chargeback), a bonus per paid subscription month, and the
    visible chat messages posted (for the chat achievement)."""
    day = partition_day(context.partition_key)
    table = pa.Table.from_pylist(points_rows(lake.path, marts.path, day), schema=POINTS_SCHEMA)
    path = write_mart_partition(marts.path, LOYALTY_POINTS_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "points": sum(table.column("points").to_pylist()),
        }
    )


@dg.asset_check(asset=loyalty_points_daily, name=POINTS_ADD_UP, blocking=True)
def loyalty_points_add_up(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Each row's points are its watch, donation and bonus points, and (viewer, channel, day) is unique."""
    ((broken, rows, distinct),) = query_mart(
        marts.path,
        LOYALTY_POINTS_MART,
        checked_day(context),
        "SELECT count(*) FILTER (WHERE points <> watch_points + donation_points + bonus_points), count(*), "
        "count(DISTINCT (day, channel_id, user_id)) FROM part",
    )
    return dg.AssetCheckResult(
        passed=broken == 0 and rows == distinct,
        metadata={"broken_rows": as_int(broken), "duplicates": as_int(rows) - as_int(distinct)},
    )


@dg.asset_check(
    asset=loyalty_points_daily, name=WATCH_POINTS_RECONCILE, blocking=True, additional_deps=[audience_daily]
)
def loyalty_watch_points_reconcile(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Per channel, the minutes that earned points equal the signed-in viewers' minutes in
    `audience_daily`."""
    day = checked_day(context)
    points = query_mart(
        marts.path,
        LOYALTY_POINTS_MART,
        day,
        "SELECT day, channel_id, sum(watch_minutes)::BIGINT FROM part GROUP BY ALL "
        "HAVING sum(watch_minutes) > 0 ORDER BY ALL",
    )
    audience = query_mart(
        marts.path,
        AUDIENCE_MART,
        day,
        "SELECT day, channel_id, sum(watch_minutes)::BIGINT FROM part WHERE user_id IS NOT NULL GROUP BY ALL "
        "ORDER BY ALL",
    )
    return dg.AssetCheckResult(
        passed=points == audience,
        metadata={"points": [str(r) for r in points[:10]], "audience": [str(r) for r in audience[:10]]},
    )


BALANCES_SCHEMA = pa.schema(
    [
        pa.field("as_of", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("points", pa.int64(), nullable=False),
        pa.field("lifetime_points", pa.int64(), nullable=False),
        pa.field("expired_points", pa.int64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("donations", pa.int64(), nullable=False),
        pa.field("chat_messages", pa.int64(), nullable=False),
        pa.field("last_active", pa.date32(), nullable=False),
        pa.field("rank", pa.string(), nullable=False),
        pa.field("badges", pa.list_(pa.string()), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
    ]
)


def balances_table(marts: Path, as_of: date, expiry_days: int) -> pa.Table:
    """Every viewer's standing per channel from all `loyalty_points_daily` partitions up to `as_of`, with
    their leaderboard position (points, then lifetime points descending, then user id)."""
    files = sorted(
        str(p)
        for p in mart_dir(marts, LOYALTY_POINTS_MART).glob("date=*/part.parquet")
        if p.parent.name.removeprefix("date=") <= as_of.isoformat()
    )
    history: dict[tuple[str, str], list[DayActivity]] = defaultdict(list)
    if files:
        table = pq.read_table(
            files,
            columns=["day", "channel_id", "user_id", "points", "watch_minutes", "donations", "chat_messages"],
        )
        for r in table.to_pylist():
            history[(r["channel_id"], r["user_id"])].append(
                DayActivity(r["day"], r["points"], r["watch_minutes"], r["donations"], r["chat_messages"])
            )
    rows: list[dict[str, object]] = []
    for (channel, user), days in history.items():
        s = standing(days, as_of, expiry_days)
        rows.append(
            {
                "as_of": as_of,
                "channel_id": channel,
                "user_id": user,
                "points": s.balance,
                "lifetime_points": s.lifetime_points,
                "expired_points": s.expired_points,
                "watch_minutes": s.watch_minutes,
                "donations": s.donations,
                "chat_messages": s.chat_messages,
                "last_active": s.last_active,
                "rank": s.rank,
                "badges": list(s.badges),
            }
        )
    rows.sort(key=lambda r: (r["channel_id"], -int(r["points"]), -int(r["lifetime_points"]), r["user_id"]))  # type: ignore[call-overload]
    position: dict[object, int] = defaultdict(int)
    for row in rows:
        position[row["channel_id"]] += 1
        row["position"] = position[row["channel_id"]]
    return pa.Table.from_pylist(rows, schema=BALANCES_SCHEMA)


@dg.asset(partitions_def=DAILY, deps=[loyalty_points_daily], group_name="loyalty", kinds={"parquet"})
def loyalty_balances(
    context: dg.AssetExecutionContext, marts: MartsResource, loyalty_rules: LoyaltyRulesResource
) -> dg.MaterializeResult[None]:
    """Each viewer's balance per channel as of the day (earned minus what expired after more than
    EFIR_LOYALTY_EXPIRY_DAYS without activity), lifetime totals, badges, rank and leaderboard position.
    Reads every earlier points partition: backfill the points first."""
    day = partition_day(context.partition_key)
    table = balances_table(marts.path, day, loyalty_rules.expiry_days)
    path = write_mart_partition(marts.path, LOYALTY_BALANCES_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "points": sum(table.column("points").to_pylist()),
        }
    )


@dg.asset_check(asset=loyalty_balances, name=LEADERBOARD_CONSISTENT, blocking=True)
def loyalty_leaderboard_consistent(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Per channel, positions run 1..n without gaps in points order, and balance = lifetime - expired."""
    ((broken,),) = query_mart(
        marts.path,
        LOYALTY_BALANCES_MART,
        checked_day(context),
        "SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY as_of, channel_id "
        "ORDER BY points DESC, lifetime_points DESC, user_id) AS expected FROM part) "
        "WHERE position <> expected OR points <> lifetime_points - expired_points",
    )
    return dg.AssetCheckResult(passed=broken == 0, metadata={"broken_rows": as_int(broken)})


EXPORT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("points", pa.int64(), nullable=False),
        pa.field("rank", pa.string(), nullable=False),
        pa.field("badges", pa.list_(pa.string()), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("as_of", pa.date32(), nullable=False),
    ]
)


def export_path(marts: Path) -> Path:
    return mart_dir(marts, LOYALTY_EXPORT) / LOYALTY_EXPORT_FILE


def newest_balances_day(marts: Path) -> date | None:
    days = [
        p.parent.name.removeprefix("date=")
        for p in mart_dir(marts, LOYALTY_BALANCES_MART).glob("date=*/part.parquet")
    ]
    return date.fromisoformat(max(days)) if days else None


@dg.asset(partitions_def=DAILY, deps=[loyalty_balances], group_name="loyalty", kinds={"parquet"})
def loyalty_export(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult[None]:
    """The newest balances, whole, for the node (points balance, rank and badges in chat): one file
    replaced atomically. Materialising an older day (a backfill) leaves a newer export in place."""
    day = partition_day(context.partition_key)
    newest = newest_balances_day(marts.path)
    if newest is not None and newest > day:
        return dg.MaterializeResult(metadata={"skipped": f"balances of {newest} are newer than {day}"})
    balances = pq.read_table(mart_partition_path(marts.path, LOYALTY_BALANCES_MART, day))
    table = balances.select(EXPORT_SCHEMA.names).cast(EXPORT_SCHEMA)
    final = export_path(marts.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(final)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, final)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(final)),
            "dagster/row_count": table.num_rows,
            "as_of": str(day),
        }
    )


@dg.asset_check(asset=loyalty_export, name=EXPORT_MATCHES_BALANCES, blocking=True)
def loyalty_export_matches_balances(marts: MartsResource) -> dg.AssetCheckResult:
    """The export holds exactly the newest balances partition's viewers, points, ranks and badges."""
    newest = newest_balances_day(marts.path)
    path = export_path(marts.path)
    if newest is None or not path.exists():
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no export or no balances yet"})
    exported = pq.read_table(path).to_pylist()
    balances = pq.read_table(mart_partition_path(marts.path, LOYALTY_BALANCES_MART, newest)).select(
        EXPORT_SCHEMA.names
    )
    return dg.AssetCheckResult(
        passed=exported == balances.to_pylist(), metadata={"as_of": str(newest), "rows": len(exported)}
    )


LOYALTY_ASSETS = [loyalty_points_daily, loyalty_balances, loyalty_export]
LOYALTY_CHECKS = [
    loyalty_points_add_up,
    loyalty_watch_points_reconcile,
    loyalty_leaderboard_consistent,
    loyalty_export_matches_balances,
]
