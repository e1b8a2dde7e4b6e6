"""How long each dashboard page takes to render over a marts folder (e.g. the 10M-event lake's).

Each page is run the way Streamlit runs it (AppTest, signed in as a finance account that sees every
channel), several times, and its median wall time is printed beside the baseline of the same run: a
bare page that reads the same revenue mart with DuckDB and renders it as one table, which is the floor
any page over these marts pays. The target is under 2 s per page.

    uv run python benchmarks/dashboard_render.py --marts data/bench-lake/marts [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.dashboard_accounts import AccountStore  # noqa: E402

APP = REPO / "dashboards" / "app.py"
PAGES = ["pages/streamer.py", "pages/audience.py", "pages/finance.py", "pages/moderation.py"]
PASSWORD = "benchmark-password"
BASELINE = """
import duckdb, streamlit as st
from services.lake import mart_dir
from services.marts import REVENUE_MART
from services.settings import Settings
files = sorted(str(p) for p in mart_dir(Settings().marts_root, REVENUE_MART).glob("date=*/part.parquet"))
st.title("Baseline")
if files:
    st.dataframe(duckdb.sql(
        "SELECT day, channel_id, sum(gross_rub_minor) AS gross "
        "FROM read_parquet($f, hive_partitioning=false) GROUP BY ALL ORDER BY day DESC LIMIT 500",
        params={"f": files}).df())
"""


def _signed_in() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=300).run()
    app.text_input(key="signin_username").input("bench")
    app.text_input(key="signin_password").input(PASSWORD)
    return app.button[0].click().run()


def _time_page(page: str, repeats: int) -> float:
    app = _signed_in()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.switch_page(page).run()
        runs.append(time.perf_counter() - started)
        if app.exception:
            raise RuntimeError(f"{page}: {[e.value for e in app.exception]}")
    return statistics.median(runs)


def _time_baseline(repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        app = AppTest.from_string(BASELINE, default_timeout=300)
        started = time.perf_counter()
        app.run()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--marts", type=Path, required=True, help="marts folder the assets wrote")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    accounts = Path(tempfile.mkdtemp()) / "accounts.json"
    AccountStore(accounts).add("bench", "finance", [], PASSWORD)
    os.environ.update(EFIR_MARTS_DIR=str(args.marts.resolve()), EFIR_DASHBOARD_ACCOUNTS_FILE=str(accounts))
    files = sum(1 for _ in args.marts.rglob("*.parquet"))
    size = sum(p.stat().st_size for p in args.marts.rglob("*.parquet")) / 2**20
    print(f"marts: {args.marts} ({files} Parquet files, {size:.1f} MiB); load average {os.getloadavg()}")
    baseline = _time_baseline(args.repeats)
    print(f"{'baseline (one DuckDB query, one table)':<42}{baseline:7.2f} s")
    for page in PAGES:
        seconds = _time_page(page, args.repeats)
        verdict = "ok" if seconds < 2.0 else "OVER the 2 s target"
        print(f"{page:<42}{seconds:7.2f} s  x{seconds / baseline:.1f} baseline  {verdict}")


if __name__ == "__main__":
    main()
