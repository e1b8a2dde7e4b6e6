"""Writing one flush of the lander into the lake, and putting the lake right after a crash.

A flush lands the offsets [first, last] of one topic partition in three steps (the Kafka Connect HDFS
sink's recipe): `stage` writes one Parquet file per event-time date under a hidden temporary name and
fsyncs it; `commit` writes the manifest of the offset range atomically, which is the commit point;
`publish` renames the temporaries to their final names. `recover` finishes what a crash interrupted:
temporaries with a manifest are rolled forward, those without one are deleted. The functions take the
same offsets to the same file names and the same bytes, so landing a range twice changes nothing.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from services.events import arrow_schema
from services.lake import (
    MANIFESTS,
    TMP_SUFFIX,
    Manifest,
    file_name,
    manifest_dir,
    partition_dir,
    tmp_path,
    topic_dir,
)

log = logging.getLogger(__name__)

FlushStep = Literal["stage", "manifest", "rename"]
"""The steps of a flush, in order; `crash_after` names the last one that runs."""

PARQUET_COMPRESSION = "zstd"

_TMP_DATA = re.compile(
    r"^\.(?P<topic>.+)\+e(?P<epoch>[0-9a-f]+)\+p(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)"
    rf"\.parquet{re.escape(TMP_SUFFIX)}$"
)
_MANIFEST_NAME = re.compile(r"^(?P<first>\d+)-(?P<last>\d+)\.json$")


class SimulatedCrash(RuntimeError):
    """Raised by `crash_after`: the flush stops there as if the process had died (crash tests)."""


@dataclass(frozen=True)
class Batch:
    """One flush: the offsets [first, last] of one topic partition and the rows landed from them.

    The range covers every consumed offset, also those that gave no row (dead letters, duplicates),
    so the lake's offsets move past them and a restart never reads them again.
    """

    topic: str
    epoch: str
    cluster_id: str
    partition: int
    first_offset: int
    last_offset: int
    rows: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if self.first_offset > self.last_offset:
            raise ValueError(f"empty offset range {self.first_offset}-{self.last_offset}")


@dataclass(frozen=True)
class Staged:
    """Temp files written and synced, not yet committed: invisible to every reader."""

    manifest: Manifest
    files: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary, final)


@dataclass
class Recovery:
    """What `recover` did, for the log and the tests."""

    rolled_forward: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def _by_date(rows: Iterable[dict[str, Any]]) -> dict[date, list[dict[str, Any]]]:
    days: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        days[row["occurred_at"].date()].append(row)
    return {day: sorted(days[day], key=lambda r: r["kafka_offset"]) for day in sorted(days)}


def _fsync_dir(path: Path) -> None:
    """A rename is durable only once its folder is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(lake: Path, batch: Batch) -> Staged:
    """Step 1: one temp Parquet file per event-time date, typed, sorted by offset, zstd, fsynced."""
    schema = arrow_schema(batch.topic)
    name = file_name(batch.topic, batch.epoch, batch.partition, batch.first_offset, batch.last_offset)
    files: list[tuple[Path, Path]] = []
    for day, rows in _by_date(batch.rows).items():
        final = partition_dir(lake, batch.topic, day) / name
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(final)
        table = pa.Table.from_pylist(rows, schema=schema)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression=PARQUET_COMPRESSION)
            fh.flush()
            os.fsync(fh.fileno())
        files.append((tmp, final))
    manifest = Manifest(
        topic=batch.topic,
        epoch=batch.epoch,
        cluster_id=batch.cluster_id,
        partition=batch.partition,
        first_offset=batch.first_offset,
        last_offset=batch.last_offset,
        rows=len(batch.rows),
        files=[final.relative_to(lake).as_posix() for _, final in files],
    )
    return Staged(manifest=manifest, files=files)


def commit(lake: Path, staged: Staged) -> Path:
    """Step 2, the commit point: once the manifest exists, the range is landed."""
    return staged.manifest.write_atomically(lake)


def publish(staged: Staged) -> None:
    """Step 3: make the files visible under their final names (an existing final has the same bytes)."""
    for tmp, final in staged.files:
        os.replace(tmp, final)
    for folder in {final.parent for _, final in staged.files}:
        _fsync_dir(folder)


def land(lake: Path, batch: Batch, crash_after: FlushStep | None = None) -> Manifest:
    """Run the three steps of a flush; `crash_after` stops after one of them (crash tests only)."""
    staged = stage(lake, batch)
    if crash_after == "stage":
        raise SimulatedCrash("after stage")
    commit(lake, staged)
    if crash_after == "manifest":
        raise SimulatedCrash("after manifest")
    publish(staged)
    if crash_after == "rename":
        raise SimulatedCrash("after rename")
    return staged.manifest


def _manifest_for(lake: Path, topic: str, epoch: str, partition: int, first: int, last: int) -> Path:
    return Manifest(topic, epoch, "", partition, first, last, 0).path(lake)


def recover(lake: Path, only: Collection[tuple[str, int]] | None = None) -> Recovery:
    """Roll committed flushes forward and delete uncommitted temporaries.

    `only` limits the work to some (topic, partition) pairs: with several landers on one lake, a
    lander touches only the partitions assigned to it, never another lander's flush in progress.
    """
    done = Recovery()
    for tmp in sorted(lake.glob(f"topic=*/date=*/.*{TMP_SUFFIX}")):
        match = _TMP_DATA.match(tmp.name)
        if match is None:
            continue
        topic, epoch, partition = match["topic"], match["epoch"], int(match["partition"])
        if only is not None and (topic, partition) not in only:
            continue
        final = tmp.with_name(tmp.name[1 : -len(TMP_SUFFIX)])
        path = _manifest_for(lake, topic, epoch, partition, int(match["first"]), int(match["last"]))
        listed = path.exists() and final.relative_to(lake).as_posix() in Manifest.read(path).files
        if listed:
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            done.rolled_forward.append(final)
        else:
            tmp.unlink()
            done.removed.append(tmp)
    # A manifest temporary is a manifest whose write never finished: its range was never committed.
    for tmp in sorted((lake / MANIFESTS).glob(f"*/e*/p*/.*{TMP_SUFFIX}")):
        topic, partition = tmp.parts[-4], int(tmp.parts[-2][1:])
        if only is None or (topic, partition) in only:
            tmp.unlink()
            done.removed.append(tmp)
    if done.rolled_forward or done.removed:
        log.warning(
            "recovered the lake: %d files rolled forward, %d orphaned temporaries removed",
            len(done.rolled_forward),
            len(done.removed),
        )
    return done


def landed_next_offset(lake: Path, topic: str, epoch: str, partition: int) -> int | None:
    """The offset after the largest landed one of this epoch, or None when nothing is landed.

    Read from manifest names alone, so a start costs a directory listing, not a read per manifest.
    """
    last = -1
    folder = manifest_dir(lake, topic, epoch, partition)
    if folder.is_dir():
        for path in folder.iterdir():
            match = _MANIFEST_NAME.match(path.name)
            if match:
                last = max(last, int(match["last"]))
    return last + 1 if last >= 0 else None


def landed_event_ids(lake: Path, topics: Iterable[str], since: date) -> dict[date, set[str]]:
    """Event ids in the lake's date partitions from `since` on, by date: the dedup window's seed."""
    found: dict[date, set[str]] = defaultdict(set)
    for topic in topics:
        for folder in sorted(topic_dir(lake, topic).glob("date=*")):
            try:
                day = date.fromisoformat(folder.name.removeprefix("date="))
            except ValueError:
                continue
            if day < since:
                continue
            for path in sorted(folder.glob("*.parquet")):
                column = pq.read_table(path, columns=["event_id"]).column("event_id")
                found[day].update(column.to_pylist())
    return dict(found)
