"""Channel recommendations per signed-in viewer, from co-watching in `audience_daily`.

Each daily partition learns from the window of `WINDOW_DAYS` audience partitions ending with its day
(eligible minutes only: the anti-farming verdicts already applied) and writes up to `K` channels per
viewer the viewer did not watch in that window, with a score in [0, 1] and the part of the blend that
chose it. The rules are `services.recommend`'s; the evaluation against the popularity baseline is
`python -m services.recommend_eval` (docs/recommendations.md). Anonymous viewers (session keys) are
left out: a session id never comes back, so there is nobody to show recommendations to. Friends come
from the day's `social_graph` partition (assets/social.py, fetched from the platform's social service):
the share of a viewer's friends who watched a channel in the window, weight `FRIENDS_WEIGHT`; an empty or
missing partition means no friends, the plain blend. Game data comes from the lake's `streams` topic
(each stream event carries the channel's game): a viewer's minutes on a channel-day count for that
channel's game that day, and a channel's game is its last one in the window; the blend weight is
`GAME_WEIGHT`.
"""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.lake import LAKE_STREAMS, STREAMS_TOPIC
from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from assets.stream_analytics import GAME_EVENTS, as_int, audience_daily, connect, topic_files
from services.lake import mart_dir, mart_partition_path
from services.marts import AUDIENCE_MART
from services.recommend import (
    RECOMMENDATIONS_MART,
    WINDOW_DAYS,
    GameData,
    K,
    recommend,
    watch_matrix,
)
from services.social import SOCIAL_GRAPH_MART

AT_MOST_K = "at_most_10_ranked_per_viewer"
SCORES_VALID = "scores_finite_and_ordered"
NOTHING_ALREADY_WATCHED = "no_channel_watched_in_window"

RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),
        pa.field("channel_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)


def window_files(marts: Path, day: date, days: int = WINDOW_DAYS) -> list[str]:
    """The `audience_daily` files of the `days` days ending with `day` (missing days are skipped)."""
    first = (day - timedelta(days=days - 1)).isoformat()
    return sorted(
        str(p)
        for p in mart_dir(marts, AUDIENCE_MART).glob("date=*/part.parquet")
        if first <= p.parent.name.removeprefix("date=") <= day.isoformat()
    )


def window_watching(marts: Path, day: date) -> list[tuple[str, str, int]]:
    """(user, channel, minutes) of signed-in viewers over the window, summed."""
    files = window_files(marts, day)
    if not files:
        return []
    con = connect()
    try:
        rows: list[tuple[str, str, int]] = con.sql(
            "SELECT user_id, channel_id, sum(watch_minutes)::BIGINT FROM read_parquet($files) "
            "WHERE user_id IS NOT NULL GROUP BY ALL ORDER BY ALL",
            params={"files": files},
        ).fetchall()
    finally:
        con.close()
    return rows


# Each channel-day's game: the game of the channel's last event that day carrying one (events repeat the
# current game, so the last says what it ended the day playing).
_CHANNEL_DAY_GAMES = """
SELECT channel_id, occurred_at::DATE AS day, arg_max(game, (occurred_at, event_id)) AS game
FROM (SELECT * FROM raw_streams WHERE list_contains($types, event_type) AND coalesce(game, '') <> ''
      QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) = 1)
GROUP BY ALL
"""


def window_games(lake: Path, marts: Path, day: date) -> GameData | None:
    """Game data over the window, or None when no stream event in it names a game."""
    first = day - timedelta(days=WINDOW_DAYS - 1)
    files = [f for n in range(WINDOW_DAYS) for f in topic_files(lake, STREAMS_TOPIC, first + timedelta(n))]
    audience = window_files(marts, day)
    if not files or not audience:
        return None
    con = connect()
    try:
        raw = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        if "game" not in raw.columns:  # a window of files from before games
            return None
        con.register("raw_streams", raw)
        con.execute(f"CREATE TABLE days AS {_CHANNEL_DAY_GAMES}", {"types": list(GAME_EVENTS)})
        last = con.sql("SELECT channel_id, arg_max(game, day) FROM days GROUP BY ALL").fetchall()
        minutes = con.sql(
            "SELECT a.user_id, d.game, sum(a.watch_minutes)::BIGINT FROM read_parquet($files) AS a "
            "JOIN days AS d USING (channel_id, day) WHERE a.user_id IS NOT NULL GROUP BY ALL ORDER BY ALL",
            params={"files": audience},
        ).fetchall()
    finally:
        con.close()
    if not last:
        return None
    viewer_minutes: dict[str, dict[str, float]] = {}
    for user, game, mins in minutes:
        viewer_minutes.setdefault(user, {})[game] = float(mins)
    return GameData(dict(last), viewer_minutes)


def day_friends(marts: Path, day: date) -> dict[str, list[str]] | None:
    """The day's `social_graph` edges as viewer -> friends, or None when the partition was never written
    (a rebuild of a day from before the social graph: the plain blend, as before)."""
    path = mart_partition_path(marts, SOCIAL_GRAPH_MART, day)
    if not path.exists():
        return None
    friends: dict[str, list[str]] = {}
    table = pq.read_table(path, columns=["user_id", "friend_id"])
    for user, friend in zip(
        table.column("user_id").to_pylist(), table.column("friend_id").to_pylist(), strict=True
    ):
        friends.setdefault(user, []).append(friend)
    return friends


def recommendations_table(
    marts: Path, day: date, lake: Path | None = None, friends: dict[str, list[str]] | None = None
) -> pa.Table:
    matrix = watch_matrix(window_watching(marts, day))
    games = window_games(lake, marts, day) if lake is not None else None
    rows = [
        {
            "day": day,
            "user_id": r.viewer_id,
            "rank": r.rank,
            "channel_id": r.channel_id,
            "score": r.score,
            "source": r.source,
        }
        for r in recommend(matrix, games=games, friends=friends)
    ]
    return pa.Table.from_pylist(rows, schema=RECOMMENDATIONS_SCHEMA)


@dg.asset(
    partitions_def=DAILY,
    deps=[audience_daily, LAKE_STREAMS, dg.AssetKey(SOCIAL_GRAPH_MART)],
    group_name="recommendations",
    kinds={"scikit-learn", "parquet"},
)
def viewer_recommendations(
    context: dg.AssetExecutionContext, lake: LakeResource, marts: MartsResource
) -> dg.MaterializeResult[None]:
    """Up to 10 channels per signed-in viewer they did not watch in the last 28 days: item-item cosine
    co-watching blended with channel popularity, friends' watching when the day's `social_graph` has
    the viewer's friends, and, when the lake's stream events name games, game affinity
    (`services.recommend`). Reads the window's `audience_daily` partitions: materialise (backfill)
    those first."""
    day = partition_day(context.partition_key)
    if not mart_partition_path(marts.path, AUDIENCE_MART, day).exists():
        raise dg.Failure(
            description=f"mart {AUDIENCE_MART} has no partition {day.isoformat()}: materialise it first"
        )
    friends = day_friends(marts.path, day)
    table = recommendations_table(marts.path, day, lake.path, friends)
    path = write_mart_partition(marts.path, RECOMMENDATIONS_MART, day, table)
    sources = table.column("source").to_pylist()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "viewers": len(set(table.column("user_id").to_pylist())),
            "window_partitions": len(window_files(marts.path, day)),
            "by_source": {s: sources.count(s) for s in sorted(set(sources))},
            "social_graph": "no partition" if friends is None else f"{len(friends)} viewers with friends",
        }
    )


@dg.asset_check(asset=viewer_recommendations, name=AT_MOST_K, blocking=True)
def recommendations_at_most_k(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """At most 10 per viewer and day, ranked 1..n without gaps, each channel once."""
    broken = query_mart(
        marts.path,
        RECOMMENDATIONS_MART,
        checked_day(context),
        "SELECT day, user_id, count(*) AS n FROM part GROUP BY ALL "
        f"HAVING n > {K} OR min(rank) <> 1 OR max(rank) <> n OR count(DISTINCT rank) <> n "
        "OR count(DISTINCT channel_id) <> n ORDER BY ALL LIMIT 10",
    )
    return dg.AssetCheckResult(passed=not broken, metadata={"broken_viewers": [str(r) for r in broken]})


@dg.asset_check(asset=viewer_recommendations, name=SCORES_VALID, blocking=True)
def recommendations_scores_valid(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Scores are finite, within [0, 1], and never rise with the rank."""
    ((bad, unordered),) = query_mart(
        marts.path,
        RECOMMENDATIONS_MART,
        checked_day(context),
        "SELECT count(*) FILTER (WHERE NOT isfinite(score) OR score < 0 OR score > 1), "
        "count(*) FILTER (WHERE score > previous) FROM (SELECT score, "
        "lag(score) OVER (PARTITION BY day, user_id ORDER BY rank) AS previous FROM part)",
    )
    return dg.AssetCheckResult(
        passed=bad == 0 and unordered == 0,
        metadata={"invalid_scores": as_int(bad), "rising_scores": as_int(unordered)},
    )


@dg.asset_check(
    asset=viewer_recommendations,
    name=NOTHING_ALREADY_WATCHED,
    blocking=True,
    additional_deps=[audience_daily],
)
def recommendations_nothing_already_watched(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """No viewer is recommended a channel they watched in the partition's window: recommendations are
    for discovery (rule in `services.recommend`)."""
    day = checked_day(context)
    if day is not None:
        days = [day]
    else:
        written = mart_dir(marts.path, RECOMMENDATIONS_MART).glob("date=*/part.parquet")
        days = sorted(partition_day(p.parent.name.removeprefix("date=")) for p in written)
    clashes: list[str] = []
    con = connect()
    try:
        for d in days:
            files = window_files(marts.path, d)
            if not files:
                continue
            found = con.sql(
                "SELECT r.user_id, r.channel_id FROM read_parquet($recs) AS r "
                "JOIN read_parquet($window) AS w USING (user_id, channel_id) LIMIT 10",
                params={
                    "recs": str(mart_partition_path(marts.path, RECOMMENDATIONS_MART, d)),
                    "window": files,
                },
            ).fetchall()
            clashes += [f"{d}: {user} -> {channel}" for user, channel in found]
    finally:
        con.close()
    return dg.AssetCheckResult(passed=not clashes, metadata={"clashes": clashes[:10], "days": len(days)})


RECOMMENDATION_ASSETS = [viewer_recommendations]
RECOMMENDATION_CHECKS = [
    recommendations_at_most_k,
    recommendations_scores_valid,
    recommendations_nothing_already_watched,
]
