"""The Supervisor with real child processes: readiness, failures named with their log, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from services.supervisor import (
    AliveFor,
    Cancelled,
    HttpReady,
    PartFailed,
    PortReady,
    Supervisor,
    group_alive,
)
from tests.conftest import free_port

PY = sys.executable


def alive(pid: int) -> bool:
    """True while the pid runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def wait_until(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def sleeper(name: str, record: Path) -> list[str]:
    """A child that appends '<name>' to `record` when it gets SIGTERM, then exits 0."""
    code = textwrap.dedent(
        f"""
        import signal, sys, time
        def bye(*_):
            with open({str(record)!r}, "a") as fh:
                fh.write({name!r} + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("sleeping", flush=True)
        while True:
            time.sleep(1)
        """
    )
    return [PY, "-c", code]


def http_server(port: int) -> list[str]:
    return [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def test_starts_waits_and_stops_in_reverse_order(tmp_path: Path) -> None:
    record = tmp_path / "stopped.txt"
    port = free_port()
    with Supervisor(tmp_path / "logs") as sup:
        sup.start("first", sleeper("first", record), ready=AliveFor(0.2))
        sup.start("web", http_server(port), ready=HttpReady(f"http://127.0.0.1:{port}/"))
        sup.start("last", sleeper("last", record), ready=AliveFor(0.2))
        for name in ("first", "web", "last"):
            sup.wait_ready(name, timeout=30)
        pids = [p.pid for p in sup.parts]
        assert all(alive(pid) for pid in pids)
        assert sup.failed() == []
        sup.stop_all()
        assert not any(alive(pid) for pid in pids)
    assert record.read_text().splitlines() == ["last", "first"]
    assert (tmp_path / "logs" / "first.log").read_text().startswith("sleeping")


def test_port_readiness(tmp_path: Path) -> None:
    port = free_port()
    with Supervisor(tmp_path) as sup:
        sup.start("web", http_server(port), ready=PortReady("127.0.0.1", port))
        sup.wait_ready("web", timeout=30)
        assert PortReady("127.0.0.1", port).check()


def test_grandchildren_are_stopped_with_their_part(tmp_path: Path) -> None:
    """SIGTERM goes to the whole process group, so what a part started dies with it."""
    pid_file = tmp_path / "grandchild.pid"
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """
    )
    with Supervisor(tmp_path / "logs") as sup:
        part = sup.start("parent", [PY, "-c", code])
        assert wait_until(pid_file.exists)
        grandchild = int(wait_until(lambda: pid_file.read_text() != "") and pid_file.read_text())
        assert alive(grandchild)
        sup.stop(part)
        assert not alive(part.pid)
        assert wait_until(lambda: not alive(grandchild), timeout=5)
        assert not group_alive(part.pid)


def test_a_part_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\n"
    code += "time.sleep(600)"
    with Supervisor(tmp_path, stop_timeout=0.5) as sup:
        part = sup.start("stubborn", [PY, "-c", code])
        assert wait_until(lambda: "up" in part.log_path.read_text())
        sup.stop(part)
        assert part.exit_code() == -signal.SIGKILL
        assert not alive(part.pid)


def test_exit_before_ready_names_the_part_and_quotes_its_log(tmp_path: Path) -> None:
    code = "import sys\nprint('config is broken: EFIR_X missing')\nsys.exit(3)"
    with Supervisor(tmp_path / "logs") as sup:
        sup.start("node", [PY, "-c", code], ready=PortReady("127.0.0.1", free_port()))
        with pytest.raises(PartFailed) as info:
            sup.wait_ready("node", timeout=60)
    message = str(info.value)
    assert message.startswith("node exited with code 3 before it was ready")
    assert str(tmp_path / "logs" / "node.log") in message
    assert "config is broken: EFIR_X missing" in message
    assert info.value.part.name == "node"


def test_not_ready_in_time_is_a_failure(tmp_path: Path) -> None:
    """A server that answers 503 is up but not ready: wait_ready gives up at its timeout."""
    port = free_port()
    code = textwrap.dedent(
        f"""
        from http.server import BaseHTTPRequestHandler, HTTPServer
        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(503); self.end_headers()
        HTTPServer(("127.0.0.1", {port}), H).serve_forever()
        """
    )
    with Supervisor(tmp_path) as sup:
        sup.start("node", [PY, "-c", code], ready=HttpReady(f"http://127.0.0.1:{port}/readyz"))
        assert wait_until(PortReady("127.0.0.1", port).check)
        with pytest.raises(PartFailed, match=r"node was not ready \(http://127.0.0.1:\d+/readyz\) within 1s"):
            sup.wait_ready("node", timeout=1)
        assert sup.part("node").exit_code() is None  # still running: stop_all cleans it up


def test_watch_reports_the_part_that_died(tmp_path: Path) -> None:
    crash = "import time, sys\ntime.sleep(0.5)\nprint('lost the database', flush=True)\nsys.exit(2)"
    with Supervisor(tmp_path / "logs") as sup:
        sup.start("steady", sleeper("steady", tmp_path / "r.txt"))
        sup.start("lander", [PY, "-c", crash])
        dead = sup.watch(threading.Event(), interval=0.05)
        assert dead is not None and dead.name == "lander"
        assert dead.exit_code() == 2
        assert "lost the database" in str(PartFailed(dead, "exited unexpectedly"))
        assert [p.name for p in sup.failed()] == ["lander"]


def test_watch_returns_none_when_asked_to_stop(tmp_path: Path) -> None:
    stop = threading.Event()
    with Supervisor(tmp_path) as sup:
        sup.start("steady", sleeper("steady", tmp_path / "r.txt"))
        threading.Timer(0.2, stop.set).start()
        assert sup.watch(stop, interval=0.05) is None


def test_cancel_interrupts_waiting(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with Supervisor(tmp_path) as sup:
        sup.start("slow", sleeper("slow", tmp_path / "r.txt"), ready=PortReady("127.0.0.1", free_port()))
        with pytest.raises(Cancelled):
            sup.wait_ready("slow", timeout=60, cancel=cancel)


def test_stopped_parts_are_not_reported_as_failed(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        part = sup.start("steady", sleeper("steady", tmp_path / "r.txt"))
        sup.stop(part)
        assert sup.failed() == []


def test_names_are_unique(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        sup.start("a", sleeper("a", tmp_path / "r.txt"))
        with pytest.raises(ValueError, match="already running"):
            sup.start("a", sleeper("a", tmp_path / "r.txt"))


def test_parts_die_when_the_supervisor_is_killed_hard(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: even a SIGKILLed supervisor leaves no orphan behind."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from services.supervisor import Supervisor
        sup = Supervisor(Path({str(tmp_path)!r}))
        part = sup.start("orphan", [sys.executable, "-c", "import time; time.sleep(600)"])
        print(part.pid, flush=True)
        time.sleep(600)
        """
    )
    outer = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    try:
        assert outer.stdout is not None
        child = int(outer.stdout.readline())
        assert alive(child)
        os.kill(outer.pid, signal.SIGKILL)
        outer.wait()
        assert wait_until(lambda: not alive(child))
    finally:
        outer.kill()
        outer.wait()
