"""The fraud model on small synthetic traffic: which kind it picks, calibrated scores with reasons, the
version, the metrics (one computed by hand) and the time-split evaluation against the rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from services.fraud_features import (
    CHARGED_BACK,
    FEATURES,
    REVERSAL_COLUMNS,
    chargeback_labels,
    donation_features,
    frames_from_events,
)
from services.fraud_model import (
    ModelParams,
    TrainingError,
    evaluate,
    metrics,
    score,
    split_day,
    time_split,
    train,
)
from services.fraud_patterns import labelled_donations
from services.fx import FxTable

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def drawn() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The features and the reversals (chargebacks with the time each arrived) of the drawn traffic."""
    events = labelled_donations(5, ["alpha", "beta"], START, 6, donations=1500, rings=30)
    donations, reversals = frames_from_events(events, FxTable.load())
    return donation_features(donations, reversals), reversals


@pytest.fixture(scope="module")
def labelled(drawn: tuple[pl.DataFrame, pl.DataFrame]) -> tuple[pl.DataFrame, pl.Series]:
    features, reversals = drawn
    return features, chargeback_labels(features, reversals)


def test_enough_chargebacks_train_a_calibrated_supervised_model_with_reasons(
    labelled: tuple[pl.DataFrame, pl.Series],
) -> None:
    features, labels = labelled
    model = train(features, labels)
    assert model.kind == "supervised"
    scores, reasons = score(model, features)
    assert scores.shape == (len(features),) and np.all((scores >= 0) & (scores <= 1))
    # Calibrated: the mean score is close to the share of chargebacks it was trained on.
    assert abs(scores.mean() - labels.mean()) < 0.03  # type: ignore[operator]
    assert all(1 <= len(r) <= 3 for r in reasons)
    labels_text = tuple(FEATURES.values())
    assert all(any(reason.startswith(text) for text in labels_text) for r in reasons for reason in r)
    # The riskiest donation is a real chargeback.
    top = int(np.argmax(scores))
    assert scores[top] > 0.8 and labels[top] == 1


def test_the_version_is_a_hash_of_data_and_parameters(labelled: tuple[pl.DataFrame, pl.Series]) -> None:
    features, labels = labelled
    first, again = train(features, labels), train(features, labels)
    assert first.version == again.version and len(first.version) == 16
    assert train(features, labels, ModelParams(c=0.5)).version != first.version
    flipped = labels.clone()
    flipped[0] = 1 - flipped[0]
    assert train(features, flipped).version != first.version


def test_without_enough_labels_the_anomaly_model_ranks_rings_high(
    labelled: tuple[pl.DataFrame, pl.Series],
) -> None:
    features, labels = labelled
    model = train(features, None)
    assert model.kind == "anomaly"
    scores, reasons = score(model, features)
    assert np.all((scores >= 0) & (scores <= 1)) and all(reasons)
    # Unsupervised, yet chargebacks sit well above the rest on average.
    y = labels.to_numpy()
    assert scores[y == 1].mean() > scores[y == 0].mean() + 0.2
    # Too few chargebacks also means the anomaly model.
    few = pl.Series("label", [1] * 5 + [0] * (len(features) - 5), dtype=pl.Int8)
    assert train(features, few).kind == "anomaly"


def test_metrics_match_a_hand_computation() -> None:
    y = np.array([1, 0, 1, 0])
    got = metrics(y, np.array([0.9, 0.8, 0.3, 0.1]), threshold=0.5)
    # Flagged 0.9 and 0.8: one of two right, one of two chargebacks found.
    assert (got.precision, got.recall, got.flagged) == (0.5, 0.5, 2)
    # Ranked: hit (1/1), miss, hit (2/3), miss -> average precision (1 + 2/3) / 2.
    assert got.pr_auc == pytest.approx((1 + 2 / 3) / 2)


def test_time_split_keeps_whole_days_and_the_model_beats_the_rules(
    labelled: tuple[pl.DataFrame, pl.Series],
) -> None:
    features, labels = labelled
    train_part, holdout = time_split(features, 0.3)
    assert train_part["occurred_at"].max() < holdout["occurred_at"].min()  # type: ignore[operator]
    assert len(train_part) + len(holdout) == len(features)
    assert holdout["occurred_at"].dt.date().n_unique() == 2  # 30% of 6 days
    result = evaluate(features, labels, threshold=0.5)
    assert result.kind == "supervised" and result.holdout_rows == len(holdout)
    assert result.model.pr_auc > result.rules.pr_auc
    assert result.model.recall >= result.rules.recall


def test_the_evaluation_can_train_on_other_labels_than_it_grades_with(
    labelled: tuple[pl.DataFrame, pl.Series],
) -> None:
    """How the asset keeps later review decisions out of training: `train_labels` teach, `labels` grade."""
    features, labels = labelled
    assert split_day(features, 0.3) == time_split(features, 0.3)[1]["occurred_at"].dt.date().min()
    graded = evaluate(features, labels, threshold=0.5)
    unlabelled = evaluate(features, labels, threshold=0.5, train_labels=pl.Series([0] * len(labels)))
    assert unlabelled.kind == "anomaly" and unlabelled.train_positives == 0  # nothing to learn from
    assert unlabelled.holdout_positives == graded.holdout_positives  # graded on the same labels


def test_the_evaluation_trains_only_on_chargebacks_that_arrived_before_the_split(
    drawn: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """Chargebacks land days after their donation: one arriving after the split is a negative for the
    evaluation's training (a model deployed at the split could not have known it), yet still grades the
    holdout and labels the final fit on every day."""
    split = datetime(2026, 11, 4, tzinfo=UTC)
    ids = pl.DataFrame({"donation_id": ["early", "at-split", "refunded", "clean"]})
    reversals_by_hand = pl.DataFrame(
        {
            "donation_id": ["early", "at-split", "refunded"],
            "occurred_at": [split - timedelta(seconds=1), split, split - timedelta(days=1)],
            "kind": [CHARGED_BACK, CHARGED_BACK, "refunded"],
        },
        schema=REVERSAL_COLUMNS,
    )
    assert chargeback_labels(ids, reversals_by_hand).to_list() == [1, 1, 0, 0]
    assert chargeback_labels(ids, reversals_by_hand, before=split).to_list() == [1, 0, 0, 0]

    features, reversals = drawn
    split_at = datetime.combine(split_day(features), datetime.min.time(), UTC)
    every = chargeback_labels(features, reversals)
    known = chargeback_labels(features, reversals, before=split_at)
    arrived = (
        reversals.filter(pl.col("kind") == CHARGED_BACK)
        .group_by("donation_id")
        .agg(pl.col("occurred_at").min().alias("charged_back_at"))
    )
    training = features["occurred_at"] < split_at
    late = (
        features.with_row_index("row")
        .join(arrived, on="donation_id")
        .filter((pl.col("occurred_at") < split_at) & (pl.col("charged_back_at") >= split_at))["row"]
    )
    assert len(late) > 0  # donations before the split whose chargeback landed after it
    assert all(every[i] == 1 and known[i] == 0 for i in late)

    honest = evaluate(features, every, threshold=0.5, train_labels=known)
    leaky = evaluate(features, every, threshold=0.5)
    assert honest.train_positives == int(known.filter(training).sum()) == leaky.train_positives - len(late)
    assert honest.holdout_positives == leaky.holdout_positives  # graded on every chargeback, as before
    assert train(features, every).train_positives == int(every.sum())  # the final fit keeps them


def test_bad_training_input_is_refused_clearly(labelled: tuple[pl.DataFrame, pl.Series]) -> None:
    features, labels = labelled
    with pytest.raises(TrainingError, match="no donations"):
        train(features.head(0), labels.head(0))
    with pytest.raises(TrainingError, match="labels for"):
        train(features, labels.head(10))
    with pytest.raises(TrainingError, match="lack columns"):
        train(features.drop("night"), labels)
    one_day = features.filter(pl.col("occurred_at").dt.date() == START.date())
    with pytest.raises(TrainingError, match="two days"):
        time_split(one_day)
