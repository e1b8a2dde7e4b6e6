"""Secrets the CLI generates for a run (admin token, first dashboard password) go to files only their
owner can read: never printed, never logged."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
