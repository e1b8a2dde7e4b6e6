"""The node's read side of loyalty: points, rank and badges from the export the Dagster asset writes.

The node never computes points itself (the assets own the rules); it reads
`MARTS/loyalty_export/balances.parquet` (docs/contracts.md), which the asset replaces whole and
atomically, and reloads it only when its modification time changes, so a lookup costs a dict access.
A missing or unreadable export means everyone stands at 0 points, rank `newcomer`: loyalty must never
take chat or the API down.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from services.marts import LOYALTY_EXPORT, LOYALTY_EXPORT_FILE

log = logging.getLogger(__name__)
DEFAULT_RANK = "newcomer"


@dataclass(frozen=True, slots=True)
class Standing:
    points: int
    rank: str
    badges: tuple[str, ...]
    position: int | None  # 1 = top of the channel; None when absent from the export
    as_of: date | None


NOBODY = Standing(0, DEFAULT_RANK, (), None, None)


class LoyaltyBook:
    """Standings by (channel, user), reloaded when the export file changes."""

    def __init__(self, marts_root: Path) -> None:
        self.path = marts_root / LOYALTY_EXPORT / LOYALTY_EXPORT_FILE
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._by_key: dict[tuple[str, str], Standing] = {}
        self._by_channel: dict[str, list[tuple[str, Standing]]] = {}

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        by_key: dict[tuple[str, str], Standing] = {}
        if mtime is not None:
            try:
                rows = pq.read_table(self.path).to_pylist()
            except (OSError, ValueError) as exc:  # a foreign or damaged file: keep serving the old view
                log.warning("loyalty export %s unreadable, keeping the previous one: %s", self.path, exc)
                return
            for r in rows:
                by_key[(r["channel_id"], r["user_id"])] = Standing(
                    int(r["points"]), r["rank"], tuple(r["badges"] or ()), int(r["position"]), r["as_of"]
                )
        by_channel: dict[str, list[tuple[str, Standing]]] = {}
        for (channel, user), standing in by_key.items():
            by_channel.setdefault(channel, []).append((user, standing))
        for entries in by_channel.values():
            entries.sort(key=lambda e: (e[1].position or 0, e[0]))
        self._by_key, self._by_channel, self._mtime = by_key, by_channel, mtime

    def standing(self, channel_id: str, user_id: str) -> Standing:
        with self._lock:
            self._refresh()
            return self._by_key.get((channel_id, user_id), NOBODY)

    def leaderboard(self, channel_id: str, limit: int) -> list[tuple[str, Standing]]:
        with self._lock:
            self._refresh()
            return self._by_channel.get(channel_id, [])[:limit]
