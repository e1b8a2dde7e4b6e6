"""The synthetic lake generator lands valid events exactly as the lander does, in the demo's proportions."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from services.events import TOPICS, DonationProcessed, arrow_schema, envelope_from_row
from services.lake import manifests
from services.lake_generator import FRAUD_TRUTH_FILE, GENERATOR_DIR, GeneratorConfig, generate_lake

SMALL = GeneratorConfig(events=6_000, days=4, start=date(2026, 10, 5), seed=11)


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("generated") / "lake"
    generate_lake(lake, SMALL)
    return lake


def read_topic(lake: Path, topic: str) -> pa.Table:
    files = sorted(lake.glob(f"topic={topic}/date=*/*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else arrow_schema(topic).empty_table()


def test_exactly_the_requested_events_land_and_every_row_is_a_valid_event(small_lake: Path) -> None:
    total = 0
    for topic in TOPICS:
        for path in sorted(small_lake.glob(f"topic={topic}/date=*/*.parquet")):
            table = pq.read_table(path)
            assert table.schema.equals(arrow_schema(topic)), path
            # The file's date folder is every row's event date (UTC), as the lander files them.
            days = {ts.date() for ts in table.column("occurred_at").to_pylist()}
            assert days == {date.fromisoformat(path.parent.name.removeprefix("date="))}
            for row in table.to_pylist():
                envelope_from_row(row)  # raises on anything the node could not have emitted
            total += table.num_rows
    assert total == SMALL.events


def test_manifests_commit_contiguous_offsets_per_topic_and_partition(small_lake: Path) -> None:
    found = manifests(small_lake)
    ranges: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for m in found:
        assert len(m.files) == 1
        table = pq.read_table(small_lake / m.files[0])
        offsets = table.column("kafka_offset").to_pylist()
        assert offsets == list(range(m.first_offset, m.last_offset + 1)) and m.rows == len(offsets)
        assert set(table.column("kafka_partition").to_pylist()) == {m.partition}
        ranges[(m.topic, m.partition)].append((m.first_offset, m.last_offset))
    for spans in ranges.values():
        spans.sort()
        assert spans[0][0] == 0
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))  # no gap, no overlap
    # Every parquet file is committed by exactly one manifest (nothing half-landed lies around).
    assert sorted(f for m in found for f in m.files) == sorted(
        str(p.relative_to(small_lake)) for p in small_lake.glob("topic=*/date=*/*.parquet")
    )
    # One channel always lands on one Kafka partition (key = channel_id).
    for topic in TOPICS:
        table = read_topic(small_lake, topic)
        pairs = set(zip(table["channel_id"].to_pylist(), table["kafka_partition"].to_pylist(), strict=True))
        assert len(pairs) == len({c for c, _ in pairs})


def test_same_seed_same_lake(tmp_path: Path) -> None:
    config = GeneratorConfig(events=2_000, days=2, seed=5)
    generate_lake(tmp_path / "a", config)
    generate_lake(tmp_path / "b", config)
    for topic in TOPICS:
        assert read_topic(tmp_path / "a", topic).equals(read_topic(tmp_path / "b", topic)), topic


def test_proportions_and_the_demo_distributions(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    report = generate_lake(lake, GeneratorConfig(events=40_000, days=3, seed=3))
    shares = {topic: rows / report.total for topic, rows in report.rows.items()}
    assert 0.6 < shares["views"] < 0.76
    assert 0.15 < shares["chat"] < 0.32
    assert 0.03 < shares["donations"] < 0.06
    assert 0.01 < shares["gifts"] < 0.02
    donations = read_topic(lake, "donations")
    created = donations.filter(pc.equal(donations["event_type"], "donation.created"))
    rub = [
        a
        for a, c in zip(created["amount_minor"].to_pylist(), created["currency"].to_pylist(), strict=True)
        if c == "RUB"
    ]
    # services.demo: log-normal around a 450 RUB median, 86% RUB, amounts clamped to 10..50,000 RUB.
    assert 0.85 * 45_000 < statistics.median(rub) < 1.15 * 45_000
    assert 0.8 < len(rub) / created.num_rows < 0.92
    assert 1_000 <= min(rub) and max(rub) <= 5_000_000
    kinds = Counter(donations["event_type"].to_pylist())
    attempts = kinds["donation.created"]
    assert 0.01 < kinds["donation.failed"] / attempts < 0.06
    assert kinds["donation.refunded"] > 0 and kinds["donation.held"] > 0
    views = read_topic(lake, "views")
    agents = Counter(views["user_agent_class"].to_pylist())
    assert agents["browser"] > agents["mobile"] > agents["tv"] > 0
    assert views["user_id"].null_count > 0  # anonymous viewers too


def test_fraud_rings_and_chargebacks_are_in_the_lake_with_their_truth(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    generate_lake(lake, GeneratorConfig(events=20_000, days=8, seed=2))
    truth = pq.read_table(lake / GENERATOR_DIR / FRAUD_TRUTH_FILE)
    assert truth.num_rows > 0
    donations = read_topic(lake, "donations")
    processed = donations.filter(pc.equal(donations["event_type"], DonationProcessed.event_type))
    assert set(truth["donation_id"].to_pylist()) <= set(processed["donation_id"].to_pylist())
    charged_back = donations.filter(pc.equal(donations["event_type"], "donation.charged_back"))
    assert charged_back.num_rows > 0
    # Every chargeback reverses a donation landed before it, carrying its settlement time.
    settled = dict(
        zip(processed["donation_id"].to_pylist(), processed["settled_at"].to_pylist(), strict=True)
    )
    for row in charged_back.to_pylist():
        assert settled[row["donation_id"]] == row["settled_at"] < row["occurred_at"]
    # The fraud rings' donations carry the edge's fingerprints the fraud features count.
    ring = processed.filter(pc.is_in(processed["donation_id"], truth["donation_id"]))
    assert ring["card_hash"].null_count == 0


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1,000 events"):
        generate_lake(tmp_path, GeneratorConfig(events=10))
    with pytest.raises(ValueError, match="at least one day"):
        generate_lake(tmp_path, GeneratorConfig(days=0))
    assert not any(tmp_path.iterdir())  # nothing written


def test_stream_events_name_each_channels_fixed_main_game(small_lake: Path) -> None:
    streams = read_topic(small_lake, "streams").to_pylist()
    carrying = [r for r in streams if r["event_type"] != "recording.ready"]
    assert carrying and all(r["game"] for r in carrying)
    games_of: dict[str, set[str]] = defaultdict(set)
    for row in carrying:
        games_of[row["channel_id"]].add(row["game"])
    assert all(len(games) == 1 for games in games_of.values())  # a fixed main game per channel
    assert len({g for games in games_of.values() for g in games}) > 1
