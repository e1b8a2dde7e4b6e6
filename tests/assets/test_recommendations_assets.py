"""The recommendations mart over a hand-built lake: heartbeats -> audience -> recommendations, compared
with the tiny case computed by hand in tests/services/test_recommend.py, and its checks catching a
broken partition."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.recommendations import (
    AT_MOST_K,
    NOTHING_ALREADY_WATCHED,
    RECOMMENDATION_ASSETS,
    RECOMMENDATION_CHECKS,
    RECOMMENDATIONS_SCHEMA,
)
from assets.resources import LakeResource, MartsResource
from assets.stream_analytics import LoyaltyRulesResource, audience_daily, viewing_sessions
from services.lake import mart_partition_path
from services.recommend import RECOMMENDATIONS_MART
from tests.fixture_lake import land
from tests.fixture_views import beat

OLD, BEFORE, DAY = "2026-10-01", "2026-11-26", "2026-11-27"
ASSETS = [viewing_sessions, audience_daily, *RECOMMENDATION_ASSETS, *RECOMMENDATION_CHECKS]


def minute(day: str, user: str | None, channel: str) -> object:
    """One minute of playback (12:00:10-12:00:50) by `user` (or an anonymous session) on `channel`."""
    d = date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, 12, 0, 10, tzinfo=UTC)
    end = datetime(d.year, d.month, d.day, 12, 0, 50, tzinfo=UTC)
    session = f"{user or 'anon'}-{channel}-{day}"
    return beat(channel, session, start, end, user_id=user, ip_hash=f"ip-{user or 'anon'}")


def run(lake: Path, marts: Path, day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=day,
        resources={
            "lake": LakeResource(root=str(lake)),
            "marts": MartsResource(root=str(marts)),
            "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
        },
    )


@pytest.fixture
def marts(lake: Path) -> Path:
    """The hand case (a: v1 v2 v3, b: v1 v2 v5, c: v2 v3, d: v4 v5), one minute each, over two days;
    an anonymous session on c and d (left out: it would make c and d as popular as a and b); and v4 on
    a 57 days earlier (outside the 28-day window, so a is still a discovery for v4)."""
    events = [
        minute(OLD, "v4", "a"),
        *(minute(BEFORE, v, c) for v, c in [("v1", "a"), ("v2", "a"), ("v2", "b"), ("v3", "a")]),
        *(minute(DAY, v, c) for v, c in [("v1", "b"), ("v2", "c"), ("v3", "c"), ("v4", "d"), ("v5", "b")]),
        minute(DAY, "v5", "d"),
        minute(DAY, None, "c"),
        minute(DAY, None, "d"),
    ]
    land(lake, events, topic="views")  # type: ignore[arg-type]
    root = lake.parent / "marts"
    for day in (OLD, BEFORE, DAY):
        result = run(lake, root, day)
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
    return root


def recs(marts: Path, day: str) -> dict[str, list[tuple[str, float, str]]]:
    table = pq.read_table(mart_partition_path(marts, RECOMMENDATIONS_MART, date.fromisoformat(day)))
    out: dict[str, list[tuple[str, float, str]]] = {}
    for r in sorted(table.to_pylist(), key=lambda r: (r["user_id"], r["rank"])):
        out.setdefault(r["user_id"], []).append((r["channel_id"], round(r["score"], 6), r["source"]))
    return out


def test_recommendations_match_the_hand_computed_case(marts: Path) -> None:
    pop_cd = math.log(3) / math.log(4)
    got = recs(marts, DAY)
    assert got["v1"] == [
        ("c", round(0.9 + 0.1 * pop_cd, 6), "co_watching"),
        ("d", round(0.3 + 0.1 * pop_cd, 6), "co_watching"),
    ]
    assert got["v4"] == [
        ("b", 1.0, "co_watching"),
        ("a", 0.1, "popular"),
        ("c", round(0.1 * pop_cd, 6), "popular"),
    ]
    assert set(got) == {"v1", "v2", "v3", "v4", "v5"}  # signed-in viewers only
    # The old day knew one viewer on one channel: nothing to recommend, an empty (valid) partition.
    assert recs(marts, OLD) == {}


def test_the_checks_catch_a_broken_partition(lake: Path, marts: Path) -> None:
    day = date.fromisoformat(DAY)
    broken = pa.Table.from_pylist(
        [
            {"day": day, "user_id": "v1", "rank": 1, "channel_id": "a", "score": 0.5, "source": "popular"},
            {"day": day, "user_id": "v1", "rank": 1, "channel_id": "c", "score": float("nan"), "source": "x"},
        ],
        schema=RECOMMENDATIONS_SCHEMA,
    )
    pq.write_table(broken, mart_partition_path(marts, RECOMMENDATIONS_MART, day))
    # Checks run on their own (no partition) look at every day's partition.
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.checks(*RECOMMENDATION_CHECKS),
        resources={
            "lake": LakeResource(root=str(lake)),
            "marts": MartsResource(root=str(marts)),
            "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
        },
        raise_on_error=False,
    )
    verdicts = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert verdicts == {AT_MOST_K: False, "scores_finite_and_ordered": False, NOTHING_ALREADY_WATCHED: False}
