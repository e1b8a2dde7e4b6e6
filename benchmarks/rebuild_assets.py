"""Full rebuild of every asset over a generated lake: wall time per asset and in total, peak memory.

Runs `pipelines.rebuild` (every asset of `pipelines.definitions`, picked up automatically, over every
day, week and month of the lake, with all asset checks) in this process, while a sampler records the
resident memory of the process and its children. Then, on the lake's busiest day, it times the heaviest
lake reads both ways, DuckDB (what the assets use) against Polars, so the choice is measured here:

* donations: the day's money events, filtered and deduplicated by event_id (`assets.donations`), plus
  the per-event rouble valuation that follows it;
* viewing sessions: heartbeats expanded to the distinct (channel, session, minute) they touch, the core
  of `assets.stream_analytics`.

    uv run python benchmarks/generate_lake.py --lake /tmp/efir10m/lake
    uv run python benchmarks/rebuild_assets.py --root /tmp/efir10m   # reads ROOT/lake, writes ROOT/marts
    uv run python benchmarks/rebuild_assets.py --root /tmp/efir10m --days 7   # the first 7 days only

The machine is shared and noisy: the load average is printed before and after, and the DuckDB/Polars
comparison runs both sides back to back on the same files in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
import psutil  # noqa: E402

from assets.donations import MONEY_EVENTS, read_money_events, value_in_rub  # noqa: E402
from pipelines.rebuild import lake_days, rebuild  # noqa: E402
from services.events import ViewHeartbeat  # noqa: E402
from services.fx import FxTable  # noqa: E402
from services.lake import partition_dir  # noqa: E402
from services.settings import Settings  # noqa: E402


class MemorySampler:
    """Peak resident memory of this process plus its children, sampled every `every` seconds."""

    def __init__(self, every: float = 0.25) -> None:
        self.every, self.peak = every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                rss = 0
            self.peak = max(self.peak, rss)
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best of `repeat` wall times (the least disturbed by the neighbours) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def busiest_day(lake: Path, days: list[date], topic: str) -> date:
    return max(
        days, key=lambda d: sum(p.stat().st_size for p in partition_dir(lake, topic, d).glob("*.parquet"))
    )


def polars_money_events(lake: Path, day: date) -> pl.DataFrame:
    files = sorted(str(p) for p in partition_dir(lake, "donations", day).glob("*.parquet"))
    return (
        pl.scan_parquet(files, hive_partitioning=False)
        .filter(pl.col("event_type").is_in(list(MONEY_EVENTS)))
        .sort("kafka_partition", "kafka_offset")
        .unique("event_id", keep="first", maintain_order=True)
        .sort("occurred_at", "event_id")
        .collect()
    )


_DUCK_MINUTES = """
SELECT count(*) FROM (
  SELECT DISTINCT channel_id, session_id, minute FROM (
    SELECT channel_id, session_id,
           unnest(range(date_trunc('minute', window_start)::TIMESTAMP,
                        date_trunc('minute', window_end)::TIMESTAMP + INTERVAL 1 MINUTE,
                        INTERVAL 1 MINUTE)) AS minute
    FROM read_parquet($files, union_by_name = true, hive_partitioning = false)
    WHERE event_type = $type AND bytes > 0 AND segments > 0
  ) WHERE minute::DATE = $day::DATE)
"""


def duckdb_session_minutes(files: list[str], day: date) -> int:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        ((count,),) = con.sql(
            _DUCK_MINUTES, params={"files": files, "type": ViewHeartbeat.event_type, "day": day.isoformat()}
        ).fetchall()
        return int(count)
    finally:
        con.close()


def polars_session_minutes(files: list[str], day: date) -> int:
    return (
        pl.scan_parquet(files, hive_partitioning=False)
        .filter(
            (pl.col("event_type") == ViewHeartbeat.event_type)
            & (pl.col("bytes") > 0)
            & (pl.col("segments") > 0)
        )
        .select(
            "channel_id",
            "session_id",
            pl.datetime_ranges(
                pl.col("window_start").dt.truncate("1m"), pl.col("window_end").dt.truncate("1m"), "1m"
            ).alias("minute"),
        )
        .explode("minute")
        .filter(pl.col("minute").dt.date() == day)
        .unique()
        .select(pl.len())
        .collect()
        .item()
    )


def compare_engines(lake: Path, days: list[date]) -> dict[str, Any]:
    """DuckDB against Polars on the busiest day's donations and heartbeats (same files, same answers)."""
    out: dict[str, Any] = {}
    day = busiest_day(lake, days, "donations")
    duck_s, duck_rows = timed(lambda: read_money_events(lake, day))
    polars_s, polars_rows = timed(lambda: polars_money_events(lake, day))
    assert len(duck_rows) == polars_rows.height, (len(duck_rows), polars_rows.height)
    value_s, _ = timed(lambda: value_in_rub(duck_rows, FxTable.load()), repeat=1)
    out["donations"] = {
        "day": day.isoformat(),
        "money_events": len(duck_rows),
        "duckdb_read_s": round(duck_s, 3),
        "polars_read_s": round(polars_s, 3),
        "python_valuation_s": round(value_s, 3),
    }
    day = busiest_day(lake, days, "views")
    files = sorted(str(p) for p in partition_dir(lake, "views", day).glob("*.parquet"))
    duck_s, duck_n = timed(lambda: duckdb_session_minutes(files, day))
    polars_s, polars_n = timed(lambda: polars_session_minutes(files, day))
    assert duck_n == polars_n, (duck_n, polars_n)
    out["session_minutes"] = {
        "day": day.isoformat(),
        "heartbeat_files": len(files),
        "session_minutes": duck_n,
        "duckdb_s": round(duck_s, 3),
        "polars_s": round(polars_s, 3),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="folder holding lake/ (marts/ is rebuilt)")
    parser.add_argument("--days", type=int, default=None, help="only the first N days of the lake")
    parser.add_argument("--skip-engines", action="store_true", help="skip the DuckDB/Polars comparison")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    settings = Settings(data_dir=args.root, lake_dir=args.root / "lake", marts_dir=args.root / "marts")
    days = lake_days(settings.lake_root)
    if args.days:
        days = days[: args.days]
    shutil.rmtree(settings.marts_root, ignore_errors=True)  # a full rebuild starts from nothing
    lake_bytes = sum(p.stat().st_size for p in settings.lake_root.rglob("*.parquet"))
    print(
        f"lake {settings.lake_root}: {lake_bytes / 2**20:,.0f} MiB, days {days[0]}..{days[-1]} ({len(days)})"
    )
    print(f"load average before: {load()}")

    from pipelines.definitions import defs  # after the settings: importing builds the definitions

    with MemorySampler() as sampler:
        report = rebuild(defs, settings, days=days, echo=print)
    rusage_mb = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1024
    )
    print(f"\nload average after: {load()}")
    print(
        f"{report.runs} runs in {report.seconds:,.1f} s; checks passed {report.checks_passed}, "
        f"blocking failed {len(report.failed_checks)}, non-blocking failed {len(report.warnings)}"
    )
    for line in report.failed_runs[:10] + report.failed_checks[:10]:
        print(f"  FAILED {line}")
    for line in report.warnings[:10]:
        print(f"  warning (non-blocking check) {line}")
    total_steps = sum(report.step_seconds.values())
    print(f"\n{'step (asset or check)':<58}{'seconds':>9}{'share':>8}{'runs':>6}")
    for step, seconds in sorted(report.step_seconds.items(), key=lambda kv: -kv[1]):
        print(f"{step:<58}{seconds:>9.1f}{seconds / total_steps:>8.1%}{report.step_runs[step]:>6}")
    print(f"{'sum of steps':<58}{total_steps:>9.1f}")
    print(
        f"peak RSS: sampled {sampler.peak / 2**20:,.0f} MiB (process + children), "
        f"ru_maxrss {rusage_mb:,.0f} MiB"
    )
    figures: dict[str, Any] = {
        "days": len(days),
        "lake_mib": round(lake_bytes / 2**20, 1),
        "runs": report.runs,
        "wall_s": round(report.seconds, 1),
        "steps_s": {k: round(v, 2) for k, v in report.step_seconds.items()},
        "peak_rss_mib": round(sampler.peak / 2**20),
        "ru_maxrss_mib": round(rusage_mb),
        "checks_passed": report.checks_passed,
        "failed": report.failed_runs + report.failed_checks,
        "non_blocking_failed": report.warnings,
        "phases": report.phases,
    }
    if not args.skip_engines:
        print(f"\nDuckDB vs Polars on the busiest days (best of 3; load {load()}):")
        figures["engines"] = compare_engines(settings.lake_root, days)
        for name, result in figures["engines"].items():
            print(f"  {name}: {result}")
    figures["load_after"] = load()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if not (report.failed_runs or report.failed_checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
