"""Game data for the recommendations, read from the lake's stream events over the window: each viewer's
minutes count for the game their channel played that day, and a channel's game is its last one."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from assets.recommendations import window_games
from services.events import Envelope, StreamGameChanged, StreamStarted
from services.recommend import GameData
from tests.assets.test_recommendations_assets import BEFORE, DAY, OLD, minute, run
from tests.fixture_lake import land


def event(cls: type, channel: str, broadcast: str, day: str, hour: int, game: str) -> Envelope:
    d = date.fromisoformat(day)
    when = datetime(d.year, d.month, d.day, hour, 0, tzinfo=UTC)
    return Envelope.wrap(
        cls(broadcast_id=broadcast, game=game), channel_id=channel, node_id="n", occurred_at=when
    )


def test_window_games_from_the_lake(lake: Path) -> None:
    # The hand case's watching (tests/assets/test_recommendations_assets.py): BEFORE v1 v2 v3 on a, v2 on
    # b; DAY v1 v5 on b, v2 v3 on c, v4 v5 on d.
    views = [
        minute(OLD, "v4", "a"),
        *(minute(BEFORE, v, c) for v, c in [("v1", "a"), ("v2", "a"), ("v2", "b"), ("v3", "a")]),
        *(minute(DAY, v, c) for v, c in [("v1", "b"), ("v2", "c"), ("v3", "c"), ("v4", "d"), ("v5", "b")]),
        minute(DAY, "v5", "d"),
    ]
    land(lake, views, topic="views")  # type: ignore[arg-type]
    # a: Dota 2 on BEFORE, switched to Chess on DAY after everyone watched; b: Dota 2 on DAY only (its
    # BEFORE minutes have no game); c: live with no game; d: no stream event.
    land(
        lake,
        [
            event(StreamStarted, "a", "a1", BEFORE, 11, "dota-2"),
            event(StreamStarted, "b", "b1", DAY, 11, "dota-2"),
            event(StreamStarted, "c", "c1", DAY, 11, ""),
            event(StreamGameChanged, "a", "a1", DAY, 13, "chess"),
        ],
        topic="streams",
    )
    marts = lake.parent / "marts"
    for day in (OLD, BEFORE, DAY):
        result = run(lake, marts, day)
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert window_games(lake, marts, date.fromisoformat(DAY)) == GameData(
        {"a": "chess", "b": "dota-2"},
        {"v1": {"dota-2": 2.0}, "v2": {"dota-2": 1.0}, "v3": {"dota-2": 1.0}, "v5": {"dota-2": 1.0}},
    )
    # The OLD day's window has no stream events: no game data, the plain blend.
    assert window_games(lake, marts, date.fromisoformat(OLD)) is None
