"""Payout batches: weekly and monthly, built from the streamer revenue mart and the earlier batches.

Each period's batch is a file set in the marts (`services.payout_store`), not a daily mart partition: it is
written once per period, rebuilt only while it is a draft, and final once finance approves it. The rules
(ledger balance, 1,000 ₽ threshold, tax by status) are `services.payouts` and `services.tax`; this module
reads the inputs, applies them and checks the result.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from assets.resources import MartsResource
from assets.revenue import streamer_revenue_daily
from services.lake import mart_dir, mart_partition_path
from services.marts import REVENUE_MART
from services.payout_store import (
    PayoutBatchError,
    batch_periods,
    batch_totals,
    check_order,
    prior_payouts,
    read_batch,
    write_batch,
)
from services.payouts import (
    Period,
    ProfilesError,
    Schedule,
    StreamerProfiles,
    accruals_by_payer,
    build_lines,
    line_errors,
)
from services.settings import Settings
from services.tax import TaxTables

GROSS_MINUS_TAX_EQUALS_NET = "gross_minus_tax_equals_net"
PAYOUTS_RECONCILE_WITH_BALANCES = "payouts_reconcile_with_balances"
PROFILES_FILE = "streamer_profiles.yaml"

# Weeks start on Monday (day_offset=1); a period's partition exists once it has ended, so the schedules'
# "last partition" is the period that just closed.
WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2024-01-01", day_offset=1, timezone="UTC")
MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")


class StreamerProfilesResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Streamers' tax status, payout method, schedule and verification, from a YAML file of
    `channel_id: {tax_status, payout_method, schedule, verified}` (the node has no profiles yet; a channel
    missing from the file, or no file, gets the default: individual, bank transfer, weekly)."""

    path: str

    def load(self) -> StreamerProfiles:
        try:
            return StreamerProfiles.load(Path(self.path))
        except ProfilesError as exc:
            raise dg.Failure(description=str(exc)) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> "StreamerProfilesResource":
        return cls(path=str(settings.data_dir / PROFILES_FILE))


_SHARES = """
SELECT channel_id, source,
       sum(streamer_share_minor)::BIGINT AS to_date,
       coalesce(sum(streamer_share_minor) FILTER (WHERE day >= $start), 0)::BIGINT AS in_period
FROM read_parquet($files, hive_partitioning = false)
WHERE day <= $end
GROUP BY channel_id, source
ORDER BY channel_id, source
"""


def revenue_files(marts: Path, period: Period) -> list[str]:
    """Every revenue-mart day up to the period's end; fails when a day of the period itself is missing,
    because a missing day would silently pay less."""
    missing = [d for d in period.days() if not mart_partition_path(marts, REVENUE_MART, d).exists()]
    if missing:
        raise dg.Failure(
            description=f"the {REVENUE_MART} mart lacks {len(missing)} day(s) of {period} "
            f"({', '.join(d.isoformat() for d in missing[:7])}): materialise them first"
        )
    files = sorted(mart_dir(marts, REVENUE_MART).glob("date=*/part.parquet"))
    return [str(f) for f in files if date.fromisoformat(f.parent.name.removeprefix("date=")) <= period.end]


def shares(marts: Path, period: Period) -> list[tuple[str, str, int, int]]:
    """(channel, source, streamer share up to the period's end, share within the period)."""
    con = duckdb.connect()
    try:
        rows: list[tuple[str, str, int, int]] = con.sql(
            _SHARES,
            params={"files": revenue_files(marts, period), "start": period.start, "end": period.end},
        ).fetchall()
        return rows
    finally:
        con.close()


def build_batch(
    context: dg.AssetExecutionContext, schedule: Schedule, marts: Path, profiles: StreamerProfiles
) -> dg.MaterializeResult:
    period = Period.from_partition_key(schedule, context.partition_key)
    try:
        check_order(marts, period)
        tables = TaxTables.load()
        lines = build_lines(
            period,
            profiles,
            tables,
            accruals_by_payer(tables, shares(marts, period)),
            prior_payouts(marts, excluding=period),
        )
        outcome = write_batch(marts, period, lines, actor=f"dagster:{context.run.run_id}")
    except PayoutBatchError as exc:
        raise dg.Failure(description=str(exc)) from exc
    totals = batch_totals(read_batch(marts, period))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(outcome.path)),
            "period": period.name,
            "batch_sha256": outcome.sha256,
            "written": outcome.written,
            "dagster/row_count": totals["lines"],
            **totals,
        }
    )


@dg.asset(
    partitions_def=WEEKLY,
    deps=[streamer_revenue_daily],
    group_name="payouts",
    kinds={"duckdb", "parquet", "csv"},
)
def weekly_payout_batch(
    context: dg.AssetExecutionContext, marts: MartsResource, streamer_profiles: StreamerProfilesResource
) -> dg.MaterializeResult:
    """The Monday-to-Sunday batch of weekly-paid streamers: balance = shares to date − earlier payouts;
    ≥ 1,000 ₽ is paid whole less tax by status, less is carried (negative too); a draft until approved."""
    return build_batch(context, Schedule.WEEKLY, marts.path, streamer_profiles.load())


@dg.asset(
    partitions_def=MONTHLY,
    deps=[streamer_revenue_daily],
    group_name="payouts",
    kinds={"duckdb", "parquet", "csv"},
)
def monthly_payout_batch(
    context: dg.AssetExecutionContext, marts: MartsResource, streamer_profiles: StreamerProfilesResource
) -> dg.MaterializeResult:
    """The calendar-month batch of monthly-paid streamers, by the same rules as the weekly one."""
    return build_batch(context, Schedule.MONTHLY, marts.path, streamer_profiles.load())


def _checked_periods(context: dg.AssetCheckExecutionContext, schedule: Schedule, marts: Path) -> list[Period]:
    """The run's period, or every batch of the schedule when the check runs on its own."""
    if context.has_partition_key:
        return [Period.from_partition_key(schedule, context.partition_key)]
    return [p for p in batch_periods(marts) if p.schedule is schedule]


def _lines_add_up(
    context: dg.AssetCheckExecutionContext, schedule: Schedule, marts: Path
) -> dg.AssetCheckResult:
    errors = [
        f"{period}: {error}"
        for period in _checked_periods(context, schedule, marts)
        for error in line_errors(read_batch(marts, period).to_pylist())
    ]
    return dg.AssetCheckResult(
        passed=not errors, metadata={"errors": len(errors), "first_errors": errors[:10]}
    )


_LEDGER = """
SELECT coalesce(sum(streamer_share_minor), 0)::BIGINT FROM read_parquet($files, hive_partitioning = false)
WHERE day <= $end AND list_contains($channels, channel_id)
"""


def _reconcile(
    context: dg.AssetCheckExecutionContext, schedule: Schedule, marts: Path
) -> dg.AssetCheckResult:
    """Σ payouts + Σ carried == Σ balances, and Σ balances == the revenue mart's shares to date for the
    batch's channels − what earlier batches paid them, recomputed here independently of the asset."""
    problems: list[str] = []
    for period in _checked_periods(context, schedule, marts):
        rows = read_batch(marts, period).to_pylist()
        balances = sum(r["balance_minor"] for r in rows)
        paid = sum(r["gross_minor"] for r in rows)
        carried = sum(r["carried_out_minor"] for r in rows)
        if paid + carried != balances:
            problems.append(f"{period}: paid {paid} + carried {carried} != balances {balances}")
        channels = sorted({r["channel_id"] for r in rows})
        con = duckdb.connect()
        try:
            ((accrued,),) = con.sql(
                _LEDGER,
                params={"files": revenue_files(marts, period), "end": period.end, "channels": channels},
            ).fetchall()
        finally:
            con.close()
        earlier = sum(
            p.gross_minor
            for p in prior_payouts(marts, excluding=period)
            if p.period_end <= period.end and p.channel_id in channels
        )
        if accrued - earlier != balances:
            problems.append(f"{period}: shares {accrued} - earlier payouts {earlier} != balances {balances}")
    return dg.AssetCheckResult(passed=not problems, metadata={"problems": problems[:10]})


@dg.asset_check(asset=weekly_payout_batch, name=GROSS_MINUS_TAX_EQUALS_NET, blocking=True)
def weekly_gross_minus_tax_equals_net(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Every line of the batch adds up to the kopeck: gross − tax == net, balance == paid + carried."""
    return _lines_add_up(context, Schedule.WEEKLY, marts.path)


@dg.asset_check(asset=weekly_payout_batch, name=PAYOUTS_RECONCILE_WITH_BALANCES, blocking=True)
def weekly_payouts_reconcile_with_balances(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Payouts plus carried balances equal the balances, which equal revenue to date less earlier payouts."""
    return _reconcile(context, Schedule.WEEKLY, marts.path)


@dg.asset_check(asset=monthly_payout_batch, name=GROSS_MINUS_TAX_EQUALS_NET, blocking=True)
def monthly_gross_minus_tax_equals_net(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Every line of the batch adds up to the kopeck: gross − tax == net, balance == paid + carried."""
    return _lines_add_up(context, Schedule.MONTHLY, marts.path)


@dg.asset_check(asset=monthly_payout_batch, name=PAYOUTS_RECONCILE_WITH_BALANCES, blocking=True)
def monthly_payouts_reconcile_with_balances(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Payouts plus carried balances equal the balances, which equal revenue to date less earlier payouts."""
    return _reconcile(context, Schedule.MONTHLY, marts.path)


PAYOUT_ASSETS = [weekly_payout_batch, monthly_payout_batch]
PAYOUT_CHECKS = [
    weekly_gross_minus_tax_equals_net,
    weekly_payouts_reconcile_with_balances,
    monthly_gross_minus_tax_equals_net,
    monthly_payouts_reconcile_with_balances,
]
