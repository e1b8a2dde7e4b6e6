"""Rebuild every asset of the code location over a whole lake: what a full backfill costs.

Why a module: the rebuild benchmark measures it at 10 million events and a test runs it over a small
generated lake with every asset check; both must pick up whatever assets `pipelines.definitions` holds
(fraud, recommendations and later ones) without being edited. The plan is derived from the definitions:
assets are taken in dependency order and cut into phases of one partitioning each (daily, weekly,
monthly, none). A daily phase runs day by day, oldest first (some assets read earlier partitions), a
weekly or monthly phase runs every period that lies wholly inside the lake's days, an unpartitioned
phase runs once. Each run is `dagster.materialize` in process, with the assets' checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from services.lake import MANIFESTS, manifests
from services.settings import Settings


@dataclass
class Phase:
    """Assets of one partitioning that can run together once the earlier phases are done."""

    partitions: dg.PartitionsDefinition | None
    keys: list[dg.AssetKey] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.partitions is None:
            return "unpartitioned"
        if isinstance(self.partitions, dg.TimeWindowPartitionsDefinition):
            cron = self.partitions.cron_schedule
            return {"0 0 * * *": "daily", "0 0 * * 1": "weekly", "0 0 1 * *": "monthly"}.get(cron, cron)
        return type(self.partitions).__name__


@dataclass
class RebuildReport:
    """Seconds per step (asset or check op), summed over partitions; runs; failures; check results."""

    step_seconds: dict[str, float] = field(default_factory=dict)
    step_runs: dict[str, int] = field(default_factory=dict)
    phases: list[str] = field(default_factory=list)
    runs: int = 0
    failed_runs: list[str] = field(default_factory=list)
    checks_passed: int = 0
    failed_checks: list[str] = field(default_factory=list)  # blocking ones: the rebuild is wrong
    warnings: list[str] = field(default_factory=list)  # non-blocking checks that did not pass
    seconds: float = 0.0


def lake_days(lake: Path) -> list[date]:
    """The event days the committed manifests cover (files named in a manifest exist by contract)."""
    days = set()
    for manifest in manifests(lake):
        for rel in manifest.files:
            folder = Path(rel).parent.name
            if folder.startswith("date="):
                days.add(date.fromisoformat(folder.removeprefix("date=")))
    if not days and (lake / MANIFESTS).exists():
        raise ValueError(f"{lake} has manifests but no dated files")
    return sorted(days)


def resources_for(defs: dg.Definitions, settings: Settings) -> dict[str, Any]:
    """The definitions' resources rebuilt from `settings` (every Efir resource has `from_settings`), so a
    rebuild reads and writes only the folders `settings` names."""
    out: dict[str, Any] = {}
    for name, resource in (defs.resources or {}).items():
        factory = getattr(type(resource), "from_settings", None)
        out[name] = factory(settings) if callable(factory) else resource
    return out


def _assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [a for a in (defs.assets or []) if isinstance(a, dg.AssetsDefinition)]


def plan(defs: dg.Definitions) -> list[Phase]:
    """Phases in dependency order: each takes every runnable asset of one partitioning (daily first),
    then the assets of that partitioning that depend only on done or same-phase assets."""
    partitions: dict[dg.AssetKey, dg.PartitionsDefinition | None] = {}
    upstream: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for a in _assets(defs):
        for key in a.keys:
            partitions[key] = a.partitions_def
            upstream[key] = set(a.asset_deps.get(key, set()))
    for key in upstream:
        upstream[key] &= set(partitions)  # lake specs are not built
    done: set[dg.AssetKey] = set()
    phases: list[Phase] = []

    def rank(p: dg.PartitionsDefinition | None) -> tuple[int, str]:
        return (
            (0, "")
            if isinstance(p, dg.TimeWindowPartitionsDefinition) and p.cron_schedule == "0 0 * * *"
            else ((1, str(p)) if p is not None else (2, ""))
        )

    while len(done) < len(partitions):
        ready = [k for k in partitions if k not in done and upstream[k] <= done]
        if not ready:
            raise ValueError(
                f"dependency cycle among {sorted(k.to_user_string() for k in partitions if k not in done)}"
            )
        kind = min((partitions[k] for k in ready), key=rank)
        phase = Phase(kind)
        grew = True
        while grew:
            grew = False
            for k in partitions:
                if k in done or k in phase.keys or partitions[k] is not kind:
                    continue
                if upstream[k] <= done | set(phase.keys):
                    phase.keys.append(k)
                    grew = True
        done |= set(phase.keys)
        phases.append(phase)
    return phases


def partition_keys(phase: Phase, days: list[date]) -> list[str | None]:
    """Every partition of the phase inside the lake's days: each day, each whole week or month."""
    if phase.partitions is None:
        return [None]
    if not isinstance(phase.partitions, dg.TimeWindowPartitionsDefinition):
        raise ValueError(f"cannot rebuild partitions {phase.partitions!r}")
    first = datetime.combine(days[0], datetime.min.time(), UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC)
    keys: list[str | None] = []
    for key in phase.partitions.get_partition_keys(current_time=end + timedelta(days=1)):
        window = phase.partitions.time_window_for_partition_key(key)
        if window.start >= first and window.end <= end:
            keys.append(key)
    return keys


def rebuild(
    defs: dg.Definitions,
    settings: Settings,
    *,
    days: list[date] | None = None,
    echo: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Materialise every asset of `defs` over every partition of the lake `settings` names."""
    say = echo or (lambda _: None)
    days = days if days is not None else lake_days(settings.lake_root)
    if not days:
        raise ValueError(f"no landed days in {settings.lake_root}")
    assets: list[Any] = [*_assets(defs), *(defs.asset_checks or [])]
    resources = resources_for(defs, settings)
    report = RebuildReport()
    blocking = {
        (spec.asset_key, spec.name)
        for checks in defs.asset_checks or []
        if isinstance(checks, dg.AssetChecksDefinition)
        for spec in checks.check_specs
        if spec.blocking
    }
    started = time.monotonic()
    for phase in plan(defs):
        keys = partition_keys(phase, days)
        names = ", ".join(k.to_user_string() for k in phase.keys)
        report.phases.append(f"{phase.label} x{len(keys)}: {names}")
        say(f"phase {phase.label} over {len(keys)} partitions: {names}")
        for key in keys:
            t0 = time.monotonic()
            result = dg.materialize(
                assets,
                selection=phase.keys,
                partition_key=key,
                resources=resources,
                raise_on_error=False,
            )
            report.runs += 1
            _collect(result, report, key, blocking)
            say(f"  {key or 'once'}: {'ok' if result.success else 'FAILED'} in {time.monotonic() - t0:.1f} s")
    report.seconds = time.monotonic() - started
    return report


def _collect(
    result: dg.ExecuteInProcessResult,
    report: RebuildReport,
    key: str | None,
    blocking: set[tuple[dg.AssetKey, str]],
) -> None:
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS" and event.step_key is not None:
            data = event.event_specific_data
            seconds = float(getattr(data, "duration_ms", 0.0) or 0.0) / 1000
            report.step_seconds[event.step_key] = report.step_seconds.get(event.step_key, 0.0) + seconds
            report.step_runs[event.step_key] = report.step_runs.get(event.step_key, 0) + 1
        elif event.event_type_value == "STEP_FAILURE":
            report.failed_runs.append(f"{key}: {event.step_key}: {event.message}")
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            report.checks_passed += 1
        else:
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            found = (
                report.failed_checks
                if (evaluation.asset_key, evaluation.check_name) in blocking
                else report.warnings
            )
            found.append(f"{key}: {name} {dict(evaluation.metadata)}"[:500])
    if not result.success and not report.failed_runs:
        report.failed_runs.append(f"{key}: run failed")
