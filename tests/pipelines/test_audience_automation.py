"""The lake sensor launches the audience and loyalty rebuild for days that views, chat, streams or
subscription files touch, and that job builds the marts from the lake on its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.loyalty import export_path
from assets.resources import LakeResource, MartsResource
from assets.stream_analytics import LoyaltyRulesResource
from pipelines.definitions import defs
from pipelines.jobs import DAILY_AUDIENCE_JOB, DAILY_REVENUE_JOB, LAKE_CHECKS_JOB
from pipelines.sensors import lake_manifests_sensor
from services.money import Currency
from tests.fixture_lake import land, processed
from tests.fixture_views import beat, chat


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def tick(instance: dg.DagsterInstance, lake: Path, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource(root=str(lake))}
    )
    result = lake_manifests_sensor(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def requested(result: dg.SensorResult) -> list[tuple[str | None, str | None]]:
    return sorted(((r.job_name, r.partition_key) for r in result.run_requests or []), key=str)


def test_new_view_and_chat_files_request_the_audience_job(
    instance: dg.DagsterInstance, lake: Path, tmp_path: Path
) -> None:
    noon = datetime(2026, 11, 27, 12, tzinfo=UTC)
    land(lake, [processed("alpha", 1001, Currency.RUB, datetime(2026, 11, 26, 9, tzinfo=UTC))])
    land(lake, [beat("alpha", "s1", noon, noon.replace(minute=2), user_id="u1")], topic="views")
    first = tick(instance, lake, None)
    assert isinstance(first, dg.SensorResult)
    assert requested(first) == [
        (DAILY_AUDIENCE_JOB, "2026-11-27"),
        (DAILY_REVENUE_JOB, "2026-11-26"),
        (LAKE_CHECKS_JOB, None),
    ]
    assert isinstance(tick(instance, lake, first.cursor), dg.SkipReason)

    land(lake, [chat("alpha", "u1", noon)], topic="chat")
    second = tick(instance, lake, first.cursor)
    assert isinstance(second, dg.SensorResult)
    assert requested(second) == [(DAILY_AUDIENCE_JOB, "2026-11-27"), (LAKE_CHECKS_JOB, None)]
    runs = [r for r in [*(first.run_requests or []), *(second.run_requests or [])]]
    assert len({r.run_key for r in runs}) == len(runs)

    marts = tmp_path / "marts"
    resources = {
        "lake": LakeResource(root=str(lake)),
        "marts": MartsResource(root=str(marts)),
        "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=5),
    }
    run = defs.resolve_job_def(DAILY_AUDIENCE_JOB).execute_in_process(
        partition_key="2026-11-27", resources=resources
    )
    assert run.success and all(e.passed for e in run.get_asset_check_evaluations())
    # 12:00-12:02 is three minutes: three points.
    assert pq.read_table(export_path(marts)).to_pylist() == [
        {
            "user_id": "u1",
            "channel_id": "alpha",
            "points": 3,
            "rank": "newcomer",
            "badges": [],
            "position": 1,
            "as_of": datetime(2026, 11, 27).date(),
        }
    ]


def test_definitions_register_the_audience_and_loyalty_checks() -> None:
    graph = defs.resolve_asset_graph()
    names = {key.name for key in graph.asset_check_keys}
    assert names >= {
        "session_unique",
        "viewer_minutes_within_day",
        "watch_time_reconciles_with_audience",
        "concurrency_consistent",
        "points_add_up",
        "watch_points_reconcile_with_audience",
        "leaderboard_consistent",
        "export_matches_balances",
        "breakdown_covers_audience",
        "broadcast_figures_consistent",
    }
