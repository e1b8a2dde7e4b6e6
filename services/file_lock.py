"""One exclusive lock file beside a small shared file that several processes rewrite or append to.

The dashboards' accounts store and the fraud review log are written by every browser session and by the
CLI at once; an advisory `flock` on `<file>.lock` serialises them without a server. The lock is released
when the descriptor closes, so a crashed writer never leaves it held.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold `path`'s lock file (created beside it, mode 0600) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
