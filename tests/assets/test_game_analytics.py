"""Stream analytics by game: each live minute belongs to the game the channel was playing then, so a
broadcast that switched games is split between them, and the by-game figures are hand-computed below."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.resources import LakeResource, MartsResource
from assets.stream_analytics import (
    GAME_WATCH_TIME_RECONCILES,
    LoyaltyRulesResource,
    audience_daily,
    broadcast_analytics_daily,
    game_analytics_daily,
    game_watch_time_reconciles,
    viewing_sessions,
)
from services.events import Envelope, StreamEnded, StreamGameChanged, StreamStarted
from services.lake import mart_partition_path
from services.marts import BROADCAST_MART, GAME_ANALYTICS_MART
from tests.fixture_lake import land
from tests.fixture_views import beat

DAY = "2026-11-27"


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, second, tzinfo=UTC)


def event(cls: type, channel: str, broadcast: str, when: datetime, game: str) -> Envelope:
    return Envelope.wrap(
        cls(broadcast_id=broadcast, game=game), channel_id=channel, node_id="node-test", occurred_at=when
    )


def resources(lake: Path, marts: Path) -> dict[str, object]:
    return {
        "lake": LakeResource(root=str(lake)),
        "marts": MartsResource(root=str(marts)),
        "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
    }


def materialise(lake: Path, marts: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [
            viewing_sessions,
            audience_daily,
            broadcast_analytics_daily,
            game_analytics_daily,
            game_watch_time_reconciles,
        ],
        partition_key=DAY,
        resources=resources(lake, marts),
    )


def table(marts: Path, mart: str, key: str) -> dict[object, dict[str, object]]:
    rows = pq.read_table(mart_partition_path(marts, mart, date.fromisoformat(DAY))).to_pylist()
    return {r[key]: r for r in rows}


@pytest.fixture
def streams(lake: Path) -> list[Envelope]:
    """alpha a1: 10:00:30 Dota 2, switched to Valorant at 10:02:20, ended 10:05:10 -> minutes 10:00-10:01
    are Dota 2 (2), 10:02-10:05 Valorant (4; the switch's minute is the new game's).
    beta b1: 10:01:00-10:03:59 Dota 2 -> 10:01, 10:02, 10:03. gamma: no broadcast at all."""
    return [
        event(StreamStarted, "alpha", "a1", at(10, 0, 30), "dota-2"),
        event(StreamGameChanged, "alpha", "a1", at(10, 2, 20), "valorant"),
        event(StreamEnded, "alpha", "a1", at(10, 5, 10), "valorant"),
        event(StreamStarted, "beta", "b1", at(10, 1, 0), "dota-2"),
        event(StreamEnded, "beta", "b1", at(10, 3, 59), "dota-2"),
    ]


@pytest.fixture
def views(lake: Path) -> None:
    """u1 alpha 10:00-10:04 (Dota 10:00, 10:01; Valorant 10:02-10:04); u2 alpha 10:02 (Valorant) and
    beta 10:01-10:02 (Dota); u3 beta 10:02-10:03 (Dota); u4 gamma 10:00 (no game)."""
    land(
        lake,
        [
            beat("alpha", "s1", at(10, 0, 10), at(10, 4, 50), user_id="u1", ip_hash="ip1"),
            beat("alpha", "s2", at(10, 2, 0), at(10, 2, 40), user_id="u2", ip_hash="ip2"),
            beat("beta", "s3", at(10, 1, 10), at(10, 2, 50), user_id="u2", ip_hash="ip2"),
            beat("beta", "s4", at(10, 2, 5), at(10, 3, 30), user_id="u3", ip_hash="ip3"),
            beat("gamma", "s5", at(10, 0, 0), at(10, 0, 30), user_id="u4", ip_hash="ip4"),
        ],
        topic="views",
    )


FIELDS = ("channels", "broadcasts", "live_minutes", "viewers", "watch_minutes", "peak_concurrent_viewers")


def test_by_game_figures_match_the_hand_computed_ones(
    lake: Path, tmp_path: Path, streams: list[Envelope], views: None
) -> None:
    land(lake, streams, topic="streams")
    marts = tmp_path / "marts"
    result = materialise(lake, marts)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    games = table(marts, GAME_ANALYTICS_MART, "game")
    assert list(games) == ["dota-2", "valorant", ""]  # most watched first
    assert {g: tuple(r[f] for f in FIELDS) for g, r in games.items()} == {
        # alpha 2 + beta 3 live minutes; u1 2 + u2 2 + u3 2 minutes; 10:01 and 10:02 have two viewers.
        "dota-2": (2, 2, 5, 3, 6, 2),
        # alpha 10:02-10:05; u1 3 + u2 1 minutes; both at 10:02.
        "valorant": (1, 1, 4, 2, 4, 2),
        # gamma's viewer watched while gamma had no broadcast.
        "": (1, 0, 0, 1, 1, 1),
    }
    broadcasts = table(marts, BROADCAST_MART, "broadcast_id")
    assert {b: r["game"] for b, r in broadcasts.items()} == {"a1": "valorant", "b1": "dota-2"}


def test_stream_files_from_before_games_count_as_no_game(lake: Path, tmp_path: Path, views: None) -> None:
    old = [
        Envelope.wrap(
            StreamStarted(broadcast_id="a1"), channel_id="alpha", node_id="n", occurred_at=at(10, 0)
        ),
        Envelope.wrap(
            StreamEnded(broadcast_id="a1"), channel_id="alpha", node_id="n", occurred_at=at(10, 4, 59)
        ),
    ]
    manifest = land(lake, old, topic="streams")
    path = lake / manifest.files[0]
    pq.write_table(pq.read_table(path).drop_columns(["game"]), path)  # as an older lander wrote it
    marts = tmp_path / "marts"
    assert materialise(lake, marts).success
    games = table(marts, GAME_ANALYTICS_MART, "game")
    # Every minute is game "": alpha's 5 live minutes, and all 11 viewer-minutes of the day.
    assert {g: (r["live_minutes"], r["watch_minutes"]) for g, r in games.items()} == {"": (5, 11)}


def test_the_reconciliation_check_catches_lost_minutes(
    lake: Path, tmp_path: Path, streams: list[Envelope], views: None
) -> None:
    land(lake, streams, topic="streams")
    marts = tmp_path / "marts"
    assert materialise(lake, marts).success
    path = mart_partition_path(marts, GAME_ANALYTICS_MART, date.fromisoformat(DAY))
    pq.write_table(pq.read_table(path).slice(1), path)  # dota-2's row lost
    result = dg.materialize(
        [game_analytics_daily, audience_daily, game_watch_time_reconciles],
        selection=dg.AssetSelection.checks(game_watch_time_reconciles),
        resources=resources(lake, marts),
        raise_on_error=False,
    )
    verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts[GAME_WATCH_TIME_RECONCILES] is False
