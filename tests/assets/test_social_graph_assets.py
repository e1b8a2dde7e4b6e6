"""The social graph mart fetched from the social service's test double over the hand-built lake of
tests/assets/test_recommendations_assets.py, the recommendations blending it in (computed by hand), the
empty "not configured" partition, and the edge check catching a broken partition."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.recommendations import RECOMMENDATION_ASSETS, RECOMMENDATION_CHECKS
from assets.resources import LakeResource, MartsResource
from assets.social import (
    NO_SELF_OR_DUPLICATE_EDGES,
    SOCIAL_ASSETS,
    SOCIAL_CHECKS,
    SOCIAL_GRAPH_SCHEMA,
    SocialResource,
    active_viewers,
)
from assets.stream_analytics import LoyaltyRulesResource, audience_daily, viewing_sessions
from services.lake import mart_partition_path
from services.recommend import CO_WATCHING, FRIENDS, FRIENDS_WEIGHT, POPULARITY_WEIGHT
from services.social import SOCIAL_GRAPH_MART
from tests.assets.test_recommendations_assets import BEFORE, DAY, OLD, minute, recs
from tests.conftest import free_port
from tests.fixture_lake import land
from tests.ingest_node.chat.social_double import SocialServiceDouble

TOKEN = "social-graph-test-token"
ASSETS = [
    viewing_sessions,
    audience_daily,
    *SOCIAL_ASSETS,
    *SOCIAL_CHECKS,
    *RECOMMENDATION_ASSETS,
    *RECOMMENDATION_CHECKS,
]


@pytest.fixture
def social(monkeypatch: pytest.MonkeyPatch) -> Iterator[SocialServiceDouble]:
    """v4's friends are v2, v3 and someone not watching; v2 and v3 name v4 back; the service fails for v1
    and does not know v5."""
    monkeypatch.setenv("EFIR_CHAT_SOCIAL_TOKEN", TOKEN)
    double = SocialServiceDouble(free_port(), TOKEN).start()
    double.friends = {"v4": ["v2", "v3", "nobody"], "v2": ["v4"], "v3": ["v4"]}
    double.broken = {"v1"}
    yield double
    double.stop()


def run(lake: Path, marts: Path, day: str, social: SocialResource) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        partition_key=day,
        resources={
            "lake": LakeResource(root=str(lake)),
            "marts": MartsResource(root=str(marts)),
            "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
            "social": social,
        },
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def edges(marts: Path, day: str) -> list[tuple[str, str]]:
    table = pq.read_table(mart_partition_path(marts, SOCIAL_GRAPH_MART, date.fromisoformat(day)))
    return [(r["user_id"], r["friend_id"]) for r in table.to_pylist()]


@pytest.fixture
def lake_with_views(lake: Path) -> Path:
    """The hand case (a: v1 v2 v3, b: v1 v2 v5, c: v2 v3, d: v4 v5) over two days, and v4 on a long ago."""
    events = [
        minute(OLD, "v4", "a"),
        *(minute(BEFORE, v, c) for v, c in [("v1", "a"), ("v2", "a"), ("v2", "b"), ("v3", "a")]),
        *(minute(DAY, v, c) for v, c in [("v1", "b"), ("v2", "c"), ("v3", "c"), ("v4", "d"), ("v5", "b")]),
        minute(DAY, "v5", "d"),
        minute(DAY, None, "c"),
        minute(DAY, None, "d"),
    ]
    land(lake, events, topic="views")  # type: ignore[arg-type]
    return lake


def test_the_graph_is_fetched_and_blended_into_recommendations(
    lake_with_views: Path, social: SocialServiceDouble
) -> None:
    marts = lake_with_views.parent / "marts"
    # Earlier days without a service: empty partitions that say so, and the plain blend.
    for day in (OLD, BEFORE):
        result = run(lake_with_views, marts, day, SocialResource())
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        assert metadata(result, SOCIAL_GRAPH_MART)["status"] == "not configured"
        assert edges(marts, day) == []

    result = run(lake_with_views, marts, DAY, SocialResource(url=social.url, timeout_seconds=5.0))
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    # Friends outside the window ("nobody") are left out; edges are as the service answers them.
    assert edges(marts, DAY) == [("v2", "v4"), ("v3", "v4"), ("v4", "v2"), ("v4", "v3")]
    meta = metadata(result, SOCIAL_GRAPH_MART)
    assert {k: meta[k] for k in ("status", "viewers_active", "viewers_asked", "viewers_with_friends")} == {
        "status": "fetched",
        "viewers_active": 5,
        "viewers_asked": 5,
        "viewers_with_friends": 3,
    }
    assert (meta["viewers_failed"], meta["viewers_unknown"], meta["friends_outside_window"]) == (1, 1, 1)
    assert meta["errors"] == {"status 500": 1}
    assert all(auth == f"Bearer {TOKEN}" for _, auth in social.requests)

    # v4 (watched d) has friends v2 (a, b, c) and v3 (a, c): friends(a) = friends(c) = 1, friends(b) = 1/2.
    w, p = FRIENDS_WEIGHT, POPULARITY_WEIGHT
    pop_cd = math.log(3) / math.log(4)
    got = recs(marts, DAY)
    assert got["v4"] == [
        ("b", round((1 - p - w) * 1 + p * 1 + w * 0.5, 6), CO_WATCHING),
        ("a", round(p * 1 + w, 6), FRIENDS),
        ("c", round(p * pop_cd + w, 6), FRIENDS),
    ]
    # v1 (the service failed) keeps the plain blend of the hand case.
    assert got["v1"] == [
        ("c", round(0.9 + 0.1 * pop_cd, 6), CO_WATCHING),
        ("d", round(0.3 + 0.1 * pop_cd, 6), CO_WATCHING),
    ]
    assert metadata(result, "viewer_recommendations")["social_graph"] == "3 viewers with friends"


def test_the_most_watching_viewers_are_asked_first(lake_with_views: Path) -> None:
    marts = lake_with_views.parent / "marts"
    for day in (BEFORE, DAY):
        assert run(lake_with_views, marts, day, SocialResource()).success
    # Window minutes: v2 3; v1, v3, v5 2; v4 1 (its minute on a is outside the window).
    assert active_viewers(marts, date.fromisoformat(DAY)) == ["v2", "v1", "v3", "v5", "v4"]


def test_the_check_catches_self_and_duplicate_edges(lake: Path) -> None:
    marts = lake.parent / "marts"
    day = date.fromisoformat(DAY)
    path = mart_partition_path(marts, SOCIAL_GRAPH_MART, day)
    path.parent.mkdir(parents=True)
    rows = [("v1", "v1"), ("v1", "v2"), ("v1", "v2")]
    table = pa.Table.from_pylist(
        [{"day": day, "user_id": u, "friend_id": f} for u, f in rows], schema=SOCIAL_GRAPH_SCHEMA
    )
    pq.write_table(table, path)
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.checks(*SOCIAL_CHECKS),
        resources={
            "lake": LakeResource(root=str(lake)),
            "marts": MartsResource(root=str(marts)),
            "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
            "social": SocialResource(),
        },
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == NO_SELF_OR_DUPLICATE_EDGES and not evaluation.passed
    found = {k: v.value for k, v in evaluation.metadata.items()}
    # v1 -> v2 (twice) has no v2 -> v1: counted, not refused.
    assert found == {"self_edges": 1, "duplicate_edges": 1, "one_way_edges": 2}
