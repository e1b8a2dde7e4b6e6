"""The fraud model: a calibrated probability of chargeback per donation, each with its top reasons.

Two kinds, chosen by the labels at hand (`train`):
- **supervised** when there are at least `MIN_LABELS` chargebacks and as many clean donations: a
  standardised logistic regression inside `CalibratedClassifierCV` (sigmoid, 3 folds), so a score of
  0.8 means about 80% of such donations were charged back. Reasons are per-feature contributions
  (coefficient × standardised value, averaged over the calibration folds), the largest positive first.
- **anomaly** otherwise: an `IsolationForest`; the score is the share of training donations that looked
  less anomalous (an empirical CDF, in [0, 1]). Reasons are the features furthest from the training
  median in units of the interquartile range.

`evaluate` replays the decision honestly: train on the earlier days, score the later days (a time
split, like deploying on Monday and judging on Friday), and compare with the edge's velocity rules
(`rules_flag`) on precision, recall and PR-AUC (average precision). The model's `version` is a hash of
the training data and the parameters, so the same data and settings give the same version.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_score, recall_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from services.fraud_features import FEATURE_NAMES, FEATURES

#: Fewest chargebacks (and clean donations) for the supervised model; below, the anomaly model.
MIN_LABELS = 20
#: How many reasons each score carries.
TOP_REASONS = 3

Kind = Literal["supervised", "anomaly"]


@dataclass(frozen=True)
class ModelParams:
    """Everything that shapes a model besides the data (part of its version)."""

    c: float = 1.0
    calibration_folds: int = 3
    anomaly_trees: int = 200
    seed: int = 7
    min_labels: int = MIN_LABELS
    #: Train on at most this many of the newest donations: fraud drifts, and 10 million rows would not fit
    #: a 2-core machine's budget (the `fraud_model` asset reads only these from the features mart).
    max_train_rows: int = 500_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "c": self.c,
            "calibration_folds": self.calibration_folds,
            "anomaly_trees": self.anomaly_trees,
            "seed": self.seed,
            "min_labels": self.min_labels,
            "max_train_rows": self.max_train_rows,
            "features": list(FEATURE_NAMES),
        }


@dataclass
class FraudModel:
    """A trained model and what it needs to explain its scores."""

    kind: Kind
    version: str
    estimator: Any
    medians: np.ndarray
    spreads: np.ndarray
    train_rows: int
    train_positives: int
    params: dict[str, Any] = field(default_factory=dict)
    # supervised: mean standardised coefficients and the scaler's centre and scale
    coefficients: np.ndarray | None = None
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None
    # anomaly: the training anomaly scores, sorted (for the empirical CDF)
    reference: np.ndarray | None = None


class TrainingError(ValueError):
    """The model cannot be trained on what was given (no rows, wrong columns)."""


def matrix(features: pl.DataFrame) -> np.ndarray:
    """The feature matrix in `FEATURE_NAMES` order (float64); a missing feature column is an error."""
    missing = [c for c in FEATURE_NAMES if c not in features.columns]
    if missing:
        raise TrainingError(f"features lack columns {missing}")
    return features.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in FEATURE_NAMES]).to_numpy()


def data_version(x: np.ndarray, y: np.ndarray | None, params: ModelParams) -> str:
    """First 16 hex digits of SHA-256 over the training matrix, the labels and the parameters."""
    h = hashlib.sha256()
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float64), allow_pickle=False)
    h.update(buf.getvalue())
    if y is not None:
        h.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    h.update(json.dumps(params.as_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _robust(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    medians = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    spreads = q75 - q25
    # A feature that is constant for most donations (counts, flags) still deviates: use its std, then 1.
    std = x.std(axis=0)
    spreads = np.where(spreads > 0, spreads, np.where(std > 0, std, 1.0))
    return medians, spreads


def train(
    features: pl.DataFrame, labels: pl.Series | np.ndarray | None, params: ModelParams | None = None
) -> FraudModel:
    """Fit the supervised model when the labels allow it, else the anomaly model."""
    params = params or ModelParams()
    x = matrix(features)
    if len(x) == 0:
        raise TrainingError("no donations to train on")
    y = None if labels is None else np.asarray(labels, dtype=np.int8)
    if y is not None and len(y) != len(x):
        raise TrainingError(f"{len(y)} labels for {len(x)} donations")
    medians, spreads = _robust(x)
    positives = int(y.sum()) if y is not None else 0
    version = data_version(x, y, params)
    if y is not None and positives >= params.min_labels and len(y) - positives >= params.min_labels:
        base = make_pipeline(StandardScaler(), LogisticRegression(C=params.c, max_iter=2000))
        model = CalibratedClassifierCV(base, method="sigmoid", cv=params.calibration_folds)
        model.fit(x, y)
        pipes: list[Pipeline] = [c.estimator for c in model.calibrated_classifiers_]
        coefficients = np.mean([p[-1].coef_[0] for p in pipes], axis=0)
        centre = np.mean([p[0].mean_ for p in pipes], axis=0)
        scale = np.mean([p[0].scale_ for p in pipes], axis=0)
        return FraudModel(
            "supervised", version, model, medians, spreads, len(x), positives, params.as_dict(),
            coefficients=coefficients, centre=centre, scale=scale,
        )  # fmt: skip
    forest = IsolationForest(n_estimators=params.anomaly_trees, random_state=params.seed).fit(x)
    reference = np.sort(-forest.score_samples(x))
    return FraudModel(
        "anomaly", version, forest, medians, spreads, len(x), positives, params.as_dict(), reference=reference
    )


def _describe(name: str, value: float, typical: float) -> str:
    return f"{FEATURES[name]}: {value:.3g} (typical {typical:.3g})"


def score(model: FraudModel, features: pl.DataFrame) -> tuple[np.ndarray, list[list[str]]]:
    """Scores in [0, 1] and, for each, its top reasons (never empty: at least the strongest feature)."""
    x = matrix(features)
    if len(x) == 0:
        return np.zeros(0), []
    if model.kind == "supervised":
        assert model.coefficients is not None and model.centre is not None and model.scale is not None
        scores = model.estimator.predict_proba(x)[:, 1]
        scale = np.where(model.scale > 0, model.scale, 1.0)
        weight = (x - model.centre) / scale * model.coefficients
    else:
        assert model.reference is not None
        raw = -model.estimator.score_samples(x)
        scores = np.searchsorted(model.reference, raw, side="right") / len(model.reference)
        weight = np.abs(x - model.medians) / model.spreads
    scores = np.clip(scores, 0.0, 1.0)
    order = np.argsort(-weight, axis=1, kind="stable")[:, :TOP_REASONS]
    reasons: list[list[str]] = []
    for i, top in enumerate(order):
        picked = [j for j in top if weight[i, j] > 0] or [int(top[0])]
        reasons.append([_describe(FEATURE_NAMES[j], float(x[i, j]), float(model.medians[j])) for j in picked])
    return scores, reasons


@dataclass(frozen=True)
class Metrics:
    """How a scorer did on the holdout at a threshold."""

    precision: float
    recall: float
    pr_auc: float
    flagged: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "pr_auc": self.pr_auc,
            "flagged": self.flagged,
        }


def metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> Metrics:
    """Precision and recall of `scores >= threshold`, and PR-AUC (average precision) of the ranking."""
    flagged = scores >= threshold
    has_both = 0 < int(y.sum()) < len(y)
    return Metrics(
        precision=float(precision_score(y, flagged, zero_division=0)),
        recall=float(recall_score(y, flagged, zero_division=0)),
        pr_auc=float(average_precision_score(y, scores)) if has_both else math.nan,
        flagged=int(flagged.sum()),
    )


@dataclass(frozen=True)
class Evaluation:
    """The time-split comparison of the model with the edge's rules."""

    kind: Kind
    train_rows: int
    train_positives: int
    holdout_rows: int
    holdout_positives: int
    split_at: str
    threshold: float
    model: Metrics
    rules: Metrics

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "train_rows": self.train_rows,
            "train_positives": self.train_positives,
            "holdout_rows": self.holdout_rows,
            "holdout_positives": self.holdout_positives,
            "split_at": self.split_at,
            "threshold": self.threshold,
            "model": self.model.as_dict(),
            "rules": self.rules.as_dict(),
        }


def split_day(features: pl.DataFrame, holdout_share: float = 0.3) -> date:
    """The first day of the holdout: the last `holdout_share` of the days with donations (at least one);
    needs at least two days."""
    days = features["occurred_at"].dt.date().unique().sort()
    if len(days) < 2:
        raise TrainingError("a time split needs donations on at least two days")
    held = max(1, round(len(days) * holdout_share))
    cut: date = days[len(days) - held]
    return cut


def time_split(features: pl.DataFrame, holdout_share: float = 0.3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Earlier days for training, the last `holdout_share` of the days for the holdout (whole days, so
    no day's donations sit on both sides); needs at least two days."""
    cut = split_day(features, holdout_share)
    day = pl.col("occurred_at").dt.date()
    return features.filter(day < cut), features.filter(day >= cut)


def evaluate(
    features: pl.DataFrame,
    labels: pl.Series,
    *,
    threshold: float,
    params: ModelParams | None = None,
    holdout_share: float = 0.3,
    train_labels: pl.Series | None = None,
) -> Evaluation:
    """Train on the earlier days, score the holdout, and compare with the rules on the same rows.

    `labels` grade the holdout; `train_labels` (same rows, default `labels`) are what the training days
    learn from, so a caller can train on labels known before the split and grade on other ones."""
    labelled = features.with_columns(
        labels.alias("label"), (labels if train_labels is None else train_labels).alias("train_label")
    )
    train_part, holdout = time_split(labelled, holdout_share)
    model = train(train_part, train_part["train_label"], params)
    y = holdout["label"].to_numpy().astype(np.int8)
    scores, _ = score(model, holdout)
    rule_scores = holdout["rules_flag"].is_not_null().cast(pl.Float64).to_numpy()
    return Evaluation(
        kind=model.kind,
        train_rows=model.train_rows,
        train_positives=model.train_positives,
        holdout_rows=len(holdout),
        holdout_positives=int(y.sum()),
        split_at=str(holdout["occurred_at"].dt.date().min()),
        threshold=threshold,
        model=metrics(y, scores, threshold),
        rules=metrics(y, rule_scores, 0.5),
    )
