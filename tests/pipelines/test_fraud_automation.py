"""The fraud jobs and schedules as Dagster runs them: score a closed day, retrain weekly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs
from pipelines.jobs import DAILY_FRAUD_JOB, FRAUD_MODEL_JOB
from pipelines.schedules import weekly_fraud_model_schedule, yesterday_fraud_schedule
from services.fraud_patterns import labelled_donations
from tests.assets.test_fraud_assets import resources
from tests.fixture_lake import land

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def test_schedules_score_yesterday_and_retrain_on_mondays() -> None:
    nightly = yesterday_fraud_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 28, 1, tzinfo=UTC))
    )
    assert isinstance(nightly, dg.RunRequest) and nightly.partition_key == "2026-11-27"
    weekly = weekly_fraud_model_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 30, 0, 30, tzinfo=UTC))
    )
    assert isinstance(weekly, dg.RunRequest) and weekly.run_key == "fraud-model:2026-11-30"


def test_scoring_needs_a_model_then_fills_the_queue(lake: Path, tmp_path: Path) -> None:
    land(lake, labelled_donations(5, ["alpha"], DAY, 1, donations=300, rings=8))
    res = resources(lake, tmp_path / "marts")
    daily = defs.resolve_job_def(DAILY_FRAUD_JOB)
    first = daily.execute_in_process(partition_key="2026-11-20", resources=res, raise_on_error=False)
    assert not first.success
    failures = [e.step_failure_data.user_failure_data for e in first.all_events if e.is_step_failure]
    assert any(f and "materialise fraud_model first" in (f.description or "") for f in failures)

    assert defs.resolve_job_def(FRAUD_MODEL_JOB).execute_in_process(resources=res).success
    second = daily.execute_in_process(partition_key="2026-11-20", resources=res)
    assert second.success
    evaluations = {e.check_name: e.passed for e in second.get_asset_check_evaluations()}
    assert evaluations and all(evaluations.values()), evaluations
