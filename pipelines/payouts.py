"""`python -m pipelines.payouts run PERIOD`: build a period's payout batch with the Dagster job, in this
process, recorded in the Dagster instance of DAGSTER_HOME when set (so the run shows in the UI) or in an
ephemeral one otherwise. `efir payouts run` calls this as a subprocess, so the CLI never imports Dagster.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import dagster as dg

from assets.payouts import StreamerProfilesResource
from pipelines.instant_payouts import load_profiles, pay_instantly
from pipelines.payout_jobs import JOBS
from services.money import SETTLEMENT_CURRENCY, format_minor
from services.payout_store import PayoutBatchError, batch_info, batch_totals, read_batch
from services.payouts import Period, PeriodError
from services.settings import get_settings


def run_period(period: Period, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import defs

    job = defs.resolve_job_def(JOBS[period.schedule])
    return job.execute_in_process(partition_key=period.partition_key, instance=instance, raise_on_error=False)


def _failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            messages.append(
                user.description if user and user.description else (error.message if error else "")
            )
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            messages.append(f"check {evaluation.check_name} failed: {evaluation.metadata}")
    return [m.strip() for m in messages if m]


@click.group()
def main() -> None:
    """Payout batches from the Dagster jobs."""


@main.command()
@click.argument("period")
def run(period: str) -> None:
    """Build PERIOD's batch (2026-W48 for a week, 2026-11 for a month)."""
    try:
        parsed = Period.parse(period)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="PERIOD") from exc
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        result = run_period(parsed, instance)
    if not result.success:
        for message in _failure_messages(result) or ["the run failed"]:
            click.echo(f"error: {message}", err=True)
        sys.exit(1)
    marts = get_settings().marts_root
    totals = batch_totals(read_batch(marts, parsed))
    info = batch_info(marts, parsed)
    rub = SETTLEMENT_CURRENCY
    click.echo(
        f"{parsed}: {info.status} batch, {totals['payouts']} payout(s) of {totals['lines']} line(s); "
        f"gross {format_minor(totals['gross_minor'], rub)}, tax {format_minor(totals['tax_minor'], rub)}, "
        f"net {format_minor(totals['net_minor'], rub)}, carried {format_minor(totals['carried_minor'], rub)}"
    )


@main.command()
@click.argument("channel")
@click.option("--by", "by", required=True, help="Who asks for the payout (recorded in the audit log).")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), help="Pay the balance up to this day [yesterday].")
def instant(channel: str, by: str, day: datetime | None) -> None:
    """Pay a verified CHANNEL's balance now (built and approved at once; see pipelines.instant_payouts)."""
    settings = get_settings()
    upto = day.date() if day else datetime.now(UTC).date() - timedelta(days=1)
    try:
        profiles = load_profiles(Path(StreamerProfilesResource.from_settings(settings).path))
        line = pay_instantly(settings.marts_root, profiles, channel, upto, by=by)
    except PayoutBatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    gross, tax, net = (
        format_minor(m, SETTLEMENT_CURRENCY) for m in (line.gross_minor, line.tax_minor, line.net_minor)
    )
    click.echo(
        f"{line.period}: approved instant payout to {channel} by {by}: "
        f"gross {gross}, tax {tax}, net {net} ({line.payout_method})"
    )


if __name__ == "__main__":
    main()
