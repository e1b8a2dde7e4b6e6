"""The nightly rebuild of yesterday, the day that can no longer receive events."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from pipelines.jobs import daily_revenue_job

YESTERDAY_REVENUE_SCHEDULE = "yesterday_revenue_schedule"


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
    now = context.scheduled_execution_time or datetime.now(UTC)
    day = (now.astimezone(UTC).date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(partition_key=day, run_key=f"nightly:{day}")
