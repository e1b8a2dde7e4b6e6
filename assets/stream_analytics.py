"""Audience marts from view heartbeats and chat: viewing sessions (with the anti-farming verdict), each
viewer's watch minutes per channel-day, and per channel-day stream analytics.

One definition of "watching" is shared by loyalty and analytics: a viewer watches a channel in a UTC
minute when one of their eligible sessions fetched new segments in it (a heartbeat with bytes and
segments whose window touches the minute). Concurrent viewers are distinct viewers per minute, so the
day's watch time is exactly the area under the concurrency curve. A viewer is the signed-in user, or the
session itself when anonymous. Minutes are clipped to the partition's day.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from assets.lake import CHAT_TOPIC, LAKE_CHAT, LAKE_STREAMS, LAKE_VIEWS, STREAMS_TOPIC, VIEWS_TOPIC
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from assets.revenue import streamer_revenue_daily
from services.events import (
    ChatMessagePosted,
    StreamEnded,
    StreamErrored,
    StreamGameChanged,
    StreamLadderChanged,
    StreamStarted,
    ViewHeartbeat,
)
from services.lake import mart_dir, mart_partition_path, partition_dir
from services.loyalty import FarmingRules, SessionSummary, exclusion_reason, sessions_per_ip
from services.marts import (
    AUDIENCE_BREAKDOWN_MART,
    AUDIENCE_MART,
    BROADCAST_MART,
    GAME_ANALYTICS_MART,
    REVENUE_MART,
    STREAM_ANALYTICS_MART,
    VIEWING_SESSIONS_MART,
)
from services.money import round_half_up
from services.settings import Settings

VISIBLE = "visible"
SESSION_UNIQUE = "session_unique"
VIEWER_MINUTES_WITHIN_DAY = "viewer_minutes_within_day"
WATCH_TIME_RECONCILES = "watch_time_reconciles_with_audience"
CONCURRENCY_CONSISTENT = "concurrency_consistent"


class LoyaltyRulesResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The configurable parts of the loyalty and anti-farming rules (defaults from `services.settings`)."""

    expiry_days: int
    max_sessions_per_ip: int

    @property
    def farming(self) -> FarmingRules:
        return FarmingRules(max_sessions_per_ip=self.max_sessions_per_ip)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LoyaltyRulesResource":
        return cls(
            expiry_days=settings.loyalty_expiry_days, max_sessions_per_ip=settings.loyalty_max_sessions_per_ip
        )


def as_int(value: object) -> int:
    """A count from a DuckDB row (typed `object` by `query_mart`)."""
    if not isinstance(value, int):
        raise TypeError(f"expected an integer count, got {value!r}")
    return value


def topic_files(lake: Path, topic: str, day: date) -> list[str]:
    return sorted(str(p) for p in partition_dir(lake, topic, day).glob("*.parquet"))


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads and truncates timestamps in UTC, the lake's calendar."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def load_heartbeats(con: duckdb.DuckDBPyConnection, lake: Path, day: date) -> None:
    """Table `beats`: the day's view heartbeats, each event once; `ip_hash` is NULL in files before it."""
    files = topic_files(lake, VIEWS_TOPIC, day)
    columns = (
        "event_id VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT, channel_id VARCHAR, "
        "user_id VARCHAR, "
        "session_id VARCHAR, rendition VARCHAR, bytes BIGINT, segments BIGINT, user_agent_class VARCHAR, "
        "region VARCHAR, ip_hash VARCHAR, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ"
    )
    con.execute(f"CREATE TABLE beats ({columns})")
    if not files:
        return
    raw = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
    ip = "ip_hash" if "ip_hash" in raw.columns else "NULL::VARCHAR"
    con.register("raw", raw)
    con.execute(
        "INSERT INTO beats SELECT event_id, kafka_partition, kafka_offset, channel_id, user_id, session_id, "
        f"rendition, bytes, segments, user_agent_class, region, {ip}, window_start, window_end FROM raw "
        "WHERE event_type = $type "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1",
        {"type": ViewHeartbeat.event_type},
    )


def load_chat(con: duckdb.DuckDBPyConnection, lake: Path, day: date) -> None:
    """Table `chat`: the day's visible chat messages (held or hidden ones are not engagement), once each."""
    con.execute("CREATE TABLE chat (channel_id VARCHAR, user_id VARCHAR, message_id VARCHAR)")
    files = topic_files(lake, CHAT_TOPIC, day)
    if not files:
        return
    raw = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
    con.register("raw_chat", raw)
    # Donation and subscription highlights are chat.message events too (kind != "chat"): the chat posts
    # them, not the viewer, so they are not engagement. Files landed before `kind` existed hold only chat.
    own_words = "AND coalesce(kind, 'chat') = 'chat' " if "kind" in raw.columns else ""
    con.execute(
        "INSERT INTO chat SELECT channel_id, user_id, message_id FROM raw_chat "
        "WHERE event_type = $type AND status = $visible "
        + own_words
        + "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1",
        {"type": ChatMessagePosted.event_type, "visible": VISIBLE},
    )


# Every UTC minute a progressing heartbeat's window touches, within the day.
_MINUTES = """
CREATE TABLE session_minutes AS
SELECT DISTINCT channel_id, session_id, minute FROM (
    SELECT channel_id, session_id,
           unnest(range(date_trunc('minute', window_start)::TIMESTAMP,
                        date_trunc('minute', window_end)::TIMESTAMP + INTERVAL 1 MINUTE,
                        INTERVAL 1 MINUTE)) AS minute
    FROM beats WHERE bytes > 0 AND segments > 0
) WHERE minute::DATE = $day::DATE
"""

_SESSIONS = """
SELECT b.channel_id, b.session_id, min(b.user_id) AS user_id, min(b.user_agent_class) AS user_agent_class,
       min(b.ip_hash) AS ip_hash, min(b.region) AS region, count(*) AS heartbeats,
       count(*) FILTER (WHERE b.bytes > 0 AND b.segments > 0) AS progress_heartbeats,
       sum(b.bytes)::BIGINT AS bytes, sum(b.segments)::BIGINT AS segments,
       coalesce(any_value(m.minutes), 0) AS watch_minutes
FROM beats AS b
LEFT JOIN (SELECT channel_id, session_id, count(*) AS minutes FROM session_minutes GROUP BY ALL) AS m
    USING (channel_id, session_id)
GROUP BY b.channel_id, b.session_id
ORDER BY b.channel_id, b.session_id
"""

SESSIONS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("user_agent_class", pa.string()),
        pa.field("ip_hash", pa.string()),
        pa.field("region", pa.string()),
        pa.field("heartbeats", pa.int64(), nullable=False),
        pa.field("progress_heartbeats", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("segments", pa.int64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("excluded_by", pa.string()),
    ]
)


def judge_sessions(con: duckdb.DuckDBPyConnection, day: date, rules: FarmingRules) -> pa.Table:
    """Table `sessions` (and the returned mart table): each session of the day with its watch minutes and
    the anti-farming rule that excludes it, if any (rules applied in Python, from `services.loyalty`)."""
    con.execute(_MINUTES, {"day": day.isoformat()})
    rows = con.sql(_SESSIONS).to_arrow_table().to_pylist()
    summaries = [
        SessionSummary(
            r["channel_id"], r["session_id"], r["user_agent_class"], r["ip_hash"], r["progress_heartbeats"]
        )
        for r in rows
    ]
    on_ip = sessions_per_ip(summaries)
    table = pa.Table.from_pylist(
        [
            {**row, "day": day, "excluded_by": exclusion_reason(summary, on_ip, rules)}
            for row, summary in zip(rows, summaries, strict=True)
        ],
        schema=SESSIONS_SCHEMA,
    )
    con.register("sessions_arrow", table)
    con.execute("CREATE TABLE sessions AS SELECT * FROM sessions_arrow")
    # Eligible viewer-minutes: distinct per viewer, so two tabs of one user count once.
    con.execute(
        "CREATE TABLE viewer_minutes AS SELECT DISTINCT m.channel_id, "
        "coalesce(s.user_id, 'session:' || s.session_id) AS viewer_key, s.user_id, m.minute "
        "FROM session_minutes AS m JOIN sessions AS s USING (channel_id, session_id) "
        "WHERE s.excluded_by IS NULL"
    )
    return table


@dg.asset(partitions_def=DAILY, deps=[LAKE_VIEWS], group_name="audience", kinds={"duckdb", "parquet"})
def viewing_sessions(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Each viewer session of the day per channel: heartbeats, bytes, segments, minutes with playback, and
    the anti-farming rule (no playback progress, bot/headless agent, too many sessions per IP) that makes
    it earn nothing and count as no viewer, if any."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        load_heartbeats(con, lake.path, day)
        table = judge_sessions(con, day, loyalty_rules.farming)
    finally:
        con.close()
    path = write_mart_partition(marts.path, VIEWING_SESSIONS_MART, day, table)
    excluded = [r for r in table.column("excluded_by").to_pylist() if r is not None]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "excluded_sessions": len(excluded),
            "excluded_by_rule": {rule: excluded.count(rule) for rule in sorted(set(excluded))},
        }
    )


@dg.asset_check(asset=viewing_sessions, name=SESSION_UNIQUE, blocking=True)
def viewing_sessions_unique(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A session appears once per channel and day (heartbeats of all renditions are folded into it)."""
    ((rows, distinct),) = query_mart(
        marts.path,
        VIEWING_SESSIONS_MART,
        checked_day(context),
        "SELECT count(*), count(DISTINCT (day, channel_id, session_id)) FROM part",
    )
    return dg.AssetCheckResult(
        passed=rows == distinct,
        metadata={"rows": as_int(rows), "duplicates": as_int(rows) - as_int(distinct)},
    )


AUDIENCE_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("viewer_key", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("sessions", pa.int64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("is_new", pa.bool_(), nullable=False),
    ]
)


def earlier_partitions(marts: Path, asset: str, day: date) -> list[str]:
    """The files of every partition of `asset` before `day` (hive folder names sort as dates)."""
    return sorted(
        str(p)
        for p in mart_dir(marts, asset).glob("date=*/part.parquet")
        if p.parent.name.removeprefix("date=") < day.isoformat()
    )


def audience_table(con: duckdb.DuckDBPyConnection, marts: Path, day: date) -> pa.Table:
    """Per channel and viewer: eligible sessions, distinct minutes watched, and whether this channel saw the
    viewer on any earlier day (the earlier `audience_daily` partitions)."""
    earlier = earlier_partitions(marts, AUDIENCE_MART, day)
    if earlier:
        con.register("seen_raw", con.read_parquet(earlier, hive_partitioning=False))
        con.execute("CREATE TABLE seen AS SELECT DISTINCT channel_id, viewer_key FROM seen_raw")
    else:
        con.execute("CREATE TABLE seen (channel_id VARCHAR, viewer_key VARCHAR)")
    return (
        con.sql(
            "SELECT $day::DATE AS day, v.channel_id, v.viewer_key, any_value(v.user_id) AS user_id, "
            "any_value(s.sessions) AS sessions, count(*) AS watch_minutes, "
            "bool_and(seen.viewer_key IS NULL) AS is_new "
            "FROM viewer_minutes AS v "
            "JOIN (SELECT channel_id, coalesce(user_id, 'session:' || session_id) AS viewer_key, "
            "      count(*) AS sessions FROM sessions WHERE excluded_by IS NULL AND watch_minutes > 0 "
            "      GROUP BY ALL) AS s USING (channel_id, viewer_key) "
            "LEFT JOIN seen USING (channel_id, viewer_key) "
            "GROUP BY v.channel_id, v.viewer_key ORDER BY v.channel_id, v.viewer_key",
            params={"day": day.isoformat()},
        )
        .to_arrow_table()
        .cast(AUDIENCE_SCHEMA)
    )


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_VIEWS, viewing_sessions],
    group_name="audience",
    kinds={"duckdb", "parquet"},
)
def audience_daily(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Per channel and viewer (signed-in user, or the session when anonymous): minutes watched in eligible
    sessions (each minute once), and whether the viewer is new to the channel. Backfill days in order:
    "new" looks at the partitions before this one."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        load_heartbeats(con, lake.path, day)
        judge_sessions(con, day, loyalty_rules.farming)
        table = audience_table(con, marts.path, day)
    finally:
        con.close()
    path = write_mart_partition(marts.path, AUDIENCE_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "watch_minutes": sum(table.column("watch_minutes").to_pylist()),
        }
    )


@dg.asset_check(asset=audience_daily, name=VIEWER_MINUTES_WITHIN_DAY, blocking=True)
def audience_minutes_within_day(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """No viewer watches a channel more than 1,440 minutes a day or less than one (minutes are distinct)."""
    broken = query_mart(
        marts.path,
        AUDIENCE_MART,
        checked_day(context),
        "SELECT channel_id, viewer_key, watch_minutes FROM part WHERE watch_minutes NOT BETWEEN 1 AND 1440",
    )
    return dg.AssetCheckResult(
        passed=not broken,
        metadata={"broken_rows": len(broken), "first_broken": [str(r) for r in broken[:10]]},
    )


ANALYTICS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("peak_concurrent_viewers", pa.int64(), nullable=False),
        pa.field("peak_minute", pa.timestamp("us", tz="UTC")),
        pa.field("minutes_with_viewers", pa.int64(), nullable=False),
        pa.field("avg_concurrent_viewers", pa.float64()),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("unique_viewers", pa.int64(), nullable=False),
        pa.field("signed_in_viewers", pa.int64(), nullable=False),
        pa.field("new_viewers", pa.int64(), nullable=False),
        pa.field("returning_viewers", pa.int64(), nullable=False),
        pa.field("excluded_sessions", pa.int64(), nullable=False),
        pa.field("chat_messages", pa.int64(), nullable=False),
        pa.field("chatters", pa.int64(), nullable=False),
        pa.field("messages_per_viewer_hour", pa.float64()),
        pa.field("revenue_gross_rub_minor", pa.int64(), nullable=False),
        pa.field("revenue_per_viewer_hour_minor", pa.int64()),
    ]
)


@dataclass(frozen=True)
class ChannelDay:
    """The raw counts of one channel-day, before the ratios."""

    channel_id: str
    peak: int
    peak_minute: object
    minutes_with_viewers: int
    watch_minutes: int
    unique_viewers: int
    signed_in: int
    new: int
    excluded: int
    chat_messages: int
    chatters: int
    revenue: int


def per_viewer_hour(amount: int, watch_minutes: int) -> Decimal | None:
    """amount per viewer-hour = amount * 60 / watch minutes (None without watch time)."""
    if watch_minutes == 0:
        return None
    return Decimal(amount) * 60 / Decimal(watch_minutes)


def analytics_row(day: date, c: ChannelDay) -> dict[str, object]:
    """Ratios of a channel-day: average concurrency over minutes with viewers, chat messages and gross
    revenue (kopecks, rounded half-up once) per viewer-hour."""
    messages = per_viewer_hour(c.chat_messages, c.watch_minutes)
    revenue = per_viewer_hour(c.revenue, c.watch_minutes)
    return {
        "day": day,
        "channel_id": c.channel_id,
        "peak_concurrent_viewers": c.peak,
        "peak_minute": c.peak_minute,
        "minutes_with_viewers": c.minutes_with_viewers,
        "avg_concurrent_viewers": c.watch_minutes / c.minutes_with_viewers
        if c.minutes_with_viewers
        else None,
        "watch_minutes": c.watch_minutes,
        "unique_viewers": c.unique_viewers,
        "signed_in_viewers": c.signed_in,
        "new_viewers": c.new,
        "returning_viewers": c.unique_viewers - c.new,
        "excluded_sessions": c.excluded,
        "chat_messages": c.chat_messages,
        "chatters": c.chatters,
        "messages_per_viewer_hour": float(messages) if messages is not None else None,
        "revenue_gross_rub_minor": c.revenue,
        "revenue_per_viewer_hour_minor": round_half_up(revenue) if revenue is not None else None,
    }


_CHANNEL_DAYS = """
WITH conc AS (SELECT channel_id, minute, count(*) AS viewers FROM viewer_minutes GROUP BY ALL),
peak AS (SELECT channel_id, max(viewers) AS peak, arg_min(minute, (-viewers, minute)) AS peak_minute,
                count(*) AS minutes_with_viewers, sum(viewers)::BIGINT AS watch_minutes
         FROM conc GROUP BY channel_id),
aud AS (SELECT channel_id, count(*) AS unique_viewers, count(user_id) AS signed_in,
               count(*) FILTER (WHERE is_new) AS new FROM audience GROUP BY channel_id),
excl AS (SELECT channel_id, count(*) AS excluded FROM sessions WHERE excluded_by IS NOT NULL GROUP BY ALL),
talk AS (SELECT channel_id, count(*) AS chat_messages, count(DISTINCT user_id) AS chatters
         FROM chat GROUP BY ALL),
money AS (SELECT channel_id, sum(gross_rub_minor)::BIGINT AS revenue FROM revenue GROUP BY ALL),
channels AS (SELECT channel_id FROM sessions UNION SELECT channel_id FROM talk
             UNION SELECT channel_id FROM money)
SELECT c.channel_id, coalesce(peak.peak, 0), peak.peak_minute AT TIME ZONE 'UTC',
       coalesce(peak.minutes_with_viewers, 0), coalesce(peak.watch_minutes, 0),
       coalesce(aud.unique_viewers, 0), coalesce(aud.signed_in, 0), coalesce(aud.new, 0),
       coalesce(excl.excluded, 0), coalesce(talk.chat_messages, 0), coalesce(talk.chatters, 0),
       coalesce(money.revenue, 0)
FROM channels AS c LEFT JOIN peak USING (channel_id) LEFT JOIN aud USING (channel_id)
LEFT JOIN excl USING (channel_id) LEFT JOIN talk USING (channel_id) LEFT JOIN money USING (channel_id)
ORDER BY c.channel_id
"""


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_VIEWS, LAKE_CHAT, viewing_sessions, audience_daily, streamer_revenue_daily],
    group_name="audience",
    kinds={"duckdb", "parquet"},
)
def stream_analytics_daily(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Per channel-day: peak and average concurrent viewers (distinct eligible viewers per minute), watch
    time, unique, new and returning viewers, excluded sessions, visible chat messages and chatters,
    messages and gross revenue (from `streamer_revenue_daily`, all sources) per viewer-hour."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        load_heartbeats(con, lake.path, day)
        judge_sessions(con, day, loyalty_rules.farming)
        load_chat(con, lake.path, day)
        audience = mart_partition_path(marts.path, AUDIENCE_MART, day)
        revenue = mart_partition_path(marts.path, REVENUE_MART, day)
        for name, path in (("audience", audience), ("revenue", revenue)):
            if not path.exists():
                raise dg.Failure(
                    description=f"{path} is missing: materialise {path.parent.parent.name} first"
                )
            con.register(name, con.read_parquet(str(path), hive_partitioning=False))
        counts = [ChannelDay(*row) for row in con.sql(_CHANNEL_DAYS).fetchall()]
    finally:
        con.close()
    table = pa.Table.from_pylist([analytics_row(day, c) for c in counts], schema=ANALYTICS_SCHEMA)
    path = write_mart_partition(marts.path, STREAM_ANALYTICS_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "watch_minutes": sum(table.column("watch_minutes").to_pylist()),
        }
    )


@dg.asset_check(
    asset=stream_analytics_daily, name=WATCH_TIME_RECONCILES, blocking=True, additional_deps=[audience_daily]
)
def analytics_watch_time_reconciles(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Per channel, the area under the concurrency curve equals the viewers' watch minutes in
    `audience_daily`, and the viewer counts agree."""
    day = checked_day(context)
    analytics = query_mart(
        marts.path,
        STREAM_ANALYTICS_MART,
        day,
        "SELECT day, channel_id, watch_minutes, unique_viewers FROM part WHERE watch_minutes > 0 "
        "ORDER BY ALL",
    )
    audience = query_mart(
        marts.path,
        AUDIENCE_MART,
        day,
        "SELECT day, channel_id, sum(watch_minutes)::BIGINT, count(*) FROM part GROUP BY ALL ORDER BY ALL",
    )
    return dg.AssetCheckResult(
        passed=analytics == audience,
        metadata={"analytics": [str(r) for r in analytics[:10]], "audience": [str(r) for r in audience[:10]]},
    )


@dg.asset_check(asset=stream_analytics_daily, name=CONCURRENCY_CONSISTENT, blocking=True)
def analytics_concurrency_consistent(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Average <= peak <= unique viewers, new + returning = unique, and watch time fits the minutes."""
    broken = query_mart(
        marts.path,
        STREAM_ANALYTICS_MART,
        checked_day(context),
        "SELECT day, channel_id FROM part WHERE peak_concurrent_viewers > unique_viewers "
        "OR coalesce(avg_concurrent_viewers, 0) > peak_concurrent_viewers "
        "OR new_viewers + returning_viewers <> unique_viewers "
        "OR watch_minutes > peak_concurrent_viewers * minutes_with_viewers",
    )
    return dg.AssetCheckResult(passed=not broken, metadata={"broken": [str(r) for r in broken[:10]]})


BREAKDOWN_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("viewers", pa.int64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
    ]
)
UNKNOWN = "unknown"

_BREAKDOWN = """
SELECT $day::DATE AS day, m.channel_id, coalesce(s.user_agent_class, $unknown) AS platform,
       coalesce(s.region, $unknown) AS region,
       count(DISTINCT coalesce(s.user_id, 'session:' || s.session_id)) AS viewers,
       count(DISTINCT (coalesce(s.user_id, 'session:' || s.session_id), m.minute)) AS watch_minutes
FROM session_minutes AS m JOIN sessions AS s USING (channel_id, session_id)
WHERE s.excluded_by IS NULL
GROUP BY ALL ORDER BY m.channel_id, platform, region
"""


@dg.asset(partitions_def=DAILY, deps=[LAKE_VIEWS, viewing_sessions], group_name="audience", kinds={"duckdb"})
def audience_breakdown_daily(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Per channel-day, eligible viewers and their watch minutes by platform (the user agent class:
    browser, mobile, tv, player, other) and region. A viewer on two platforms counts in both, so the rows
    of a channel can add up to more than its unique viewers."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        load_heartbeats(con, lake.path, day)
        judge_sessions(con, day, loyalty_rules.farming)
        table = (
            con.sql(_BREAKDOWN, params={"day": day.isoformat(), "unknown": UNKNOWN})
            .to_arrow_table()
            .cast(BREAKDOWN_SCHEMA)
        )
    finally:
        con.close()
    path = write_mart_partition(marts.path, AUDIENCE_BREAKDOWN_MART, day, table)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "dagster/row_count": table.num_rows}
    )


BROADCAST_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("broadcast_id", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("ended_at", pa.timestamp("us", tz="UTC")),
        pa.field("live_minutes", pa.int64(), nullable=False),
        pa.field("peak_concurrent_viewers", pa.int64(), nullable=False),
        pa.field("avg_concurrent_viewers", pa.float64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("unique_viewers", pa.int64(), nullable=False),
        pa.field("previous_broadcast_id", pa.string()),
        pa.field("previous_avg_concurrent_viewers", pa.float64()),
        pa.field("previous_peak_concurrent_viewers", pa.int64()),
        # The game (slug) of most of the broadcast's live minutes that day; "" when none was set.
        pa.field("game", pa.string(), nullable=False),
    ]
)
STARTED, ENDS = StreamStarted.event_type, (StreamEnded.event_type, StreamErrored.event_type)
#: Events whose `game` says what the channel was playing at that moment (each carries the current slug).
GAME_EVENTS = (STARTED, *ENDS, StreamLadderChanged.event_type, StreamGameChanged.event_type)

# Each broadcast's live minutes within the day: from its start (or midnight) to its end, or, while it has
# not ended, to the channel's last event of the day (so today's partition never counts future minutes).
_BROADCAST_MINUTES = """
CREATE TABLE broadcast_minutes AS
WITH b AS (
    SELECT broadcast_id, any_value(channel_id) AS channel_id,
           min(occurred_at) FILTER (WHERE event_type = $started) AS started_at,
           max(occurred_at) FILTER (WHERE list_contains($ends, event_type)) AS ended_at
    FROM streams GROUP BY broadcast_id
), last_seen AS (
    SELECT channel_id, max(t) AS last_at FROM (
        SELECT channel_id, window_end AS t FROM beats UNION ALL SELECT channel_id, occurred_at FROM streams
    ) GROUP BY channel_id
), w AS (
    SELECT b.*, greatest(coalesce(b.started_at, $day::TIMESTAMPTZ), $day::TIMESTAMPTZ) AS win_from,
           least(coalesce(b.ended_at, greatest(l.last_at, b.started_at)),
                 $day::TIMESTAMPTZ + INTERVAL 1 DAY - INTERVAL 1 MICROSECOND) AS win_to
    FROM b LEFT JOIN last_seen AS l USING (channel_id)
)
SELECT broadcast_id, channel_id, started_at, ended_at,
       unnest(range(date_trunc('minute', win_from)::TIMESTAMP,
                    date_trunc('minute', win_to)::TIMESTAMP + INTERVAL 1 MINUTE, INTERVAL 1 MINUTE)) AS minute
FROM w WHERE win_from <= win_to
"""

_BROADCASTS = """
WITH conc AS (SELECT channel_id, minute, count(*) AS viewers FROM viewer_minutes GROUP BY ALL),
uv AS (SELECT m.broadcast_id, count(DISTINCT v.viewer_key) AS unique_viewers
       FROM broadcast_minutes AS m JOIN viewer_minutes AS v USING (channel_id, minute) GROUP BY ALL)
SELECT $day::DATE AS day, m.channel_id, m.broadcast_id, any_value(m.started_at) AS started_at,
       any_value(m.ended_at) AS ended_at, count(*) AS live_minutes,
       coalesce(max(c.viewers), 0) AS peak_concurrent_viewers,
       coalesce(sum(c.viewers), 0) / count(*) AS avg_concurrent_viewers,
       coalesce(sum(c.viewers), 0)::BIGINT AS watch_minutes,
       coalesce(any_value(uv.unique_viewers), 0) AS unique_viewers
FROM broadcast_minutes AS m LEFT JOIN conc AS c USING (channel_id, minute) LEFT JOIN uv USING (broadcast_id)
GROUP BY m.channel_id, m.broadcast_id
ORDER BY m.channel_id, started_at, m.broadcast_id
"""


def load_streams(con: duckdb.DuckDBPyConnection, lake: Path, day: date) -> None:
    """Table `streams`: lifecycle events of the day and the day before (a broadcast live at midnight
    started then), each event once."""
    con.execute(
        "CREATE TABLE streams (event_id VARCHAR, event_type VARCHAR, occurred_at TIMESTAMPTZ, "
        "channel_id VARCHAR, broadcast_id VARCHAR, game VARCHAR)"
    )
    files = [
        *topic_files(lake, STREAMS_TOPIC, day - timedelta(days=1)),
        *topic_files(lake, STREAMS_TOPIC, day),
    ]
    if not files:
        return
    raw = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
    game = "coalesce(game, '')" if "game" in raw.columns else "''"  # files from before games: none
    con.register("raw_streams", raw)
    con.execute(
        f"INSERT INTO streams SELECT event_id, event_type, occurred_at, channel_id, broadcast_id, {game} "
        "FROM raw_streams "
        "WHERE list_contains($types, event_type) "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1",
        {"types": list(GAME_EVENTS)},
    )


# The game of each live minute of each broadcast: the game of its latest event in or before that minute
# (several in one minute: the last), else of its first event (a minute before any event of the loaded
# days). Then one game per channel-minute: the broadcast that started last wins an overlap (a reconnect
# after the grace period starts a new broadcast in the old one's last minute).
_MINUTE_GAMES = """
CREATE TABLE broadcast_minute_games AS
WITH marks AS (
    SELECT broadcast_id, date_trunc('minute', occurred_at)::TIMESTAMP AS mark,
           arg_max(game, (occurred_at, event_id)) AS game
    FROM streams GROUP BY ALL
), first_game AS (
    SELECT broadcast_id, arg_min(game, (mark, game)) AS game FROM marks GROUP BY ALL
)
SELECT m.broadcast_id, m.channel_id, m.started_at, m.minute, coalesce(g.game, f.game, '') AS game
FROM broadcast_minutes AS m
ASOF LEFT JOIN marks AS g ON m.broadcast_id = g.broadcast_id AND m.minute >= g.mark
LEFT JOIN first_game AS f ON m.broadcast_id = f.broadcast_id;

CREATE TABLE channel_minute_games AS
SELECT channel_id, minute, broadcast_id, game FROM broadcast_minute_games
QUALIFY row_number() OVER (
    PARTITION BY channel_id, minute ORDER BY started_at DESC NULLS LAST, broadcast_id DESC
) = 1;
"""

_BROADCAST_GAMES = """
SELECT broadcast_id, arg_max(game, (minutes, game)) AS game
FROM (SELECT broadcast_id, game, count(*) AS minutes FROM broadcast_minute_games GROUP BY ALL)
GROUP BY broadcast_id
"""


def _order(row: dict[str, object]) -> tuple[str, str]:
    return (str(row["started_at"]), str(row["broadcast_id"]))


def with_previous(rows: list[dict[str, object]], earlier: list[dict[str, object]]) -> list[dict[str, object]]:
    """Stream over stream: each broadcast next to the channel's broadcast that started before it (its
    latest day's figures), found in this day or the earlier partitions."""
    out = []
    for row in rows:
        before = [
            r for r in (*earlier, *rows) if r["channel_id"] == row["channel_id"] and _order(r) < _order(row)
        ]
        prev = max(before, key=lambda r: (*_order(r), str(r["day"])), default={})
        out.append(
            {
                **row,
                "previous_broadcast_id": prev.get("broadcast_id"),
                "previous_avg_concurrent_viewers": prev.get("avg_concurrent_viewers"),
                "previous_peak_concurrent_viewers": prev.get("peak_concurrent_viewers"),
            }
        )
    return out


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_VIEWS, LAKE_STREAMS, viewing_sessions],
    group_name="audience",
    kinds={"duckdb", "parquet"},
)
def broadcast_analytics_daily(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Per broadcast and day: live minutes, peak and average concurrent viewers over the live minutes
    (Twitch's average), watch minutes and unique viewers, next to the channel's previous broadcast, and
    the game (slug) of most of its live minutes."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        load_heartbeats(con, lake.path, day)
        judge_sessions(con, day, loyalty_rules.farming)
        load_streams(con, lake.path, day)
        params = {"day": day.isoformat(), "started": STARTED, "ends": list(ENDS)}
        con.execute(_BROADCAST_MINUTES, params)
        con.execute(
            "DELETE FROM broadcast_minutes WHERE minute::DATE <> $day::DATE", {"day": day.isoformat()}
        )
        rows = con.sql(_BROADCASTS, params={"day": day.isoformat()}).to_arrow_table().to_pylist()
        con.execute(_MINUTE_GAMES)
        games = dict(con.sql(_BROADCAST_GAMES).fetchall())
        rows = [{**r, "game": games.get(r["broadcast_id"], "")} for r in rows]
        earlier_files = earlier_partitions(marts.path, BROADCAST_MART, day)
        earlier = (
            con.read_parquet(earlier_files, hive_partitioning=False).to_arrow_table().to_pylist()
            if earlier_files
            else []
        )
    finally:
        con.close()
    table = pa.Table.from_pylist(with_previous(rows, earlier), schema=BROADCAST_SCHEMA)
    path = write_mart_partition(marts.path, BROADCAST_MART, day, table)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), "dagster/row_count": table.num_rows}
    )


GAME_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("game", pa.string(), nullable=False),
        pa.field("channels", pa.int64(), nullable=False),
        pa.field("broadcasts", pa.int64(), nullable=False),
        pa.field("live_minutes", pa.int64(), nullable=False),
        pa.field("viewers", pa.int64(), nullable=False),
        pa.field("watch_minutes", pa.int64(), nullable=False),
        pa.field("peak_concurrent_viewers", pa.int64(), nullable=False),
    ]
)

# Viewer-minutes take the game of their channel-minute ("" when the channel had no broadcast then, or no
# game); watch minutes are per channel, as in `audience_daily`, so they add up to its total over games.
_GAMES = """
WITH watched AS (
    SELECT v.channel_id, v.minute, v.viewer_key, coalesce(g.game, '') AS game
    FROM viewer_minutes AS v LEFT JOIN channel_minute_games AS g USING (channel_id, minute)
), chans AS (
    SELECT game, count(DISTINCT channel_id) AS channels FROM (
        SELECT game, channel_id FROM channel_minute_games UNION SELECT game, channel_id FROM watched
    ) GROUP BY game
), live AS (
    SELECT game, count(DISTINCT broadcast_id) AS broadcasts, count(*) AS live_minutes
    FROM channel_minute_games GROUP BY game
), audience AS (
    SELECT game, count(DISTINCT viewer_key) AS viewers, count(*) AS watch_minutes FROM watched GROUP BY game
), peak AS (
    SELECT game, max(viewers) AS peak FROM (
        SELECT game, minute, count(DISTINCT viewer_key) AS viewers FROM watched GROUP BY ALL
    ) GROUP BY game
)
SELECT $day::DATE AS day, game, chans.channels, coalesce(live.broadcasts, 0) AS broadcasts,
       coalesce(live.live_minutes, 0) AS live_minutes, coalesce(a.viewers, 0) AS viewers,
       coalesce(a.watch_minutes, 0) AS watch_minutes, coalesce(peak.peak, 0) AS peak_concurrent_viewers
FROM chans LEFT JOIN live USING (game) LEFT JOIN audience AS a USING (game) LEFT JOIN peak USING (game)
ORDER BY watch_minutes DESC, game
"""


def game_table(con: duckdb.DuckDBPyConnection, lake: Path, day: date, rules: FarmingRules) -> pa.Table:
    """The by-game rows of a day (the tables of `broadcast_analytics_daily`, then `_GAMES`)."""
    load_heartbeats(con, lake, day)
    judge_sessions(con, day, rules)
    load_streams(con, lake, day)
    params = {"day": day.isoformat(), "started": STARTED, "ends": list(ENDS)}
    con.execute(_BROADCAST_MINUTES, params)
    con.execute("DELETE FROM broadcast_minutes WHERE minute::DATE <> $day::DATE", {"day": day.isoformat()})
    con.execute(_MINUTE_GAMES)
    return con.sql(_GAMES, params={"day": day.isoformat()}).to_arrow_table().cast(GAME_SCHEMA)


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_VIEWS, LAKE_STREAMS, viewing_sessions],
    group_name="audience",
    kinds={"duckdb", "parquet"},
)
def game_analytics_daily(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    marts: MartsResource,
    loyalty_rules: LoyaltyRulesResource,
) -> dg.MaterializeResult[None]:
    """Per game and day: channels and broadcasts that played it, their live minutes, eligible viewers,
    watch minutes and peak concurrent viewers. Each live minute belongs to the game the channel was
    playing then (`stream.started` and `stream.game_changed` carry it), so a broadcast that switched
    games is split between them; game "" holds minutes without a game (none set, or older nodes)."""
    day = partition_day(context.partition_key)
    con = connect()
    try:
        table = game_table(con, lake.path, day, loyalty_rules.farming)
    finally:
        con.close()
    path = write_mart_partition(marts.path, GAME_ANALYTICS_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "games": len([g for g in table.column("game").to_pylist() if g]),
        }
    )


GAME_WATCH_TIME_RECONCILES = "game_watch_time_reconciles_with_audience"


@dg.asset_check(
    asset=game_analytics_daily,
    name=GAME_WATCH_TIME_RECONCILES,
    blocking=True,
    additional_deps=[audience_daily],
)
def game_watch_time_reconciles(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """The games' watch minutes add up to the day's `audience_daily` total: every eligible viewer-minute
    is in exactly one game (or in "")."""
    day = checked_day(context)
    games = query_mart(
        marts.path,
        GAME_ANALYTICS_MART,
        day,
        "SELECT day, sum(watch_minutes)::BIGINT AS m FROM part GROUP BY ALL HAVING m > 0",
    )
    audience = query_mart(
        marts.path, AUDIENCE_MART, day, "SELECT day, sum(watch_minutes)::BIGINT FROM part GROUP BY ALL"
    )
    return dg.AssetCheckResult(
        passed=sorted(games) == sorted(audience),
        metadata={
            "games": [str(r) for r in sorted(games)[:10]],
            "audience": [str(r) for r in sorted(audience)[:10]],
        },
    )


BREAKDOWN_COVERS_AUDIENCE = "breakdown_covers_audience"
BROADCAST_FIGURES_CONSISTENT = "broadcast_figures_consistent"


@dg.asset_check(
    asset=audience_breakdown_daily,
    name=BREAKDOWN_COVERS_AUDIENCE,
    blocking=True,
    additional_deps=[audience_daily],
)
def breakdown_covers_audience(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Every channel with viewers has breakdown rows whose viewers and minutes cover the audience (a
    viewer on two platforms or regions counts in each, so the breakdown may hold more, never less)."""
    day = checked_day(context)
    audience = {
        (d, c): (as_int(v), as_int(m))
        for d, c, v, m in query_mart(
            marts.path,
            AUDIENCE_MART,
            day,
            "SELECT day, channel_id, count(*), sum(watch_minutes) FROM part GROUP BY ALL",
        )
    }
    breakdown = {
        (d, c): (as_int(v), as_int(m))
        for d, c, v, m in query_mart(
            marts.path,
            AUDIENCE_BREAKDOWN_MART,
            day,
            "SELECT day, channel_id, sum(viewers), sum(watch_minutes) FROM part GROUP BY ALL",
        )
    }
    short = [
        f"{key}: {breakdown.get(key)} < {need}"
        for key, need in audience.items()
        if not (breakdown.get(key, (0, 0))[0] >= need[0] and breakdown.get(key, (0, 0))[1] >= need[1])
    ]
    return dg.AssetCheckResult(passed=not short, metadata={"short": short[:10]})


@dg.asset_check(asset=broadcast_analytics_daily, name=BROADCAST_FIGURES_CONSISTENT, blocking=True)
def broadcast_figures_consistent(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A broadcast-day has 1 to 1,440 live minutes, watch minutes = average x live minutes, and peak is
    at most the unique viewers."""
    broken = query_mart(
        marts.path,
        BROADCAST_MART,
        checked_day(context),
        "SELECT day, broadcast_id FROM part WHERE live_minutes NOT BETWEEN 1 AND 1440 "
        "OR abs(avg_concurrent_viewers * live_minutes - watch_minutes) > 1e-6 "
        "OR peak_concurrent_viewers > unique_viewers",
    )
    return dg.AssetCheckResult(passed=not broken, metadata={"broken": [str(r) for r in broken[:10]]})


STREAM_ANALYTICS_ASSETS = [
    viewing_sessions,
    audience_daily,
    stream_analytics_daily,
    audience_breakdown_daily,
    broadcast_analytics_daily,
    game_analytics_daily,
]
STREAM_ANALYTICS_CHECKS = [
    viewing_sessions_unique,
    audience_minutes_within_day,
    analytics_watch_time_reconciles,
    analytics_concurrency_consistent,
    breakdown_covers_audience,
    broadcast_figures_consistent,
    game_watch_time_reconciles,
]
