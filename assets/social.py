"""The social graph the recommendations blend in: who, among the viewers active in the window, is whose
friend, as the platform's social service says (`services.social`, docs/contracts.md "Social service").

Efir's events carry no friendships: the social service outside Efir holds them. Each daily partition
asks it for the friends of the signed-in viewers of the recommendations' window (the `WINDOW_DAYS`
`audience_daily` partitions ending with the day; the most-watching first, at most
`EFIR_SOCIAL_GRAPH_MAX_USERS`) and keeps the edges whose friend is active in the window too: only those
can say anything about what to recommend, and it bounds the mart. Edges are directed, as the service
answers (`user_id` lists `friend_id`); the service's friendships are mutual, so both directions
normally appear, but the mart does not add missing ones. With no social URL configured the partition is
written empty ("not configured"), so rebuilds without the service still work and the recommendations
fall back to their plain blend.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.mart_files import checked_day, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.recommendations import window_files, window_watching
from assets.resources import MartsResource
from assets.stream_analytics import as_int, audience_daily
from services.lake import mart_partition_path
from services.marts import AUDIENCE_MART
from services.settings import Settings
from services.social import SOCIAL_GRAPH_MART, SocialClient

NO_SELF_OR_DUPLICATE_EDGES = "no_self_or_duplicate_edges"

SOCIAL_GRAPH_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("friend_id", pa.string(), nullable=False),
    ]
)


class SocialResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Where the social service is and how much to ask it. The token is not part of this (Dagster shows
    and stores resource config): `client()` reads `EFIR_CHAT_SOCIAL_TOKEN` from the settings at run time."""

    url: str = ""
    max_users: int = 50_000
    timeout_seconds: float = 5.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def client(self) -> SocialClient:
        return SocialClient(self.url, Settings().chat_social_token, timeout=self.timeout_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SocialResource":
        return cls(
            url=settings.chat_social_url or "",
            max_users=settings.social_graph_max_users,
            timeout_seconds=settings.social_graph_timeout_seconds,
        )


def active_viewers(marts: Path, day: date) -> list[str]:
    """Signed-in viewers of the window, the most minutes first (ties by id): who to ask first when capped."""
    minutes: dict[str, int] = {}
    for user, _channel, mins in window_watching(marts, day):
        minutes[user] = minutes.get(user, 0) + mins
    return sorted(minutes, key=lambda u: (-minutes[u], u))


def edges_table(day: date, friends: dict[str, frozenset[str]], active: set[str]) -> tuple[pa.Table, int]:
    """The (user, friend) rows whose friend is active in the window, sorted; and how many were dropped."""
    rows, dropped = [], 0
    for user in sorted(friends):
        for friend in sorted(friends[user]):
            if friend in active and friend != user:
                rows.append({"day": day, "user_id": user, "friend_id": friend})
            else:
                dropped += 1
    return pa.Table.from_pylist(rows, schema=SOCIAL_GRAPH_SCHEMA), dropped


@dg.asset(
    partitions_def=DAILY,
    deps=[audience_daily],
    group_name="recommendations",
    kinds={"parquet"},
)
def social_graph(
    context: dg.AssetExecutionContext, marts: MartsResource, social: SocialResource
) -> dg.MaterializeResult[None]:
    """Friendships among the signed-in viewers of the recommendations' 28-day window, from the platform's
    social service; empty (and marked "not configured") when no social service is configured. A viewer
    the service fails for is counted in the metadata and left without friends, never a failed run."""
    day = partition_day(context.partition_key)
    if not social.configured:
        table = SOCIAL_GRAPH_SCHEMA.empty_table()
        path = write_mart_partition(marts.path, SOCIAL_GRAPH_MART, day, table)
        context.log.info("no social service configured (EFIR_CHAT_SOCIAL_URL): empty social graph")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "status": "not configured",
                "dagster/row_count": 0,
            }
        )
    if not mart_partition_path(marts.path, AUDIENCE_MART, day).exists():
        raise dg.Failure(
            description=f"mart {AUDIENCE_MART} has no partition {day.isoformat()}: materialise it first"
        )
    active = active_viewers(marts.path, day)
    asked = active[: social.max_users]
    batch = social.client().friends_of_many(asked)
    table, dropped = edges_table(day, batch.friends, set(active))
    users = table.column("user_id").to_pylist()
    path = write_mart_partition(marts.path, SOCIAL_GRAPH_MART, day, table)
    if batch.failed:
        context.log.warning(f"social service failed for {batch.failed} of {batch.asked} viewers")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "status": "fetched",
            "dagster/row_count": table.num_rows,
            "window_partitions": len(window_files(marts.path, day)),
            "viewers_active": len(active),
            "viewers_asked": len(asked),
            "viewers_not_asked_cap": len(active) - len(asked),
            "viewers_with_friends": len(set(users)),
            "viewers_unknown": batch.unknown,
            "viewers_failed": batch.failed,
            "errors": dict(sorted(batch.errors.items())),
            "friends_outside_window": dropped,
        }
    )


@dg.asset_check(asset=social_graph, name=NO_SELF_OR_DUPLICATE_EDGES, blocking=True)
def social_graph_no_self_or_duplicate_edges(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Nobody is their own friend and each (user, friend) edge appears once per day. Edges are directed as
    the service answers; one-way edges are counted (metadata), not refused."""
    ((self_edges, duplicates, one_way),) = query_mart(
        marts.path,
        SOCIAL_GRAPH_MART,
        checked_day(context),
        "SELECT (SELECT count(*) FROM part WHERE user_id = friend_id), "
        "(SELECT count(*) - count(DISTINCT (day, user_id, friend_id)) FROM part), "
        "(SELECT count(*) FROM part AS e WHERE NOT EXISTS (SELECT 1 FROM part AS r "
        "WHERE r.day = e.day AND r.user_id = e.friend_id AND r.friend_id = e.user_id))",
    )
    return dg.AssetCheckResult(
        passed=self_edges == 0 and duplicates == 0,
        metadata={
            "self_edges": as_int(self_edges),
            "duplicate_edges": as_int(duplicates),
            "one_way_edges": as_int(one_way),
        },
    )


SOCIAL_ASSETS = [social_graph]
SOCIAL_CHECKS = [social_graph_no_self_or_duplicate_edges]
