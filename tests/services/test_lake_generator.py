"""The synthetic lake generator lands valid events exactly as the lander does, in the demo's proportions,
and the money and game events the marts read (boosts, requests, sponsorships, game switches)."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from services.events import TOPICS, DonationProcessed, StreamGameChanged, arrow_schema, envelope_from_row
from services.games import catalogue as game_catalogue
from services.lake import manifests, mart_partition_path
from services.lake_generator import FRAUD_TRUTH_FILE, GENERATOR_DIR, GeneratorConfig, generate_lake
from services.marts import GAME_ANALYTICS_MART, INTERACTIVE_PAYMENTS_MART, SPONSORSHIP_PAYMENTS_MART

SMALL = GeneratorConfig(events=6_000, days=4, start=date(2026, 10, 5), seed=11)


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("generated") / "lake"
    generate_lake(lake, SMALL)
    return lake


#: Big enough for boosts, requests, sponsorships, their reversals and game switches to appear.
MONEY = GeneratorConfig(events=30_000, days=6, start=date(2026, 10, 5), seed=3)


@pytest.fixture(scope="module")
def money_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("generated-money") / "lake"
    generate_lake(lake, MONEY)
    return lake


def read_topic(lake: Path, topic: str) -> pa.Table:
    files = sorted(lake.glob(f"topic={topic}/date=*/*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else arrow_schema(topic).empty_table()


def read_topic_on(lake: Path, topic: str, day: date) -> pa.Table:
    files = sorted(lake.glob(f"topic={topic}/date={day.isoformat()}/*.parquet"))
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


def test_stream_events_name_each_channels_main_game_until_a_switch(money_lake: Path) -> None:
    streams = read_topic(money_lake, "streams").to_pylist()
    carrying = [r for r in streams if r["event_type"] != "recording.ready"]
    assert carrying and all(r["game"] for r in carrying)
    known = {g.slug for g in game_catalogue()}
    assert {r["game"] for r in carrying} <= known
    # Every broadcast starts on its channel's fixed main game.
    started: dict[str, set[str]] = defaultdict(set)
    for row in carrying:
        if row["event_type"] == "stream.started":
            started[row["channel_id"]].add(row["game"])
    assert all(len(games) == 1 for games in started.values())
    assert len({g for games in started.values() for g in games}) > 1
    # Some switch part-way: the change names another game, and the broadcast ends on it.
    by_broadcast: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in sorted(carrying, key=lambda r: r["occurred_at"]):
        by_broadcast[str(row["broadcast_id"])].append(row)
    switches = [r for r in carrying if r["event_type"] == StreamGameChanged.event_type]
    assert switches and len(switches) < 0.3 * len(by_broadcast)
    for change in switches:
        rows = by_broadcast[str(change["broadcast_id"])]
        assert rows[0]["event_type"] == "stream.started" and rows[0]["game"] != change["game"]
        assert rows[-1]["event_type"] in ("stream.ended", "stream.errored")
        assert rows[-1]["game"] == change["game"]


def test_boosts_requests_and_sponsorships_land_valued_like_the_marts_expect(money_lake: Path) -> None:
    interactive = read_topic(money_lake, "interactive")
    kinds = Counter(interactive["event_type"].to_pylist())
    total = sum(read_topic(money_lake, t).num_rows for t in TOPICS)
    assert 0.003 < interactive.num_rows / total < 0.008  # about half a percent of all events
    assert kinds["boost.pinned"] > 0 and kinds["request.submitted"] > 0 and kinds["request.played"] > 0
    reversals = ("boost.refunded", "boost.charged_back", "request.refunded", "request.charged_back")
    assert sum(kinds[k] for k in reversals) > 0
    # Every reversal takes back a landed credit: same charge, amount and currency, its settlement time.
    rows = interactive.to_pylist()
    credits = {r["charge_id"]: r for r in rows if r["event_type"] in ("boost.pinned", "request.submitted")}
    for row in rows:
        if row["event_type"] in reversals:
            credit = credits[row["charge_id"]]
            assert row["settled_at"] == credit["settled_at"] < row["occurred_at"]
            assert (row["amount_minor"], row["currency"]) == (credit["amount_minor"], credit["currency"])
            assert row["payer_id"] == credit["user_id"]
    assert all(r["settled_at"] == r["occurred_at"] for r in credits.values())
    sponsorships = read_topic(money_lake, "sponsorships").to_pylist()
    paid = {r["sponsorship_id"]: r for r in sponsorships if r["event_type"] == "sponsorship.paid"}
    assert paid and all(2_000_000 <= r["amount_minor"] <= 30_000_000 for r in paid.values())
    assert all(r["user_id"] is None and r["currency"] == "RUB" for r in paid.values())
    for row in sponsorships:
        if row["event_type"] == "sponsorship.refunded":
            assert row["settled_at"] == paid[row["sponsorship_id"]]["settled_at"] < row["occurred_at"]


@pytest.mark.slow
def test_interactive_sponsorship_and_game_marts_materialise_over_a_generated_lake(
    money_lake: Path, tmp_path: Path
) -> None:
    # Imported here: the generator's own tests need no assets.
    from assets.payment_marts import (
        INTERACTIVE_PAYMENTS,
        PAYMENT_MART_CHECKS,
        interactive_payments,
        sponsorship_payments,
    )
    from assets.resources import LakeResource, MartsResource
    from assets.stream_analytics import (
        LoyaltyRulesResource,
        audience_daily,
        broadcast_analytics_daily,
        game_analytics_daily,
        game_watch_time_reconciles,
        viewing_sessions,
    )

    marts = tmp_path / "marts"
    day = date(2026, 10, 9)  # a full day, with reversals of earlier days landing on it too
    result = dg.materialize(
        [
            interactive_payments,
            sponsorship_payments,
            *PAYMENT_MART_CHECKS[2:],
            viewing_sessions,
            audience_daily,
            broadcast_analytics_daily,
            game_analytics_daily,
            game_watch_time_reconciles,
        ],
        partition_key=day.isoformat(),
        resources={
            "lake": LakeResource(root=str(money_lake)),
            "marts": MartsResource(root=str(marts)),
            "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
        },
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)
    payments = pq.read_table(mart_partition_path(marts, INTERACTIVE_PAYMENTS_MART, day))
    assert payments.num_rows > 0 and sum(payments["gross_rub_minor"].to_pylist()) > 0
    # The mart values exactly the day's boost and request payments and reversals of the lake.
    lake_rows = read_topic_on(money_lake, "interactive", day)
    money = pc.is_in(lake_rows["event_type"], pa.array(list(INTERACTIVE_PAYMENTS.event_types)))
    assert payments.num_rows == pc.sum(money).as_py()
    sponsorship = pq.read_table(mart_partition_path(marts, SPONSORSHIP_PAYMENTS_MART, day))
    assert 0 < sponsorship.num_rows == read_topic_on(money_lake, "sponsorships", day).num_rows
    games = pq.read_table(mart_partition_path(marts, GAME_ANALYTICS_MART, day)).to_pylist()
    played = [g for g in games if g["game"]]
    assert played and sum(g["watch_minutes"] for g in played) > 0
