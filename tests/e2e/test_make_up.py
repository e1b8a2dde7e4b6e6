"""`efir up` end to end: every part starts, demo donations become revenue in the dashboards, Ctrl-C
stops everything with exit code 0 and leaves no process behind.

This is what `make up` runs on a fresh machine, on free ports and a temp data folder. It needs every
part (node, sandbox, lander, Dagster definitions with their sensor, Streamlit app): a part that fails
to start makes `efir up` exit 1 naming it, and this test then shows that message and the log tail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from services.accounts_cli import FIRST_ACCOUNT, PASSWORD_FILE
from services.cli import REPO_ROOT
from services.lake import mart_glob
from services.settings import get_settings
from tests.conftest import free_port
from tests.dashboards.signin import sign_in
from tests.e2e.procs import descendants, kill_all, start_time, still_running, with_env

REVENUE_MART = "streamer_revenue_daily"
START_TIMEOUT = 300  # every part ready, on a busy 2-core machine (Dagster alone takes ~30 s)
MART_TIMEOUT = 300  # demo -> node -> outbox -> Kafka -> lake -> sensor -> Dagster run -> mart
# The inner waits are the real bounds (they print what `efir up` said); the default 300 s of
# pytest-timeout would cut them short on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(START_TIMEOUT + MART_TIMEOUT + 300)]
STOP_TIMEOUT = 150  # seven parts, each SIGTERM then at worst SIGKILL after 15 s


def _wait(predicate: Any, timeout: float, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Poll until `predicate()` is true; fail with the run's output if `efir up` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"`efir up` exited with {proc.returncode} while waiting for {what}:\n{log.read_text()}"
            )
        if predicate():
            return
        time.sleep(1.0)
    pytest.fail(f"no {what} within {timeout}s; `efir up` said:\n{log.read_text()}")


def _mart_revenue(marts: Path) -> dict[str, int]:
    """Gross RUB minor units per channel in the revenue mart (empty until Dagster wrote it)."""
    if not list((marts / REVENUE_MART).glob("date=*/*.parquet")):
        return {}
    rows = duckdb.sql(
        f"SELECT channel_id, sum(gross_rub_minor) FROM read_parquet('{mart_glob(marts, REVENUE_MART)}') "
        "GROUP BY channel_id"
    ).fetchall()
    return {str(channel): int(gross) for channel, gross in rows if gross}


def _app_text(at: Any) -> str:
    """Everything the app shows as text: headings, markdown, metrics, tables, widget options."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "warning", "error"):
        parts += [str(el.value) for el in getattr(at, kind)]
    for metric in at.metric:
        parts += [str(metric.label), str(metric.value)]
    for frame in [*at.dataframe, *at.table]:
        parts.append(frame.value.to_string())
    for kind in ("selectbox", "multiselect", "radio"):
        for widget in getattr(at, kind):
            parts += [str(option) for option in widget.options]
    return "\n".join(parts)


def test_efir_up_shows_demo_revenue_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    streamlit_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIR_")}
    env.update(
        EFIR_DATA_DIR=str(data),
        EFIR_BROKER_PORT=str(free_port()),
        EFIR_NODE_PORT=str(free_port()),
        EFIR_PAYMENTS_PORT=str(free_port()),
        EFIR_DAGSTER_PORT=str(free_port()),
        EFIR_STREAMLIT_PORT=str(streamlit_port),
        EFIR_DEMO_RATE="4",
        EFIR_DEMO_CHANNELS="3",
        EFIR_SANDBOX_SETTLE_SECONDS="0.1",
        EFIR_LANDER_FLUSH_SECONDS="1",
    )
    log = tmp_path / "efir-up.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up"],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our SIGINT below is the only one it gets
        )
    try:
        _wait(lambda: "Efir is up" in log.read_text(), START_TIMEOUT, proc, "'Efir is up'", log)
        # Every part inherits the run's EFIR_DATA_DIR: that finds grandchildren too (Tansu, Dagster's
        # webserver, daemon and code server), whichever process group they ended up in.
        recorded = {
            pid: start_time(pid) for pid in descendants(proc.pid) | set(with_env("EFIR_DATA_DIR", str(data)))
        }
        assert len(recorded) >= 7, recorded

        marts = data / "marts"
        _wait(lambda: bool(_mart_revenue(marts)), MART_TIMEOUT, proc, f"rows in the {REVENUE_MART} mart", log)
        revenue = _mart_revenue(marts)
        assert set(revenue) <= {"kotik-plays", "speedrun-sasha", "babushka-gamer"}  # the demo's channels
        assert all(gross > 0 for gross in revenue.values())

        health = httpx.get(f"http://127.0.0.1:{streamlit_port}/_stcore/health", timeout=10)
        assert health.status_code == 200 and health.text.strip() == "ok"

        # The dashboards, run in-process over the same marts.
        from streamlit.testing.v1 import AppTest

        monkeypatch.setenv("EFIR_DATA_DIR", str(data))
        monkeypatch.setenv("EFIR_MARTS_DIR", str(marts))
        get_settings.cache_clear()
        try:
            at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "app.py"), default_timeout=60).run()
            # `efir up` made the first account; its password is only in an owner-only file.
            assert f"Dashboards sign-in: {FIRST_ACCOUNT}, password in" in log.read_text()
            sign_in(at, FIRST_ACCOUNT, (data / PASSWORD_FILE).read_text().strip())
        finally:
            get_settings.cache_clear()
        assert not at.exception, [e.value for e in at.exception]
        shown = _app_text(at)
        assert any(channel in shown for channel in revenue), shown
        # A revenue figure other than zero is on screen (a metric, or a money column of a table).
        figures = [str(m.value) for m in at.metric]
        for frame in [*at.dataframe, *at.table]:
            for column in frame.value.columns:
                if re.search(r"gross|share|revenue", str(column), re.IGNORECASE):
                    figures += [str(v) for v in frame.value[column]]
        assert any(re.search(r"[1-9]", figure) for figure in figures), shown

        proc.send_signal(signal.SIGINT)
        assert proc.wait(STOP_TIMEOUT) == 0, log.read_text()
        output = log.read_text()
        assert "Efir stopped." in output
        assert output.index("stopping demo") < output.index("stopping node") < output.index("stopping broker")
        assert still_running(recorded) == [], "parts left running after `efir up` exited"
        assert with_env("EFIR_DATA_DIR", str(data)) == []
    finally:
        kill_all(with_env("EFIR_DATA_DIR", str(data)))
        if proc.poll() is None:
            kill_all([proc.pid])
            proc.wait()
