"""The revenue exploration and cohort retention notebooks run top to bottom over marts built by the real
assets, and print the figures worked out by hand in the fixture's docstring."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from assets.revenue import streamer_revenue_daily
from assets.stream_analytics import audience_daily
from pipelines.definitions import defs
from pipelines.rebuild import lake_days, resources_for
from services.lake import mart_glob
from services.lake_generator import GeneratorConfig, generate_lake
from services.marts import REVENUE_MART
from services.settings import Settings
from tests.fixture_lake import land, processed, reversal
from tests.fixture_views import beat, by

ROOT = Path(__file__).resolve().parents[2]
REVENUE = ROOT / "notebooks" / "revenue_exploration.ipynb"
COHORTS = ROOT / "notebooks" / "cohort_retention.ipynb"
MON1, TUE1, MON2, MON3 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 9), date(2026, 11, 16)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def build_marts(settings: Settings, days: list[date]) -> None:
    """The revenue and audience marts (and what they read), day by day, with their blocking checks."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    selection = dg.AssetSelection.assets(streamer_revenue_daily, audience_daily).upstream().materializable()
    for day in days:
        result = dg.materialize(
            [*assets, *(defs.asset_checks or [])],
            selection=selection,
            partition_key=day.isoformat(),
            resources=resources_for(defs, settings),
        )
        assert result.success


def execute(monkeypatch: pytest.MonkeyPatch, notebook: Path, marts: Path) -> tuple[str, set[str]]:
    """Run the notebook in a real kernel; return its printed text and the output types it made."""
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))  # the kernel inherits the environment
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return text, {o.output_type for o in outputs}


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days in three weeks (Mondays 2 and 9 and 16 November 2026, and Tuesday the 3rd).

    Donations (RUB, kopecks; donations split 85/15, half-up per payment):
      2nd: alpha 100000 by u1 (85000/15000), alpha 50000 anonymous (42500/7500), beta 20000 by u2 (17000/3000)
      3rd: the anonymous 50000 refunded, beta 30000 by u3 (25500/4500), u2's 20000 charged back
      9th: beta 10000 by u2 (8500/1500);  16th: alpha 40000 by u1 (34000/6000)
    Gross 250000 settled - 70000 reversed = 180000; streamers 153000; fee 27000 = 15.00%.
    Per day: 2nd 170000 (fee 25500), 3rd -40000 (-6000), 9th 10000 (1500), 16th 40000 (6000).
    Per channel: alpha 140000 / 119000 / 21000, beta 40000 / 34000 / 6000.
    Reversals took back 70000 / 250000 = 28.00%, chargebacks alone 20000 / 250000 = 8.00%.

    Viewing (signed-in, eligible): 2nd u1, u2 (plus an anonymous session and a headless u5: left out);
    3rd u3; 9th u1, u2, u4; 16th u1, u4.
    Viewer cohorts: week of the 2nd {u1, u2, u3}: w1 {u1, u2} 66.7%, w2 {u1} 33.3%; week of the 9th
    {u4}: w1 {u4} 100%. Donor cohorts (processed donations): week of the 2nd {u1, u2, u3}: w1 {u2}
    33.3%, w2 {u1} 33.3%.
    """
    root = tmp_path_factory.mktemp("notebooks")
    settings = Settings(data_dir=root, lake_dir=root / "lake", marts_dir=root / "marts")
    lake = settings.lake_root
    anonymous = processed("alpha", 50_000, "RUB", at(MON1, 12, 2))
    u2_gift = by("u2", processed("beta", 20_000, "RUB", at(MON1, 13, 1)))
    land(
        lake,
        [
            by("u1", processed("alpha", 100_000, "RUB", at(MON1, 12, 1))),
            anonymous,
            u2_gift,
            reversal(anonymous, at(TUE1, 10)),
            by("u3", processed("beta", 30_000, "RUB", at(TUE1, 12, 1))),
            reversal(u2_gift, at(TUE1, 11), chargeback=True),
            by("u2", processed("beta", 10_000, "RUB", at(MON2, 12, 1))),
            by("u1", processed("alpha", 40_000, "RUB", at(MON3, 12, 1))),
        ],
    )
    views = [
        beat("alpha", "s1", at(MON1, 12), at(MON1, 12, 3), user_id="u1", ip_hash="ip1"),
        beat("beta", "s2", at(MON1, 13), at(MON1, 13, 2), user_id="u2", ip_hash="ip2"),
        beat("alpha", "s3", at(MON1, 12), at(MON1, 12, 2), ip_hash="ip9"),
        beat("alpha", "s4", at(MON1, 12), at(MON1, 12, 5), user_id="u5", user_agent_class="headless"),
        beat("alpha", "s5", at(TUE1, 12), at(TUE1, 12, 2), user_id="u3", ip_hash="ip3"),
        beat("alpha", "s6", at(MON2, 12), at(MON2, 12, 2), user_id="u1", ip_hash="ip1"),
        beat("alpha", "s7", at(MON2, 12), at(MON2, 12, 2), user_id="u2", ip_hash="ip2"),
        beat("beta", "s8", at(MON2, 12), at(MON2, 12, 2), user_id="u4", ip_hash="ip4"),
        beat("beta", "s9", at(MON3, 12), at(MON3, 12, 2), user_id="u1", ip_hash="ip1"),
        beat("beta", "s10", at(MON3, 12), at(MON3, 12, 2), user_id="u4", ip_hash="ip4"),
    ]
    land(lake, views, topic="views")
    build_marts(settings, [MON1, TUE1, MON2, MON3])
    return settings.marts_root


def test_revenue_notebook_prints_the_hand_computed_figures(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    text, kinds = execute(monkeypatch, REVENUE, marts)
    assert f"{'donation':<14}{180000:>14}{153000:>14}{27000:>14}{'15.00%':>11}" in text
    assert "total gross: 180000 kopecks (1 800.00 RUB)" in text
    assert "streamers got: 153000 kopecks; platform fee: 27000 kopecks" in text
    assert "platform fee share: 15.00%" in text
    for day, gross, fee in (("2026-11-02", 170000, 25500), ("2026-11-03", -40000, -6000)):
        assert f"{day:<12}{gross:>14}{fee:>12}" in text
    for day, gross, fee in (("2026-11-09", 10000, 1500), ("2026-11-16", 40000, 6000)):
        assert f"{day:<12}{gross:>14}{fee:>12}" in text
    assert f"{'alpha':<22}{140000:>14}{119000:>14}{21000:>14}" in text
    assert f"{'beta':<22}{40000:>14}{34000:>14}{6000:>14}" in text
    assert f"{'donation.processed':<24}{6:>8}{250000:>14}" in text
    assert f"{'donation.refunded':<24}{1:>8}{-50000:>14}" in text
    assert f"{'donation.charged_back':<24}{1:>8}{-20000:>14}" in text
    assert "refunds and chargebacks took back 28.00% of settled donations" in text
    assert "chargebacks alone: 8.00%" in text
    assert "display_data" in kinds  # the chart


def test_cohort_notebook_prints_the_hand_computed_retention(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    text, kinds = execute(monkeypatch, COHORTS, marts)
    viewers, donors = text.split("donor retention")
    assert "  cohort 2026-11-02  size      3  w0 100.0%  w1  66.7%  w2  33.3%" in viewers
    assert "  cohort 2026-11-09  size      1  w0 100.0%  w1 100.0%" in viewers
    assert viewers.count("  cohort ") == 2  # nobody's first week is the 16th's
    assert "  cohort 2026-11-02  size      3  w0 100.0%  w1  33.3%  w2  33.3%" in donors
    assert donors.count("  cohort ") == 1
    assert "display_data" in kinds


def test_both_notebooks_run_on_empty_marts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text, _ = execute(monkeypatch, REVENUE, tmp_path / "marts")
    assert "No revenue marts yet" in text
    text, _ = execute(monkeypatch, COHORTS, tmp_path / "marts")
    assert "No signed-in viewers in the marts yet." in text
    assert "No signed-in donors in the marts yet." in text


@pytest.mark.slow
def test_notebooks_over_a_generated_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """At generated volume: both run, and the revenue total is the revenue mart's own sum."""
    settings = Settings(data_dir=tmp_path, lake_dir=tmp_path / "lake", marts_dir=tmp_path / "marts")
    generate_lake(settings.lake_root, GeneratorConfig(events=6_000, days=3, seed=8))
    build_marts(settings, lake_days(settings.lake_root))
    files = mart_glob(settings.marts_root, REVENUE_MART)
    ((gross,),) = duckdb.sql(f"SELECT sum(gross_rub_minor)::BIGINT FROM read_parquet('{files}')").fetchall()
    text, _ = execute(monkeypatch, REVENUE, settings.marts_root)
    assert f"total gross: {gross} kopecks" in text
    text, _ = execute(monkeypatch, COHORTS, settings.marts_root)
    assert (
        "viewer retention by first week watched" in text and "donor retention by first week donated" in text
    )
