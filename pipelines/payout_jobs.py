"""The finance jobs that build payout batches, and the schedules that run them when a period closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.payouts import monthly_payout_batch, weekly_payout_batch
from services.payouts import Period, Schedule

WEEKLY_PAYOUTS_JOB = "weekly_payouts_job"
MONTHLY_PAYOUTS_JOB = "monthly_payouts_job"
WEEKLY_PAYOUTS_SCHEDULE = "weekly_payouts_schedule"
MONTHLY_PAYOUTS_SCHEDULE = "monthly_payouts_schedule"

# Selecting the asset selects its blocking checks: a batch that does not add up fails the run.
weekly_payouts_job = dg.define_asset_job(
    name=WEEKLY_PAYOUTS_JOB,
    selection=dg.AssetSelection.assets(weekly_payout_batch),
    description="Build the payout batch of one Monday-to-Sunday week (a draft until finance approves it).",
)
monthly_payouts_job = dg.define_asset_job(
    name=MONTHLY_PAYOUTS_JOB,
    selection=dg.AssetSelection.assets(monthly_payout_batch),
    description="Build the payout batch of one calendar month (a draft until finance approves it).",
)
JOBS = {Schedule.WEEKLY: WEEKLY_PAYOUTS_JOB, Schedule.MONTHLY: MONTHLY_PAYOUTS_JOB}


def period_before(schedule: Schedule, now: datetime) -> Period:
    """The period of `schedule` that ended before `now`'s UTC day began."""
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    if schedule is Schedule.WEEKLY:
        year, week, _ = yesterday.isocalendar()
        return Period.parse(f"{year}-W{week:02d}")
    return Period.parse(f"{yesterday.year}-{yesterday.month:02d}")


# Hours after midnight leave time for the nightly revenue rebuild (00:30) of the period's last day.
@dg.schedule(
    name=WEEKLY_PAYOUTS_SCHEDULE,
    job=weekly_payouts_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays at 03:00 UTC, build last week's payout batch.",
)
def weekly_payouts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Build the week that ended yesterday (Sunday)."""
    period = period_before(Schedule.WEEKLY, context.scheduled_execution_time or datetime.now(UTC))
    return dg.RunRequest(partition_key=period.partition_key, run_key=f"payouts:{period.name}")


@dg.schedule(
    name=MONTHLY_PAYOUTS_SCHEDULE,
    job=monthly_payouts_job,
    cron_schedule="0 4 1 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="On the 1st at 04:00 UTC, build last month's payout batch.",
)
def monthly_payouts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Build the month that ended yesterday."""
    period = period_before(Schedule.MONTHLY, context.scheduled_execution_time or datetime.now(UTC))
    return dg.RunRequest(partition_key=period.partition_key, run_key=f"payouts:{period.name}")
