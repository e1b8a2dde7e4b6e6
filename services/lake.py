"""Layout of the Parquet lake and the marts: the contract between lander, assets, dashboards, notebooks.

Lake: `LAKE/topic=T/date=YYYY-MM-DD/T+e<epoch>+p<partition>+<first>-<last>.parquet`, event-time dates.
A file is written under a hidden temporary name; a manifest of the offset range it covers is the
commit point (`LAKE/_manifests/T/e<epoch>/p<partition>/<first>-<last>.json`); then the file is renamed.
`epoch` is a short hash of the broker's cluster id, so offsets of an empty restarted embedded broker
never collide with offsets landed before. Marts: `MARTS/<asset>/date=YYYY-MM-DD/part.parquet`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

MANIFESTS = "_manifests"
TMP_SUFFIX = ".tmp"


def epoch_of(cluster_id: str) -> str:
    return hashlib.sha256(cluster_id.encode()).hexdigest()[:8]


def topic_dir(lake: Path, topic: str) -> Path:
    return lake / f"topic={topic}"


def partition_dir(lake: Path, topic: str, day: date) -> Path:
    return topic_dir(lake, topic) / f"date={day.isoformat()}"


def file_name(topic: str, epoch: str, partition: int, first: int, last: int) -> str:
    return f"{topic}+e{epoch}+p{partition}+{first:012d}-{last:012d}.parquet"


def tmp_path(final: Path) -> Path:
    """Hidden temporary sibling: globs over `*.parquet` never see half-written files."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def topic_glob(lake: Path, topic: str) -> str:
    """Glob for DuckDB/Polars readers: every landed file of a topic (hive partitions included)."""
    return str(topic_dir(lake, topic) / "date=*" / "*.parquet")


@dataclass(frozen=True)
class Manifest:
    """The commit record of one landed offset range of one topic partition."""

    topic: str
    epoch: str
    cluster_id: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int
    files: list[str] = field(default_factory=list)  # relative to the lake root

    def path(self, lake: Path) -> Path:
        return manifest_dir(lake, self.topic, self.epoch, self.partition) / (
            f"{self.first_offset:012d}-{self.last_offset:012d}.json"
        )

    def write_atomically(self, lake: Path) -> Path:
        """Write to a temp file, fsync, rename: the manifest either exists whole or not at all."""
        final = self.path(lake)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(final)
        with open(tmp, "w") as fh:
            json.dump(asdict(self), fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))


def manifest_dir(lake: Path, topic: str, epoch: str, partition: int) -> Path:
    return lake / MANIFESTS / topic / f"e{epoch}" / f"p{partition}"


def manifests(lake: Path, topic: str | None = None) -> list[Manifest]:
    """Every committed manifest (optionally of one topic), ordered by topic, epoch, partition, offset."""
    root = lake / MANIFESTS
    pattern = f"{topic or '*'}/e*/p*/*.json"
    return sorted(
        (Manifest.read(p) for p in root.glob(pattern)),
        key=lambda m: (m.topic, m.epoch, m.partition, m.first_offset),
    )


def mart_dir(marts: Path, asset: str) -> Path:
    return marts / asset


def mart_partition_path(marts: Path, asset: str, day: date) -> Path:
    return mart_dir(marts, asset) / f"date={day.isoformat()}" / "part.parquet"


def mart_glob(marts: Path, asset: str) -> str:
    return str(mart_dir(marts, asset) / "date=*" / "*.parquet")
