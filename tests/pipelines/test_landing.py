"""The lake side of the lander: flush steps, crash recovery and dead letters, without a broker."""

from __future__ import annotations

import base64
import glob
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import landing
from pipelines.dead_letter import dead_letter_path, write_dead_letter
from services.events import DonationProcessed, Envelope, arrow_schema, to_row
from services.lake import manifests, topic_glob

DAY = datetime(2026, 11, 28, 23, 59, tzinfo=UTC)


def rows(first: int, n: int, *, days: int = 1) -> list[dict]:
    """`n` donation rows at offsets first.., spread over `days` event-time dates."""
    out = []
    for i in range(n):
        env = Envelope.wrap(
            DonationProcessed(
                donation_id=f"d{first + i}",
                payment_id=f"p{first + i}",
                amount_minor=1000 + i,
                currency="RUB",
                settled_at=DAY,
            ),
            channel_id="c1",
            node_id="n1",
            occurred_at=DAY + timedelta(days=i % days),
        )
        out.append(to_row(env, 1, first + i))
    return out


def batch(first: int, n: int, **kw) -> landing.Batch:
    return landing.Batch("donations", "e0e0e0e0", "cid", 1, first, first + n - 1, rows(first, n, **kw))


def visible(lake: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(topic_glob(lake, "donations")))


def landed_ids(lake: Path) -> list[str]:
    return [i for p in visible(lake) for i in pq.read_table(p).column("event_id").to_pylist()]


def test_a_flush_writes_one_typed_file_per_event_date_and_a_manifest(lake: Path) -> None:
    b = batch(10, 6, days=2)
    manifest = landing.land(lake, b)
    files = visible(lake)
    assert [p.parent.name for p in files] == ["date=2026-11-28", "date=2026-11-29"]
    assert {p.name for p in files} == {"donations+ee0e0e0e0+p1+000000000010-000000000015.parquet"}
    for path in files:
        table = pq.read_table(path)
        assert table.schema.remove_metadata() == arrow_schema("donations")
        offsets = table.column("kafka_offset").to_pylist()
        assert offsets == sorted(offsets)
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert sorted(landed_ids(lake)) == sorted(r["event_id"] for r in b.rows)
    assert manifest.rows == 6 and sorted(manifest.files) == sorted(
        p.relative_to(lake).as_posix() for p in files
    )
    assert manifests(lake) == [manifest]
    assert not list(lake.rglob("*.tmp"))


def test_landing_the_same_offsets_twice_leaves_the_same_bytes(lake: Path) -> None:
    b = batch(0, 50, days=2)
    landing.land(lake, b)
    before = {p: p.read_bytes() for p in visible(lake)}
    landing.land(lake, b)
    assert {p: p.read_bytes() for p in visible(lake)} == before
    assert len(manifests(lake)) == 1
    assert sorted(landed_ids(lake)) == sorted(r["event_id"] for r in b.rows)


def test_a_crash_before_the_manifest_leaves_nothing_visible_and_recovery_removes_it(lake: Path) -> None:
    with pytest.raises(landing.SimulatedCrash):
        landing.land(lake, batch(0, 5, days=2), crash_after="stage")
    assert visible(lake) == [] and manifests(lake) == []
    assert len(list(lake.rglob("*.tmp"))) == 2
    done = landing.recover(lake)
    assert len(done.removed) == 2 and not done.rolled_forward
    assert not list(lake.rglob("*.tmp"))
    assert landing.landed_next_offset(lake, "donations", "e0e0e0e0", 1) is None


def test_a_crash_after_the_manifest_is_rolled_forward(lake: Path) -> None:
    b = batch(0, 5, days=2)
    with pytest.raises(landing.SimulatedCrash):
        landing.land(lake, b, crash_after="manifest")
    assert visible(lake) == [] and len(manifests(lake)) == 1
    done = landing.recover(lake)
    assert len(done.rolled_forward) == 2 and not done.removed
    assert sorted(landed_ids(lake)) == sorted(r["event_id"] for r in b.rows)
    assert landing.landed_next_offset(lake, "donations", "e0e0e0e0", 1) == 5


def test_recovery_limited_to_some_partitions_leaves_the_others_alone(lake: Path) -> None:
    with pytest.raises(landing.SimulatedCrash):
        landing.land(lake, batch(0, 3), crash_after="stage")
    landing.recover(lake, only={("donations", 0)})
    assert len(list(lake.rglob("*.tmp"))) == 1
    landing.recover(lake, only={("donations", 1)})
    assert not list(lake.rglob("*.tmp"))


def test_an_unfinished_manifest_is_removed(lake: Path) -> None:
    staged = landing.stage(lake, batch(0, 3))
    path = staged.manifest.path(lake)
    path.parent.mkdir(parents=True)
    (path.parent / f".{path.name}.tmp").write_text('{"topic": "donat')  # died mid-write
    done = landing.recover(lake)
    assert len(done.removed) == 2 and not list(lake.rglob("*.tmp")) and manifests(lake) == []


def test_next_offset_comes_from_the_largest_landed_range_of_the_epoch(lake: Path) -> None:
    landing.land(lake, batch(0, 3))
    landing.land(lake, batch(3, 4))
    assert landing.landed_next_offset(lake, "donations", "e0e0e0e0", 1) == 7
    assert landing.landed_next_offset(lake, "donations", "ffffffff", 1) is None
    assert landing.landed_next_offset(lake, "donations", "e0e0e0e0", 0) is None


def test_an_empty_offset_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty offset range"):
        landing.Batch("donations", "e", "c", 0, 5, 4, [])


def test_a_range_of_only_dropped_records_is_committed_without_files(lake: Path) -> None:
    manifest = landing.land(lake, landing.Batch("donations", "e0e0e0e0", "cid", 1, 0, 9, []))
    assert manifest.rows == 0 and manifest.files == [] and visible(lake) == []
    assert landing.landed_next_offset(lake, "donations", "e0e0e0e0", 1) == 10


def test_seed_reads_event_ids_of_recent_dates_only(lake: Path) -> None:
    b = batch(0, 4, days=2)
    landing.land(lake, b)
    seeded = landing.landed_event_ids(lake, ["donations"], DAY.date() + timedelta(days=1))
    assert list(seeded) == [DAY.date() + timedelta(days=1)]
    assert seeded[DAY.date() + timedelta(days=1)] == {r["event_id"] for r in b.rows[1::2]}


def test_a_dead_letter_keeps_the_raw_bytes_and_the_error(lake: Path) -> None:
    raw = b"\xff{not json"
    kw = {"topic": "donations", "partition": 2, "offset": 7, "key": b"k", "raw": raw, "error": "bad"}
    path = write_dead_letter(lake, epoch="aaaa", **kw)
    assert path == dead_letter_path(lake, "donations", 2, 7) == lake / "_dead_letter/donations/p2/7.json"
    record = json.loads(path.read_text())
    assert base64.b64decode(record["raw_base64"]) == raw and record["error"] == "bad"
    assert write_dead_letter(lake, epoch="aaaa", **kw) == path  # idempotent
    # The same offset of a new broker (another epoch) never overwrites the first record.
    other = write_dead_letter(lake, epoch="bbbb", **kw)
    assert other.name == "7+ebbbb.json" and json.loads(path.read_text())["epoch"] == "aaaa"
    assert not list(lake.rglob("*.tmp"))
