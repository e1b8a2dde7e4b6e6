"""Viewing sessions, audience, stream analytics and loyalty marts materialised over a small hand-built
lake, compared with figures computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.donations import donations_event_id_unique
from assets.loyalty import (
    LOYALTY_ASSETS,
    LOYALTY_CHECKS,
    POINTS_ADD_UP,
    WATCH_POINTS_RECONCILE,
    balances_table,
    export_path,
    loyalty_balances,
)
from assets.resources import LakeResource, MartsResource
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from assets.stream_analytics import (
    STREAM_ANALYTICS_ASSETS,
    STREAM_ANALYTICS_CHECKS,
    WATCH_TIME_RECONCILES,
    LoyaltyRulesResource,
)
from services.lake import mart_partition_path
from services.loyalty import IP_SESSIONS, NO_PLAYBACK_PROGRESS, USER_AGENT
from services.marts import (
    AUDIENCE_BREAKDOWN_MART,
    AUDIENCE_MART,
    BROADCAST_MART,
    LOYALTY_BALANCES_MART,
    LOYALTY_POINTS_MART,
    STREAM_ANALYTICS_MART,
    VIEWING_SESSIONS_MART,
)
from services.money import Currency
from tests.fixture_lake import land, processed, reversal
from tests.fixture_views import beat, by, chat, stream, subscribed

EVERYTHING = [
    *SOURCE_MART_ASSETS,
    donations_event_id_unique,
    streamer_revenue_daily,
    *STREAM_ANALYTICS_ASSETS,
    *STREAM_ANALYTICS_CHECKS,
    *LOYALTY_ASSETS,
    *LOYALTY_CHECKS,
]
BEFORE, DAY = "2026-11-26", "2026-11-27"


def at(hour: int, minute: int, second: int = 0, day: int = 27) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def resources(lake: Path, marts: Path, *, expiry_days: int = 90) -> dict[str, object]:
    return {
        "lake": LakeResource(root=str(lake)),
        "marts": MartsResource(root=str(marts)),
        "loyalty_rules": LoyaltyRulesResource(expiry_days=expiry_days, max_sessions_per_ip=3),
    }


def materialise(
    lake: Path, marts: Path, day: str, selection: list[object] | None = None, **kw: int
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        EVERYTHING,
        selection=selection,  # type: ignore[arg-type]
        partition_key=day,
        resources=resources(lake, marts, **kw),
    )


def rows(
    marts: Path, mart: str, day: str, key: tuple[str, ...]
) -> dict[tuple[object, ...], dict[str, object]]:
    table = pq.read_table(mart_partition_path(marts, mart, date.fromisoformat(day)))
    return {tuple(r[k] for k in key): r for r in table.to_pylist()}


@pytest.fixture
def marts(lake: Path, tmp_path: Path) -> Path:
    """Two days. The 26th: u2 watches alpha 20:00:00-20:01:30 (2 minutes).

    The 27th, alpha (at most 3 sessions per IP hash):
      s1 u1 ipA: 12:00:10-12:00:50, 12:00:55-12:02:05, 12:01:30-12:01:40 (480p) -> minutes 00, 01, 02
      s2 u1 ipA (second tab): 12:02:00-12:03:10 -> 02, 03; u1 watched 00..03 = 4 minutes
      s3 u2 ipB: 12:01:00-12:01:59 -> 01; 12:05-12:06 with no new segment -> nothing
      s4 u3 headless: 12:00-12:04 -> excluded (user agent)
      s5 u4 ipE: 12:00-12:03 with zero bytes -> excluded (no playback progress)
      s6, s7, s8, s12 u5 ipF: 12:00-12:10 -> 4 sessions on one IP hash > 3: all excluded
      s9 anonymous ipC: 12:00:30-12:01:10 -> 00, 01
    beta: s10 u1 ipA 23:59:00-23:59:30 -> 23:59; s11 u2 ipB 26th 23:59:50-27th 00:00:20 -> 00:00 only.
    ipA holds s1, s2, s10: 3 sessions, not more than 3, so they count.
    Chat on alpha: u1 3 visible, u2 1 visible + 1 held, u5 1 visible. u1 subscribes to alpha.
    Donations on alpha: u1 10.01 and 19.99 RUB (1 point each), u2 50.00 RUB refunded the same day.
    """
    land(
        lake,
        [beat("alpha", "s20", at(20, 0, 0, 26), at(20, 1, 30, 26), user_id="u2", ip_hash="ipB")],
        topic="views",
    )
    views = [
        beat("alpha", "s1", at(12, 0, 10), at(12, 0, 50), user_id="u1", ip_hash="ipA"),
        beat("alpha", "s1", at(12, 0, 55), at(12, 2, 5), user_id="u1", ip_hash="ipA"),
        beat("alpha", "s1", at(12, 1, 30), at(12, 1, 40), user_id="u1", ip_hash="ipA", rendition="480p"),
        beat(
            "alpha", "s2", at(12, 2, 0), at(12, 3, 10), user_id="u1", ip_hash="ipA", user_agent_class="mobile"
        ),
        beat("alpha", "s3", at(12, 1, 0), at(12, 1, 59), user_id="u2", ip_hash="ipB"),
        beat("alpha", "s3", at(12, 5, 0), at(12, 6, 0), user_id="u2", ip_hash="ipB", segments=0),
        beat("alpha", "s4", at(12, 0), at(12, 4), user_id="u3", ip_hash="ipD", user_agent_class="headless"),
        beat("alpha", "s5", at(12, 0), at(12, 3), user_id="u4", ip_hash="ipE", bytes_=0),
        *[
            beat("alpha", s, at(12, 0), at(12, 10), user_id="u5", ip_hash="ipF")
            for s in ("s6", "s7", "s8", "s12")
        ],
        beat("alpha", "s9", at(12, 0, 30), at(12, 1, 10), ip_hash="ipC", region=None),
        beat("beta", "s10", at(23, 59, 0), at(23, 59, 30), user_id="u1", ip_hash="ipA"),
        beat("beta", "s11", at(23, 59, 50, 26), at(0, 0, 20), user_id="u2", ip_hash="ipB"),
    ]
    land(lake, views, topic="views", first_offset=1)
    land(
        lake,
        [
            *[chat("alpha", "u1", at(12, 1, i)) for i in range(3)],
            chat("alpha", "u2", at(12, 2)),
            chat("alpha", "u2", at(12, 3), status="held"),
            chat("alpha", "u5", at(12, 4)),
            # A donation highlight the chat posted in u5's name: not u5's engagement, counted nowhere.
            chat("alpha", "u5", at(12, 5), kind="donation"),
        ],
        topic="chat",
    )
    land(lake, [subscribed("alpha", "u1", at(12, 5))], topic="subscriptions")
    land(
        lake,
        [
            stream("alpha", "b0", at(19, 58, 0, 26)),
            stream("alpha", "b0", at(20, 5, 0, 26), ended=True),
            stream("beta", "bb", at(23, 0, 0, 26)),  # still live at the end of the 27th
            stream("alpha", "b1", at(11, 59, 30)),
            stream("alpha", "b1", at(12, 3, 40), ended=True),
        ],
        topic="streams",
    )
    big = by("u2", processed("alpha", 5000, Currency.RUB, at(12, 6)))
    land(
        lake,
        [
            by("u1", processed("alpha", 1001, Currency.RUB, at(12, 1))),
            by("u1", processed("alpha", 1999, Currency.RUB, at(12, 2))),
            big,
            by("u2", reversal(big, at(13, 0))),
        ],
    )
    root = lake.parent / "marts"
    for day in (BEFORE, DAY):
        result = materialise(lake, root, day)
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
    return root


def test_sessions_are_judged_by_the_anti_farming_rules(marts: Path) -> None:
    sessions = rows(marts, VIEWING_SESSIONS_MART, DAY, ("session_id",))
    assert {s: (r["watch_minutes"], r["excluded_by"]) for (s,), r in sessions.items()} == {
        "s1": (3, None),
        "s2": (2, None),
        "s3": (1, None),
        "s4": (5, USER_AGENT),
        "s5": (0, NO_PLAYBACK_PROGRESS),
        "s6": (11, IP_SESSIONS),
        "s7": (11, IP_SESSIONS),
        "s8": (11, IP_SESSIONS),
        "s12": (11, IP_SESSIONS),
        "s9": (2, None),
        "s10": (1, None),
        "s11": (1, None),
    }
    assert (sessions[("s1",)]["heartbeats"], sessions[("s3",)]["progress_heartbeats"]) == (3, 1)


def test_audience_counts_each_viewer_minute_once_and_knows_returning_viewers(marts: Path) -> None:
    audience = rows(marts, AUDIENCE_MART, DAY, ("channel_id", "viewer_key"))
    assert {k: (r["sessions"], r["watch_minutes"], r["is_new"]) for k, r in audience.items()} == {
        ("alpha", "u1"): (2, 4, True),
        ("alpha", "u2"): (1, 1, False),  # watched alpha on the 26th
        ("alpha", "session:s9"): (1, 2, True),
        ("beta", "u1"): (1, 1, True),
        ("beta", "u2"): (1, 1, True),  # new to beta, whatever alpha saw
    }


def test_stream_analytics_match_hand_computed_concurrency(marts: Path) -> None:
    analytics = rows(marts, STREAM_ANALYTICS_MART, DAY, ("channel_id",))
    alpha = analytics[("alpha",)]
    # Viewers per minute: 12:00 u1+s9 = 2, 12:01 u1+u2+s9 = 3, 12:02 u1 = 1, 12:03 u1 = 1.
    assert {k: alpha[k] for k in alpha if k != "day"} == {
        "channel_id": "alpha",
        "peak_concurrent_viewers": 3,
        "peak_minute": at(12, 1),
        "minutes_with_viewers": 4,
        "avg_concurrent_viewers": 7 / 4,
        "watch_minutes": 7,
        "unique_viewers": 3,
        "signed_in_viewers": 2,
        "new_viewers": 2,
        "returning_viewers": 1,
        "excluded_sessions": 6,
        "chat_messages": 5,
        "chatters": 3,
        "messages_per_viewer_hour": 5 * 60 / 7,
        # Every source: donations 1001 + 1999 + 5000 - 5000 = 3000 and u1's subscription 29900 kopecks;
        # 32900 * 60 / 7 = 282000 per viewer-hour.
        "revenue_gross_rub_minor": 32900,
        "revenue_per_viewer_hour_minor": 282000,
    }
    beta = analytics[("beta",)]
    assert (beta["peak_concurrent_viewers"], beta["peak_minute"], beta["watch_minutes"]) == (1, at(0, 0), 2)
    assert (beta["avg_concurrent_viewers"], beta["revenue_per_viewer_hour_minor"]) == (1.0, 0)
    before = rows(marts, STREAM_ANALYTICS_MART, BEFORE, ("channel_id",))
    assert before[("alpha",)]["watch_minutes"] == 2 and before[("alpha",)]["new_viewers"] == 1


def test_loyalty_points_follow_the_rules(marts: Path) -> None:
    points = rows(marts, LOYALTY_POINTS_MART, DAY, ("channel_id", "user_id"))
    fields = ("watch_minutes", "donations", "donation_points", "bonus_points", "chat_messages", "points")
    assert {k: tuple(r[f] for f in fields) for k, r in points.items()} == {
        # 4 minutes + (1001 // 1000 + 1999 // 1000) + a 500-point subscription month.
        ("alpha", "u1"): (4, 2, 2, 500, 3, 506),
        # 1 minute; 5 points for 50 RUB taken back by the refund; the held message does not count.
        ("alpha", "u2"): (1, 0, 0, 0, 1, 1),
        # The farm's sessions earn nothing; its chat message still counts for the chat badge.
        ("alpha", "u5"): (0, 0, 0, 0, 1, 0),
        ("beta", "u1"): (1, 0, 0, 0, 0, 1),
        ("beta", "u2"): (1, 0, 0, 0, 0, 1),
    }
    assert points[("alpha", "u1")]["donated_rub_minor"] == 3000


def test_balances_ranks_badges_and_leaderboard(marts: Path) -> None:
    balances = rows(marts, LOYALTY_BALANCES_MART, DAY, ("channel_id", "user_id"))
    fields = ("points", "lifetime_points", "watch_minutes", "rank", "badges", "position")
    assert {k: tuple(r[f] for f in fields) for k, r in balances.items()} == {
        ("alpha", "u1"): (506, 506, 4, "regular", ["first_donation"], 1),
        ("alpha", "u2"): (3, 3, 3, "newcomer", [], 2),  # 2 points on the 26th + 1 on the 27th
        ("alpha", "u5"): (0, 0, 0, "newcomer", [], 3),
        ("beta", "u1"): (1, 1, 1, "newcomer", [], 1),
        ("beta", "u2"): (1, 1, 1, "newcomer", [], 2),  # tie on points and lifetime: by user id
    }


@pytest.mark.parametrize(("expiry_days", "expected"), [(3, 506), (2, 0)])
def test_points_expire_after_more_than_the_configured_inactivity(
    marts: Path, expiry_days: int, expected: int
) -> None:
    # As of the 30th (a partition that does not exist yet, so the asset's function is called directly) the
    # last activity (27th) is 3 days old: kept with 3 days' grace, gone with 2.
    balances = {
        (r["channel_id"], r["user_id"]): r
        for r in balances_table(marts, date(2026, 11, 30), expiry_days).to_pylist()
    }
    u1 = balances[("alpha", "u1")]
    assert (u1["points"], u1["expired_points"], u1["lifetime_points"], u1["rank"]) == (
        expected,
        506 - expected,
        506,
        "regular",  # expiry never demotes
    )
    # The leaderboard still orders everyone: by points, then lifetime points.
    assert [balances[("alpha", u)]["position"] for u in ("u1", "u2", "u5")] == [1, 2, 3]


def test_the_balances_asset_applies_the_configured_expiry(lake: Path, marts: Path) -> None:
    # As of the 28th the 27th is 1 day back: 0 days of grace expires it, 1 keeps it.
    for expiry_days, expected in ((1, 506), (0, 0)):
        result = materialise(lake, marts, "2026-11-28", selection=[loyalty_balances], expiry_days=expiry_days)
        assert result.success
        balances = rows(marts, LOYALTY_BALANCES_MART, "2026-11-28", ("channel_id", "user_id"))
        assert balances[("alpha", "u1")]["points"] == expected


def test_export_holds_the_newest_balances_and_a_backfill_leaves_it(lake: Path, marts: Path) -> None:
    exported = pq.read_table(export_path(marts))
    assert exported.column_names == ["user_id", "channel_id", "points", "rank", "badges", "position", "as_of"]
    assert {(r["channel_id"], r["user_id"]): r["points"] for r in exported.to_pylist()} == {
        ("alpha", "u1"): 506,
        ("alpha", "u2"): 3,
        ("alpha", "u5"): 0,
        ("beta", "u1"): 1,
        ("beta", "u2"): 1,
    }
    assert materialise(lake, marts, BEFORE).success  # a backfill of the 26th
    assert set(pq.read_table(export_path(marts)).column("as_of").to_pylist()) == {date(2026, 11, 27)}


def test_a_day_without_views_or_chat_gives_empty_marts_and_passing_checks(lake: Path, tmp_path: Path) -> None:
    root = tmp_path / "empty-marts"
    result = materialise(lake, root, DAY)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert rows(root, STREAM_ANALYTICS_MART, DAY, ("channel_id",)) == {}
    assert pq.read_table(export_path(root)).num_rows == 0


def test_old_heartbeat_files_without_ip_hash_are_read(lake: Path, tmp_path: Path) -> None:
    # A lake file written before `ip_hash` existed: drop the column, as an older lander would have.
    manifest = land(lake, [beat("alpha", "s1", at(12, 0), at(12, 1), user_id="u1")], topic="views")
    path = lake / manifest.files[0]
    pq.write_table(pq.read_table(path).drop_columns(["ip_hash"]), path)
    root = tmp_path / "old-marts"
    assert materialise(lake, root, DAY).success
    assert rows(root, AUDIENCE_MART, DAY, ("viewer_key",))[("u1",)]["watch_minutes"] == 2


def test_blocking_checks_catch_corrupted_marts(lake: Path, marts: Path) -> None:
    path = mart_partition_path(marts, LOYALTY_POINTS_MART, date(2026, 11, 27))
    table = pq.read_table(path)
    index = table.schema.get_field_index("points")
    points = table.column("points").to_pylist()
    pq.write_table(
        table.set_column(index, table.schema.field(index), pa.array([points[0] + 1, *points[1:]])), path
    )
    audience = mart_partition_path(marts, AUDIENCE_MART, date(2026, 11, 27))
    kept = [r for r in pq.read_table(audience).to_pylist() if r["viewer_key"] != "u2"]  # a viewer lost
    pq.write_table(pa.Table.from_pylist(kept, schema=pq.read_schema(audience)), audience)

    result = dg.materialize(
        EVERYTHING,
        selection=dg.AssetSelection.checks(*LOYALTY_CHECKS[:2], *STREAM_ANALYTICS_CHECKS),
        resources=resources(lake, marts),
        raise_on_error=False,
    )
    assert not result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        POINTS_ADD_UP: False,
        WATCH_POINTS_RECONCILE: False,
        WATCH_TIME_RECONCILES: False,
        "session_unique": True,
        "viewer_minutes_within_day": True,
        "concurrency_consistent": True,
        "breakdown_covers_audience": True,  # the breakdown may hold more than the audience, never less
        "broadcast_figures_consistent": True,
        "game_watch_time_reconciles_with_audience": False,  # the audience lost u2's minutes, games did not
    }


def test_breakdown_by_platform_and_region(marts: Path) -> None:
    breakdown = rows(marts, AUDIENCE_BREAKDOWN_MART, DAY, ("channel_id", "platform", "region"))
    assert {k: (r["viewers"], r["watch_minutes"]) for k, r in breakdown.items()} == {
        ("alpha", "browser", "RU"): (2, 4),  # u1 on s1 (12:00-12:02) and u2 (12:01)
        ("alpha", "browser", "unknown"): (1, 2),  # the anonymous session sent no region
        ("alpha", "mobile", "RU"): (1, 2),  # u1's second tab, 12:02-12:03
        ("beta", "browser", "RU"): (2, 2),
    }


def test_broadcasts_with_their_live_minutes_and_the_previous_broadcast(marts: Path) -> None:
    fields = (
        "live_minutes",
        "peak_concurrent_viewers",
        "avg_concurrent_viewers",
        "watch_minutes",
        "unique_viewers",
        "previous_broadcast_id",
        "previous_avg_concurrent_viewers",
        "previous_peak_concurrent_viewers",
    )

    def figures(day: str) -> dict[tuple[object, ...], tuple[object, ...]]:
        found = rows(marts, BROADCAST_MART, day, ("broadcast_id",))
        return {k: tuple(r[f] for f in fields) for k, r in found.items()}

    assert figures(BEFORE) == {
        # b0 19:58-20:05 is 8 live minutes; u2 watched 20:00 and 20:01.
        ("b0",): (8, 1, 2 / 8, 2, 1, None, None, None),
        # bb started at 23:00 and nothing else of beta happened that day: 1 live minute, nobody watching.
        ("bb",): (1, 0, 0.0, 0, 0, None, None, None),
    }
    assert figures(DAY) == {
        # b1 11:59:30-12:03:40 is 5 live minutes holding 2 + 3 + 1 + 1 viewers.
        ("b1",): (5, 3, 7 / 5, 7, 3, "b0", 2 / 8, 1),
        # bb is still live: midnight to beta's last event (23:59:30) is 1,440 minutes, 2 of them watched.
        ("bb",): (1440, 1, 2 / 1440, 2, 2, None, None, None),
    }
