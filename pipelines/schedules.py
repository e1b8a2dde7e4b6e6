"""The nightly rebuild of yesterday, the day that can no longer receive events."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from pipelines.jobs import daily_fraud_job, daily_revenue_job, fraud_model_job

YESTERDAY_REVENUE_SCHEDULE = "yesterday_revenue_schedule"
YESTERDAY_FRAUD_SCHEDULE = "yesterday_fraud_schedule"
WEEKLY_FRAUD_MODEL_SCHEDULE = "weekly_fraud_model_schedule"


def _yesterday(context: dg.ScheduleEvaluationContext) -> str:
    """The UTC day before the tick: the newest day that can no longer receive events."""
    now = context.scheduled_execution_time or datetime.now(UTC)
    return (now.astimezone(UTC).date() - timedelta(days=1)).isoformat()


# A hand-written schedule: build_schedule_from_partitioned_job targets the last partition, which is
# today because DAILY has end_offset=1; the nightly run must close yesterday.
@dg.schedule(
    name=YESTERDAY_REVENUE_SCHEDULE,
    job=daily_revenue_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:30 UTC rebuild yesterday's donation marts, catching events the sensor missed.",
)
def yesterday_revenue_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Rebuild the previous UTC day in full once it has closed."""
    day = _yesterday(context)
    return dg.RunRequest(partition_key=day, run_key=f"nightly:{day}")


@dg.schedule(
    name=YESTERDAY_FRAUD_SCHEDULE,
    job=daily_fraud_job,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 01:00 UTC score yesterday's closed day of donations and fill the fraud review queue.",
)
def yesterday_fraud_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Scores wait for the closed day: a day's velocity features change until its last donation lands;
    card testing in progress is the edge rules' job, in real time."""
    day = _yesterday(context)
    return dg.RunRequest(partition_key=day, run_key=f"fraud:{day}")


@dg.schedule(
    name=WEEKLY_FRAUD_MODEL_SCHEDULE,
    job=fraud_model_job,
    cron_schedule="30 0 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 00:30 UTC: retrain the fraud model on the history, with a week's new chargebacks.",
)
def weekly_fraud_model_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(run_key=f"fraud-model:{now.astimezone(UTC).date().isoformat()}")
