"""Finding processes without psutil: by /proc, for the no-orphans assertions of the CLI tests."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def alive(pid: int) -> bool:
    """True while the pid runs (a zombie counts as gone: it holds no port, file or memory)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def with_env(name: str, value: str) -> list[int]:
    """Live pids whose environment has NAME=value exactly: every part of one `efir up` run inherits
    its EFIR_DATA_DIR, a temp folder unique to the test, so this finds grandchildren too."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def descendants(root: int) -> set[int]:
    """Every live process below `root` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return {pid for pid in found if alive(pid)}


def kill_all(pids: list[int] | set[int]) -> None:
    """Last-resort cleanup after a failed test: SIGKILL each pid and its group."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(OSError):
                kill(pid, signal.SIGKILL)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process even
    if the pid is reused later. None when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def still_running(recorded: dict[int, int | None]) -> list[int]:
    """The recorded (pid -> start time) processes that still run as the same process."""
    return [pid for pid, started in recorded.items() if alive(pid) and start_time(pid) == started]
