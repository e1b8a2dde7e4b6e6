"""Run Efir's parts as child processes and stop them cleanly: the engine behind `efir up`.

Each part runs in its own process group (its own session), so a Ctrl-C in the terminal reaches only
the supervisor, which then stops the parts in reverse start order: SIGTERM to the whole group, SIGKILL
to whatever is left after a timeout. Signalling the group, not just the leader, is what reaches the
grandchildren (Tansu under `efir broker`, the webserver and daemon under `dagster dev`), so nothing
is orphaned. Each leader also gets PR_SET_PDEATHSIG, so a supervisor killed hard (SIGKILL) still
takes its parts down. Parts log to one file each; when a part dies the error names it and shows the
tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LOG_TAIL_LINES = 30
# uvicorn's `ERROR:    [Errno 98] ...`, logging's `... ERROR name: ...`, a traceback's last line.
_FAILURE = re.compile(r"^ERROR:|\sERROR\s|^\w+(Error|Exception):")


class PartFailed(RuntimeError):
    """A part exited unexpectedly or never became ready; the message names it and quotes its log."""

    def __init__(self, part: Part, reason: str):
        self.part = part
        self.reason = reason
        tail = part.log_tail()
        quoted = "\n".join(f"    {line}" for line in tail) if tail else "    (the log is empty)"
        # Shutdown chatter after a failure can push its cause out of the tail: name the first error too.
        cause = part.first_error()
        first = f"First error in the log: {cause}\n" if cause and cause not in tail else ""
        super().__init__(f"{part.name} {reason}. {first}Last lines of {part.log_path}:\n{quoted}")


class Cancelled(RuntimeError):
    """Waiting for a part was interrupted because a stop was requested."""


@dataclass(frozen=True)
class PortReady:
    """Ready once something accepts TCP connections on host:port."""

    host: str
    port: int

    def check(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.port)) == 0

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HttpReady:
    """Ready once GET url answers with the expected status (e.g. the node's /readyz with 200)."""

    url: str
    status: int = 200

    def check(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2.0) as resp:
                return int(resp.status) == self.status
        except urllib.error.HTTPError as exc:  # a non-2xx answer: the server is up but not ready
            return exc.code == self.status
        except (OSError, ValueError):
            return False

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class AliveFor:
    """For parts without a port (lander, demo): ready when still running after a short grace time."""

    seconds: float = 1.0

    def __str__(self) -> str:
        return f"running after {self.seconds:g}s"


Readiness = PortReady | HttpReady | AliveFor


@dataclass
class Part:
    """One named child process, its log file and how to tell that it is ready."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Readiness
    proc: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def first_error(self) -> str | None:
        """The log's first line that reports a failure (uvicorn's `ERROR:`, a traceback's exception)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if _FAILURE.search(line):
                        return line.rstrip("\n")
        except OSError:
            return None
        return None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines of the log, read from the end so a huge log costs little."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


class Supervisor:
    """Starts named parts, waits for their readiness, watches them, and stops them in reverse order."""

    def __init__(self, log_dir: Path, stop_timeout: float = 10.0):
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        self.parts: list[Part] = []
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: Readiness | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Part:
        """Start a part in a new session (process group) with stdout and stderr in LOG_DIR/<name>.log.

        Call from a thread that outlives the part: PR_SET_PDEATHSIG fires when the spawning thread
        ends, not only when the process does.
        """
        if any(p.name == name for p in self.parts):
            raise ValueError(f"a part named {name!r} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - the child keeps the descriptor
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()  # the child has its own copy
        part = Part(name=name, argv=list(argv), log_path=log_path, ready=ready or AliveFor(), proc=proc)
        with self._lock:
            self.parts.append(part)
        return part

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def wait_ready(
        self, name: str, timeout: float, cancel: threading.Event | None = None, interval: float = 0.1
    ) -> float:
        """Block until the part is ready; return the seconds it took since its start.

        Raises PartFailed if it exits or is not ready in time, Cancelled if `cancel` gets set.
        """
        part = self.part(name)
        deadline = time.monotonic() + timeout
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled(name)
            code = part.exit_code()
            if code is not None:
                raise PartFailed(part, f"exited with code {code} before it was ready")
            if isinstance(part.ready, AliveFor):
                if time.monotonic() - part.started_at >= part.ready.seconds:
                    return time.monotonic() - part.started_at
            elif part.ready.check():
                # A port can open an instant before a crash: make sure it still runs.
                if part.exit_code() is None:
                    return time.monotonic() - part.started_at
                continue
            if time.monotonic() >= deadline:
                raise PartFailed(part, f"was not ready ({part.ready}) within {timeout:g}s")
            time.sleep(interval)

    def failed(self) -> list[Part]:
        """Parts that exited although nobody asked them to stop."""
        return [p for p in self.parts if not p.stopping and p.exit_code() is not None]

    def watch(self, stop: threading.Event, interval: float = 0.5) -> Part | None:
        """Block until `stop` is set (return None) or a part exits unexpectedly (return that part)."""
        while not stop.is_set():
            dead = self.failed()
            if dead:
                return dead[0]
            stop.wait(interval)
        return None

    def stop_all(self, on_stop: Callable[[Part], None] | None = None) -> None:
        """Stop every part, last started first, so consumers stop before what they consume from."""
        for part in reversed(list(self.parts)):
            if on_stop is not None:
                on_stop(part)
            self.stop(part)

    def stop(self, part: Part) -> None:
        """SIGTERM to the part's process group, SIGKILL after the timeout, then reap the leader."""
        part.stopping = True
        pgid = part.pid  # start_new_session: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        try:
            part.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            part.proc.wait()
        # The leader is gone; members of its group (grandchildren) may linger a moment.
        deadline = time.monotonic() + self.stop_timeout
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of the group exists.

    Zombies are skipped: an orphan whose new parent (PID 1 in a container) never reaps it holds no
    resources but would keep `killpg(pgid, 0)` succeeding forever.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """Pids of the live, non-zombie processes in a process group (Linux /proc scan)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: stop_all() still stops everything
        pass
