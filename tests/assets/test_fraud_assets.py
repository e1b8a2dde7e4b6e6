"""The fraud assets materialised in-process over a small landed lake with fraud rings in it: features,
the versioned model, daily scores with reasons, the review queue, and the blocking checks."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.donations import EVENT_ID_UNIQUE, donations, donations_event_id_unique
from assets.fraud import (
    CURRENT_MODEL,
    FEATURES_ONE_ROW_PER_DONATION,
    MODEL_BEATS_RULES,
    QUEUE_ABOVE_THRESHOLD,
    QUEUED_HAVE_REASONS,
    SCORED_DONATIONS_EXIST,
    SCORES_IN_UNIT_INTERVAL,
    FraudResource,
    fraud_features,
    fraud_features_one_row_per_donation,
    fraud_model,
    fraud_model_beats_rules,
    fraud_queue_above_threshold,
    fraud_queued_have_reasons,
    fraud_review_queue,
    fraud_scored_donations_exist,
    fraud_scores,
    fraud_scores_in_unit_interval,
    model_dir,
)
from assets.resources import LakeResource, MartsResource
from services.events import DonationChargedBack, DonationProcessed, Envelope
from services.fraud_patterns import charged_back_ids, labelled_donations
from services.fraud_reviews import FraudReviewStore
from services.lake import mart_partition_path
from services.marts import FRAUD_FEATURES_MART, FRAUD_REVIEW_MART, FRAUD_SCORES_MART, review_queue
from tests.fixture_lake import land

START = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = [(START + timedelta(days=i)).date() for i in range(3)]
THRESHOLD = 0.5
DAILY_FEATURES = [donations, donations_event_id_unique, fraud_features, fraud_features_one_row_per_donation]
DAILY_SCORES = [
    fraud_scores,
    fraud_scores_in_unit_interval,
    fraud_scored_donations_exist,
    fraud_review_queue,
    fraud_queued_have_reasons,
    fraud_queue_above_threshold,
]


def resources(lake: Path, marts: Path, threshold: float = THRESHOLD) -> dict[str, object]:
    return {
        "lake": LakeResource(root=str(lake)),
        "marts": MartsResource(root=str(marts)),
        "fraud": FraudResource(
            review_threshold=threshold,
            lookback_days=30,
            velocity_max_small=5,
            velocity_small_minor=5_000,
            velocity_window_seconds=600,
            reviews_file=str(marts.parent / "fraud_reviews.jsonl"),
        ),
    }


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def charged_back_at(events: list[Envelope]) -> dict[str, datetime]:
    """When each chargeback arrived (its first `donation.charged_back`), by donation id."""
    arrived: dict[str, datetime] = {}
    for e in events:
        if e.event_type == DonationChargedBack.event_type:
            donation_id = e.payload["donation_id"]
            arrived[donation_id] = min(e.occurred_at, arrived.get(donation_id, e.occurred_at))
    return arrived


def build(lake: Path, marts: Path, days: list[date] = DAYS) -> dict[str, object]:
    """Features for every day, then the model, then scores and queues: the order a backfill runs."""
    res = resources(lake, marts)
    for day in days:
        got = dg.materialize(DAILY_FEATURES, partition_key=day.isoformat(), resources=res)  # type: ignore[arg-type]
        assert checks(got) == {EVENT_ID_UNIQUE: True, FEATURES_ONE_ROW_PER_DONATION: True}
    model = dg.materialize([fraud_model, fraud_model_beats_rules], resources=res)  # type: ignore[arg-type]
    (mat,) = model.get_asset_materialization_events()
    metadata = {k: v.value for k, v in mat.materialization.metadata.items()}
    for day in days:
        got = dg.materialize(DAILY_SCORES, partition_key=day.isoformat(), resources=res)  # type: ignore[arg-type]
        assert checks(got) == {
            SCORES_IN_UNIT_INTERVAL: True,
            SCORED_DONATIONS_EXIST: True,
            QUEUED_HAVE_REASONS: True,
            QUEUE_ABOVE_THRESHOLD: True,
        }
    metadata["beats_rules"] = checks(model)[MODEL_BEATS_RULES]
    return metadata


@pytest.fixture(scope="module")
def events() -> list[Envelope]:
    return labelled_donations(11, ["alpha", "beta"], START, len(DAYS), donations=900, rings=24)


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, events: list[Envelope]
) -> tuple[Path, Path, dict[str, object]]:
    """One lake and one full build shared by the tests that only read it (building takes a while)."""
    root = tmp_path_factory.mktemp("fraud")
    lake, marts = root / "lake", root / "marts"
    land(lake, events)
    return lake, marts, build(lake, marts)


def test_every_settled_donation_is_scored_once_and_high_scores_are_queued(
    built: tuple[Path, Path, dict[str, object]], events: list[Envelope]
) -> None:
    _, marts, metadata = built
    settled = {
        e.payload["donation_id"]: e.occurred_at.date()
        for e in events
        if e.event_type == DonationProcessed.event_type and e.occurred_at.date() in DAYS
    }
    scored: dict[str, date] = {}
    for day in DAYS:
        rows = pq.read_table(mart_partition_path(marts, FRAUD_SCORES_MART, day)).to_pylist()
        assert all(
            0.0 <= r["score"] <= 1.0 and r["reasons"] and r["model_version"] == metadata["version"]
            for r in rows
        )
        scored.update({r["donation_id"]: day for r in rows})
        queue = pq.read_table(mart_partition_path(marts, FRAUD_REVIEW_MART, day)).to_pylist()
        assert [r["donation_id"] for r in queue] == [
            r["donation_id"] for r in rows if r["score"] >= THRESHOLD
        ]
        assert [r["score"] for r in queue] == sorted((r["score"] for r in queue), reverse=True)
    assert scored == settled
    # The rings are in the queue: most queued donations were charged back.
    labels = charged_back_ids(events)
    queued = review_queue(marts)
    assert queued and sum(q.donation_id in labels for q in queued) / len(queued) > 0.6
    assert all(q.reasons for q in queued)


def test_the_model_is_supervised_versioned_and_beats_the_rules(
    built: tuple[Path, Path, dict[str, object]],
) -> None:
    lake, built_marts, metadata = built
    assert metadata["kind"] == "supervised"
    assert metadata["train_positives"] > 20
    assert metadata["holdout_model_pr_auc"] > metadata["holdout_rules_pr_auc"]  # type: ignore[operator]
    assert metadata["beats_rules"] is True
    folder = model_dir(built_marts)
    assert json.loads((folder / CURRENT_MODEL).read_text()) == {"version": metadata["version"]}
    summary = json.loads((folder / str(metadata["version"]) / "metrics.json").read_text())
    assert summary["evaluation"]["holdout_positives"] == metadata["holdout_positives"]
    # Same data, same parameters: the same version (the artifact is reproducible, not a new one per run).
    again = dg.materialize([fraud_model], resources=resources(lake, built_marts))  # type: ignore[arg-type]
    (mat,) = again.get_asset_materialization_events()
    assert mat.materialization.metadata["version"].value == metadata["version"]


def test_without_chargebacks_the_anomaly_model_scores_with_reasons(
    lake: Path, tmp_path: Path, events: list[Envelope]
) -> None:
    land(lake, [e for e in events if e.event_type == DonationProcessed.event_type])
    marts = tmp_path / "marts"
    metadata = build(lake, marts, DAYS[:2])
    assert metadata["kind"] == "anomaly"
    assert metadata["train_positives"] == 0
    assert metadata["beats_rules"] is False  # nothing to compare on: a warning, not a stop
    rows = pq.read_table(mart_partition_path(marts, FRAUD_SCORES_MART, DAYS[0])).to_pylist()
    assert rows and all(r["model_kind"] == "anomaly" and r["reasons"] for r in rows)


def test_scores_before_a_model_exists_fail_clearly(
    lake: Path, tmp_path: Path, events: list[Envelope]
) -> None:
    land(lake, events)
    marts = tmp_path / "marts"
    res = resources(lake, marts)
    dg.materialize(DAILY_FEATURES, partition_key=DAYS[0].isoformat(), resources=res)  # type: ignore[arg-type]
    result = dg.materialize(
        [fraud_scores], partition_key=DAYS[0].isoformat(), resources=res, raise_on_error=False
    )  # type: ignore[arg-type]
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "materialise fraud_model first" in str(failure.step_failure_data.error)


def test_blocking_checks_catch_a_bad_score_an_unknown_donation_and_a_bare_reason(
    built: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    lake, built_marts, _ = built
    marts = tmp_path / "marts"
    shutil.copytree(built_marts, marts)  # the shared build stays intact for the other tests
    day = DAYS[1]
    scores_path = mart_partition_path(marts, FRAUD_SCORES_MART, day)
    rows = pq.read_table(scores_path).to_pylist()
    rows[0]["score"] = 1.5
    rows.append({**rows[1], "donation_id": "not-a-donation"})
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(scores_path)), scores_path)
    queue_path = mart_partition_path(marts, FRAUD_REVIEW_MART, day)
    queued = pq.read_table(queue_path).to_pylist()
    assert queued
    queued[0]["reasons"] = []
    pq.write_table(pa.Table.from_pylist(queued, schema=pq.read_schema(queue_path)), queue_path)

    result = dg.materialize(
        [donations, *DAILY_SCORES],
        selection=dg.AssetSelection.checks(*DAILY_SCORES[1:3], *DAILY_SCORES[4:]),
        resources=resources(lake, marts),
        raise_on_error=False,
    )
    assert checks(result) == {
        SCORES_IN_UNIT_INTERVAL: False,
        SCORED_DONATIONS_EXIST: False,
        QUEUED_HAVE_REASONS: False,
        QUEUE_ABOVE_THRESHOLD: False,  # the scores now hold one more due donation than the queue
    }


def test_features_mart_holds_the_days_donations_with_fingerprint_features(
    built: tuple[Path, Path, dict[str, object]],
) -> None:
    _, marts, _ = built
    table = pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, DAYS[2]))
    assert table.num_rows > 0
    rows = table.to_pylist()
    assert {r["occurred_at"].date() for r in rows} == {DAYS[2]}
    # Card testing happened: some donation saw many cards on its device.
    assert max(r["device_distinct_cards"] for r in rows) >= 6


def test_a_day_without_settled_donations_gives_empty_features(lake: Path, tmp_path: Path) -> None:
    land(lake, labelled_donations(2, ["alpha"], START, 1, donations=5, rings=0))
    marts = tmp_path / "marts"
    quiet = (START + timedelta(days=5)).date().isoformat()  # nothing landed that day
    result = dg.materialize(DAILY_FEATURES, partition_key=quiet, resources=resources(lake, marts))
    assert checks(result) == {EVENT_ID_UNIQUE: True, FEATURES_ONE_ROW_PER_DONATION: True}
    table = pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, date.fromisoformat(quiet)))
    assert table.num_rows == 0 and table.schema.names[:2] == ["donation_id", "occurred_at"]


def test_review_decisions_are_labels_without_leaking_past_the_split_and_the_queue_shows_them(
    built: tuple[Path, Path, dict[str, object]], tmp_path: Path, events: list[Envelope]
) -> None:
    """A reviewer's `fraud` makes a clean donation a positive and `legitimate` a charged-back one a
    negative; the evaluation's training learns only from decisions made before the holdout's first day and
    grades the holdout on chargebacks alone; the queue carries the decision in force."""
    lake, built_marts, metadata = built
    marts = tmp_path / "marts"
    shutil.copytree(built_marts, marts)
    before = json.loads((model_dir(marts) / str(metadata["version"]) / "metrics.json").read_text())
    charged = charged_back_ids(events)
    first_day = pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, DAYS[0])).to_pylist()
    clean = [r["donation_id"] for r in first_day if r["donation_id"] not in charged]
    queued = [r.donation_id for r in review_queue(marts, DAYS[0]) if r.donation_id in charged]
    held_out = [
        r["donation_id"]
        for r in pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, DAYS[2])).to_pylist()
        if r["donation_id"] not in charged
    ]
    split_at = datetime.combine(DAYS[2], datetime.min.time(), UTC)  # 3 days: the holdout is the last one
    store = FraudReviewStore(marts.parent / "fraud_reviews.jsonl")
    known, late = split_at - timedelta(hours=1), split_at + timedelta(hours=1)
    store.record(clean[0], "fraud", reviewer="mila", role="moderator", at=known)
    store.record(clean[1], "fraud", reviewer="mila", role="moderator", at=known)
    store.record(queued[0], "legitimate", reviewer="olga", role="finance", note="bank confirmed", at=known)
    store.record(clean[2], "fraud", reviewer="mila", role="moderator", at=late)  # after the split
    store.record(held_out[0], "fraud", reviewer="mila", role="moderator", at=late)  # a holdout donation
    store.record(clean[3], "fraud", reviewer="mila", role="moderator", at=known)
    store.record(clean[3], "legitimate", reviewer="olga", role="finance", at=late)  # superseded: clean again

    got = dg.materialize([fraud_model], resources=resources(lake, marts))  # type: ignore[arg-type]
    (mat,) = got.get_asset_materialization_events()
    meta = {k: v.value for k, v in mat.materialization.metadata.items()}
    # The deployed model learns from every decision in force: +3 fraud on clean donations, -1 legitimate.
    assert meta["review_labels"] == 6 and meta["review_overrides"] == 5
    assert meta["train_positives"] == metadata["train_positives"] + 3  # type: ignore[operator]
    assert meta["version"] != metadata["version"]  # new labels, new model
    summary = json.loads((model_dir(marts) / str(meta["version"]) / "metrics.json").read_text())
    evaluation = summary["evaluation"]
    # The evaluation's training saw only the decisions made before the split (clean[3] was then fraud);
    # olga's `legitimate` removes a positive there only if the chargeback had arrived by the split...
    assert evaluation["train_review_labels"] == 4
    was_known = int(charged_back_at(events)[queued[0]] < split_at)
    assert evaluation["train_positives"] == before["evaluation"]["train_positives"] + 3 - was_known
    # ...and a late chargeback the reviewer already called legitimate is not counted as cut.
    late_before = before["evaluation"]["train_chargebacks_after_split"]
    assert evaluation["train_chargebacks_after_split"] == late_before - (1 - was_known)
    # ...and the holdout is graded on chargebacks only: the reviewer's fraud on a holdout donation is not.
    assert evaluation["holdout_positives"] == before["evaluation"]["holdout_positives"]
    assert evaluation["split_at"] == DAYS[2].isoformat()

    result = dg.materialize(
        [fraud_review_queue, fraud_queued_have_reasons, fraud_queue_above_threshold],
        partition_key=DAYS[0].isoformat(),
        resources=resources(lake, marts),  # type: ignore[arg-type]
    )
    assert checks(result) == {QUEUED_HAVE_REASONS: True, QUEUE_ABOVE_THRESHOLD: True}
    rows = pq.read_table(mart_partition_path(marts, FRAUD_REVIEW_MART, DAYS[0])).to_pylist()
    decided = {
        r["donation_id"]: (r["decision"], r["decided_by"], r["decided_at"]) for r in rows if r["decision"]
    }
    assert decided[queued[0]] == ("legitimate", "olga", known)
    assert all(r["decided_by"] is None and r["decided_at"] is None for r in rows if not r["decision"])
    # The mart keeps its earlier columns, in order, and adds the decision after them.
    assert pq.read_schema(mart_partition_path(marts, FRAUD_REVIEW_MART, DAYS[0])).names[-3:] == [
        "decision",
        "decided_by",
        "decided_at",
    ]


def test_the_evaluation_trains_only_on_chargebacks_that_arrived_before_the_split(
    built: tuple[Path, Path, dict[str, object]], events: list[Envelope]
) -> None:
    """A training donation whose chargeback lands after the holdout's first day is a negative for the
    evaluation's training (the model deployed at the split could not have known it), a positive for the
    deployed model; the holdout is still graded on every chargeback the lake holds."""
    _, marts, metadata = built
    split_at = datetime.combine(DAYS[2], datetime.min.time(), UTC)
    arrived = charged_back_at(events)
    training = [
        r["donation_id"]
        for day in DAYS[:2]
        for r in pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, day)).to_pylist()
    ]
    held_out = pq.read_table(mart_partition_path(marts, FRAUD_FEATURES_MART, DAYS[2]))["donation_id"]
    charged_held_out = sum(d.as_py() in arrived for d in held_out)
    early = [d for d in training if d in arrived and arrived[d] < split_at]
    late = [d for d in training if d in arrived and arrived[d] >= split_at]
    assert late  # the fixture has training donations charged back after the split
    summary = json.loads((model_dir(marts) / str(metadata["version"]) / "metrics.json").read_text())
    evaluation = summary["evaluation"]
    assert evaluation["train_positives"] == len(early)
    assert evaluation["train_chargebacks_after_split"] == len(late)
    assert metadata["train_chargebacks_after_split"] == len(late)
    assert evaluation["holdout_positives"] == charged_held_out  # graded on every chargeback, as before
    # The deployed model, refitted on every day, learns every chargeback, the late ones included.
    assert metadata["train_positives"] == len(early) + len(late) + charged_held_out
