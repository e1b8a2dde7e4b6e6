"""The `efir` command line: help, generated config docs, the wiring of `efir up`, and its failures."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer

from services.cli import (
    CONFIG_TABLE_END,
    CONFIG_TABLE_START,
    DAGSTER_YAML,
    REPO_ROOT,
    config_markdown,
    dagster_home,
    main,
    plan_up,
)
from services.settings import Settings
from services.supervisor import AliveFor, HttpReady, PortReady
from tests.conftest import free_port
from tests.e2e.procs import alive, kill_all, with_env

SUBCOMMANDS = ("broker", "node", "sandbox", "lander", "dagster", "dashboards", "demo", "up", "config")
EFIR = Path(sys.executable).parent / "efir"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without EFIR_ variables (the test decides every one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFIR_")}
    env.update(extra)
    return env


def test_console_script_documents_every_subcommand() -> None:
    out = subprocess.run([str(EFIR), "--help"], capture_output=True, text=True, check=True, timeout=60).stdout
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in out, name
    runner = CliRunner()
    for name in SUBCOMMANDS:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage: " in result.output and len(result.output.splitlines()) > 3


def test_unknown_subcommand_is_an_error() -> None:
    result = CliRunner().invoke(main, ["upp"])
    assert result.exit_code == 2
    assert "No such command 'upp'" in result.output


def test_readme_configuration_table_is_generated() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert CONFIG_TABLE_START in readme and CONFIG_TABLE_END in readme
    table = readme.split(CONFIG_TABLE_START, 1)[1].split(CONFIG_TABLE_END, 1)[0].lstrip("\n")
    assert table == config_markdown(), "README is stale: paste the output of `efir config --markdown`"


def test_config_markdown_lists_every_setting_once() -> None:
    result = CliRunner().invoke(main, ["config", "--markdown"])
    assert result.exit_code == 0
    assert result.output == config_markdown()
    rows = [line for line in result.output.splitlines() if line.startswith("| `EFIR_")]
    assert [r.split("`")[1] for r in rows] == [f"EFIR_{n.upper()}" for n in Settings.model_fields]
    assert all(r.count(" | ") == 2 and not r.endswith("|  |") for r in rows)  # every one described
    assert "sandbox-webhook-secret" not in result.output  # secret defaults are not spelled out


def test_config_masks_secrets() -> None:
    env = clean_env(EFIR_ADMIN_TOKEN="do-not-print-me", EFIR_NODE_PORT="8123")
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "config"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "EFIR_NODE_PORT=8123" in out
    assert "EFIR_ADMIN_TOKEN=***" in out
    assert "do-not-print-me" not in out


def test_up_plan_wires_the_parts(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        broker_port=19092,
        node_port=18000,
        payments_port=18090,
        dagster_port=13000,
        streamlit_port=18501,
    )
    plan = plan_up(s)
    assert [p.name for p in plan.parts] == [
        "broker",
        "sandbox",
        "node",
        "lander",
        "dagster",
        "dashboards",
        "demo",
    ]
    env = plan.env
    assert env["EFIR_DATA_DIR"] == str(tmp_path)
    assert env["EFIR_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert env["EFIR_PAYMENTS_URL"] == "http://127.0.0.1:18090"
    assert env["EFIR_PUBLIC_URL"] == "http://127.0.0.1:18000"
    # What was set on the Settings reaches the children, which read only their environment.
    assert (env["EFIR_NODE_PORT"], env["EFIR_DAGSTER_PORT"], env["EFIR_STREAMLIT_PORT"]) == (
        "18000",
        "13000",
        "18501",
    )
    ready = {p.name: p.ready for p in plan.parts}
    assert ready["broker"] == PortReady("127.0.0.1", 19092)
    assert ready["node"] == HttpReady("http://127.0.0.1:18000/readyz")
    assert ready["dagster"] == HttpReady("http://127.0.0.1:13000/server_info")
    assert ready["dashboards"] == HttpReady("http://127.0.0.1:18501/_stcore/health")
    assert isinstance(ready["lander"], AliveFor)
    # Every part runs as a module of this interpreter; the admin token never travels in argv.
    token = env["EFIR_ADMIN_TOKEN"]
    assert plan.admin_token_generated and len(token) >= 32
    assert all(p.argv[:3] == [sys.executable, "-m", "services.cli"] for p in plan.parts)
    assert not any(token in " ".join(p.argv) for p in plan.parts)
    assert plan_up(s).env["EFIR_ADMIN_TOKEN"] != token  # a fresh one per run


def test_up_plan_keeps_what_the_operator_set(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        admin_token="mine",  # type: ignore[arg-type]
        kafka_bootstrap="kafka-1.example:9092",
        payments_url="https://pay.example",
        public_url="https://efir.example",
    )
    plan = plan_up(s, demo=False)
    assert [p.name for p in plan.parts] == ["node", "lander", "dagster", "dashboards"]
    assert not plan.admin_token_generated and plan.env["EFIR_ADMIN_TOKEN"] == "mine"
    assert plan.env.get("EFIR_KAFKA_BOOTSTRAP", "kafka-1.example:9092") == "kafka-1.example:9092"
    assert plan.env.get("EFIR_PUBLIC_URL", "https://efir.example") == "https://efir.example"


def test_dagster_home_is_written_once(tmp_path: Path) -> None:
    home = dagster_home(Settings(data_dir=tmp_path))
    assert home == tmp_path / "dagster"
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    dagster_home(Settings(data_dir=tmp_path))
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_dagster_yaml_is_a_valid_instance_config(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    home = dagster_home(Settings(data_dir=tmp_path))
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2  # type: ignore[union-attr]


def test_up_refuses_taken_ports_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(
            EFIR_DATA_DIR=str(tmp_path),
            EFIR_NODE_PORT=str(port),
            EFIR_BROKER_PORT=str(free_port()),
            EFIR_PAYMENTS_PORT=str(free_port()),
            EFIR_DAGSTER_PORT=str(free_port()),
            EFIR_STREAMLIT_PORT=str(free_port()),
        )
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "up"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"node: port {port} is taken (set EFIR_NODE_PORT)" in done.stderr
    assert not (tmp_path / "logs").exists()


def test_broker_command_serves_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "broker.log"
    env = clean_env(EFIR_BROKER_PORT=str(port), EFIR_DATA_DIR=str(tmp_path))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "broker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "broker ready" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "broker ready on 127.0.0.1:" in log.read_text(), log.read_text()
        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", group_id=None)
        try:
            assert consumer.partitions_for_topic("donations") == {0, 1, 2}
        finally:
            consumer.close()
        tansu = [pid for pid in with_env("EFIR_DATA_DIR", str(tmp_path)) if pid != proc.pid]
        assert tansu, "the broker process runs under `efir broker`"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(alive(pid) for pid in tansu)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_up_names_the_part_that_failed_and_stops_the_others(tmp_path: Path) -> None:
    """The node cannot bind (a TEST-NET address): `efir up` names it, quotes its log, stops the broker."""
    env = clean_env(
        EFIR_DATA_DIR=str(tmp_path),
        EFIR_NODE_HOST="192.0.2.1",
        EFIR_NODE_PORT=str(free_port()),
        EFIR_BROKER_PORT=str(free_port()),
        EFIR_PAYMENTS_URL="http://127.0.0.1:9",  # an outside provider: no sandbox this run
        EFIR_DAGSTER_PORT=str(free_port()),
        EFIR_STREAMLIT_PORT=str(free_port()),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--no-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        kill_all(with_env("EFIR_DATA_DIR", str(tmp_path)))
    assert proc.returncode == 1, out + err
    assert "broker     starting... ready" in out
    assert "node       starting... failed" in out
    assert re.search(
        rf"efir up: node exited with code \d+ before it was ready\. Last lines of {tmp_path}/logs/node\.log",
        err,
    )
    assert "192.0.2.1" in err  # the tail of the node's log says why
    assert "stopping broker" in out and "Efir stopped." in out
    assert with_env("EFIR_DATA_DIR", str(tmp_path)) == []
