"""The full rebuild (`pipelines.rebuild`) plans every asset of the code location and, over a small
generated lake, materialises them all with every blocking asset check passing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.rebuild import lake_days, partition_keys, plan, rebuild
from services.lake import mart_dir
from services.lake_generator import GeneratorConfig, generate_lake
from services.settings import Settings


def test_the_plan_covers_every_asset_after_its_upstreams() -> None:
    phases = plan(defs)
    order = {key: i for i, phase in enumerate(phases) for key in phase.keys}
    built = {key for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) for key in a.keys}
    assert set(order) == built
    for a in defs.assets or []:
        if not isinstance(a, dg.AssetsDefinition):
            continue
        for key in a.keys:
            for up in a.asset_deps.get(key, set()):
                if up in order:
                    assert order[up] <= order[key], f"{up} runs after {key}"
    assert phases[0].label == "daily"


def test_periods_are_only_the_whole_ones_inside_the_lake() -> None:
    weekly = next(p for p in plan(defs) if p.label == "weekly")
    # 2026-10-05 is a Monday: 15 days hold two whole weeks and a partial third.
    days = [date(2026, 10, 5 + i) for i in range(15)]
    assert partition_keys(weekly, days) == ["2026-10-05", "2026-10-12"]
    assert partition_keys(weekly, days[1:]) == ["2026-10-12"]


@pytest.mark.slow
def test_every_asset_rebuilds_over_a_generated_lake_with_its_checks(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, lake_dir=tmp_path / "lake", marts_dir=tmp_path / "marts")
    generate_lake(settings.lake_root, GeneratorConfig(events=8_000, days=3, start=date(2026, 10, 5), seed=4))
    days = lake_days(settings.lake_root)
    assert days == [date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)]
    report = rebuild(defs, settings)
    assert report.failed_runs == []
    assert report.failed_checks == []
    assert report.checks_passed > 0
    # Every daily asset wrote its marts for every day (the plan ran each one, in order).
    for phase in plan(defs):
        if phase.label != "daily":
            continue
        for key in phase.keys:
            assert report.step_runs[key.to_python_identifier()] == len(days), key
    assert sorted(p.name for p in mart_dir(settings.marts_root, "donations").iterdir()) == [
        f"date={d.isoformat()}" for d in days
    ]
