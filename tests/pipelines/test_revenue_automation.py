"""The Dagster code location: definitions load, the manifest sensor and the nightly schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.lake import GIFTS_TOPIC, INTERACTIVE_TOPIC, SPONSORSHIPS_TOPIC, SUBSCRIPTIONS_TOPIC
from assets.resources import LakeResource, MartsResource
from pipelines.definitions import defs
from pipelines.jobs import DAILY_AUDIENCE_JOB, DAILY_REVENUE_JOB, LAKE_CHECKS_JOB
from pipelines.schedules import YESTERDAY_REVENUE_SCHEDULE, yesterday_revenue_schedule
from pipelines.sensors import LAKE_MANIFESTS_SENSOR, lake_manifests_sensor
from services.events import SubscriptionCreated
from services.marts import revenue_by_day
from services.money import Currency
from tests.fixture_lake import land, processed, reversal
from tests.fixture_payments import boost, gift, sponsorship, subscription

MONEY_MARTS = {
    "donations",
    "subscription_payments",
    "gift_payments",
    "interactive_payments",
    "sponsorship_payments",
}

ROOT = Path(__file__).resolve().parents[2]


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


def test_definitions_load_with_blocking_money_checks() -> None:
    assert defs.resolve_job_def(DAILY_REVENUE_JOB).partitions_def is not None
    assert defs.resolve_job_def(LAKE_CHECKS_JOB)
    assert defs.resolve_sensor_def(LAKE_MANIFESTS_SENSOR).minimum_interval_seconds == 15
    assert defs.resolve_schedule_def(YESTERDAY_REVENUE_SCHEDULE).cron_schedule == "30 0 * * *"
    graph = defs.resolve_asset_graph()
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert specs["gross_equals_share_plus_fee"].blocking
    assert specs["gross_reconciles_with_payments"].blocking
    assert specs["event_id_unique"].blocking
    # Selecting the assets selected their checks: a bad day fails in the same run.
    job_checks = defs.resolve_job_def(DAILY_REVENUE_JOB).asset_layer.asset_graph.asset_check_keys
    assert {k.name for k in job_checks} >= {"gross_equals_share_plus_fee", "event_id_unique"}


def test_workspace_validates(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_sensor_requests_each_new_event_date_once(instance: dg.DagsterInstance, lake: Path) -> None:
    assert isinstance(tick(instance, lake, None), dg.SkipReason)  # an empty lake asks for nothing

    paid = processed("alpha", 1001, Currency.USD, datetime(2026, 11, 26, 20, tzinfo=UTC))
    land(lake, [paid, processed("alpha", 500, Currency.RUB, datetime(2026, 11, 27, 1, tzinfo=UTC))])
    first = tick(instance, lake, None)
    assert isinstance(first, dg.SensorResult)
    assert requested(first) == [
        (DAILY_REVENUE_JOB, "2026-11-26"),
        (DAILY_REVENUE_JOB, "2026-11-27"),
        (LAKE_CHECKS_JOB, None),
    ]

    assert isinstance(tick(instance, lake, first.cursor), dg.SkipReason)  # nothing new: nothing again

    # A refund of the 26th landing on the 28th touches only the 28th.
    land(lake, [reversal(paid, datetime(2026, 11, 28, 9, tzinfo=UTC))], first_offset=2)
    third = tick(instance, lake, first.cursor)
    assert isinstance(third, dg.SensorResult)
    assert requested(third) == [(DAILY_REVENUE_JOB, "2026-11-28"), (LAKE_CHECKS_JOB, None)]
    keys = {r.run_key for r in [*(first.run_requests or []), *(third.run_requests or [])]}
    assert len(keys) == 5  # every request has its own run key


def test_sensor_rebuilds_revenue_for_every_money_topic(instance: dg.DagsterInstance, lake: Path) -> None:
    """Gifts, interactive and sponsorship files rebuild revenue; subscriptions rebuild it through the
    audience job, which selects every money mart and the revenue mart too."""
    at = datetime(2026, 11, 27, 9, tzinfo=UTC)
    land(lake, [gift("alpha", 500, Currency.RUB, at)], topic=GIFTS_TOPIC)
    land(lake, [boost("alpha", 500, Currency.RUB, at.replace(day=26))], topic=INTERACTIVE_TOPIC)
    land(lake, [sponsorship("alpha", 500, Currency.RUB, at.replace(day=25))], topic=SPONSORSHIPS_TOPIC)
    land(lake, [subscription(SubscriptionCreated, "alpha", 500, at)], topic=SUBSCRIPTIONS_TOPIC)
    result = tick(instance, lake, None)
    assert isinstance(result, dg.SensorResult)
    assert requested(result) == [
        (DAILY_AUDIENCE_JOB, "2026-11-27"),
        (DAILY_REVENUE_JOB, "2026-11-25"),
        (DAILY_REVENUE_JOB, "2026-11-26"),
        (DAILY_REVENUE_JOB, "2026-11-27"),
        (LAKE_CHECKS_JOB, None),
    ]
    for job in (DAILY_REVENUE_JOB, DAILY_AUDIENCE_JOB):
        selected = defs.resolve_job_def(job).asset_layer.asset_graph.get_all_asset_keys()
        assert {k.to_user_string() for k in selected} >= {*MONEY_MARTS, "streamer_revenue_daily"}


def test_sensor_waits_for_files_renamed_after_their_manifest(
    instance: dg.DagsterInstance, lake: Path
) -> None:
    manifest = land(lake, [processed("alpha", 1001, Currency.RUB, datetime(2026, 11, 27, tzinfo=UTC))])
    landed = lake / manifest.files[0]
    hidden = landed.with_name(f".{landed.name}.tmp")
    landed.rename(hidden)  # the lander's state between committing the manifest and renaming its file
    assert isinstance(tick(instance, lake, None), dg.SkipReason)
    hidden.rename(landed)
    result = tick(instance, lake, None)
    assert isinstance(result, dg.SensorResult)
    assert requested(result) == [(DAILY_REVENUE_JOB, "2026-11-27"), (LAKE_CHECKS_JOB, None)]


def test_sensor_skips_dates_outside_the_partitions(instance: dg.DagsterInstance, lake: Path) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, datetime(2023, 5, 1, tzinfo=UTC))])
    result = tick(instance, lake, None)
    assert isinstance(result, dg.SensorResult)
    assert requested(result) == [(LAKE_CHECKS_JOB, None)]


def test_schedule_rebuilds_yesterday() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 28, 0, 30, tzinfo=UTC))
    request = yesterday_revenue_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-11-27"


def test_sensor_requests_run_the_job_into_marts(
    instance: dg.DagsterInstance, lake: Path, tmp_path: Path
) -> None:
    land(lake, [processed("alpha", 1001, Currency.RUB, datetime(2026, 11, 27, 8, tzinfo=UTC))])
    result = tick(instance, lake, None)
    assert isinstance(result, dg.SensorResult)
    marts = tmp_path / "marts"
    resources = {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(marts))}
    job = defs.resolve_job_def(DAILY_REVENUE_JOB)
    for request in result.run_requests or []:
        if request.job_name == DAILY_REVENUE_JOB:
            run = job.execute_in_process(partition_key=request.partition_key, resources=resources)
            assert {e.check_name: e.passed for e in run.get_asset_check_evaluations()} == {
                "event_id_unique": True,
                "gross_equals_share_plus_fee": True,
                "gross_reconciles_with_payments": True,
            }
    days = revenue_by_day(marts, "alpha")
    assert [
        (d.day.isoformat(), d.gross_rub_minor, d.streamer_share_minor, d.platform_fee_minor) for d in days
    ] == [("2026-11-27", 1001, 851, 150)]
