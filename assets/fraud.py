"""Fraud marts: features per settled donation, the versioned model, daily scores with reasons, and the
review queue the moderation page reads.

Features and scoring rules live in `services.fraud_features` and `services.fraud_model`; these assets
gather the lake's settled donations (with the edge's fingerprints) and reversals, and keep the model as a
file under the marts root: `MARTS/fraud_model/<version>/model.joblib` with `metrics.json` beside it, and
`MARTS/fraud_model/current.json` naming the version the scores use (replaced atomically). The version is
a hash of the training data and parameters, so retraining on the same data rewrites the same model.

Labels are chargebacks and moderators' review decisions (`services.fraud_reviews`); `fraud_model` says
which wins when they disagree and how the time-split evaluation keeps later decisions and chargebacks
out of training.
"""

import json
import math
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import joblib
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from assets.donations import PROCESSED, REVERSALS, donations
from assets.lake import DONATIONS_TOPIC, LAKE_DONATIONS
from assets.mart_files import checked_day, mart_files, query_mart, write_mart_partition
from assets.partitions import DAILY, partition_day
from assets.resources import LakeResource, MartsResource
from services.events import DonationChargedBack
from services.fraud_features import (
    CHARGED_BACK,
    FEATURE_NAMES,
    REVERSAL_KINDS,
    VelocityRules,
    chargeback_labels,
    donation_features,
    empty_donations,
    with_rub_value,
)
from services.fraud_model import (
    FraudModel,
    ModelParams,
    TrainingError,
    evaluate,
    score,
    split_day,
    train,
)
from services.fraud_reviews import (
    FraudReviewStore,
    Review,
    ReviewError,
    latest,
    with_review_labels,
)
from services.fx import FxTable
from services.lake import mart_dir, mart_partition_path, partition_dir, tmp_path, topic_glob
from services.marts import (
    DONATIONS_MART,
    FRAUD_FEATURES_MART,
    FRAUD_MODEL_DIR,
    FRAUD_MODEL_METRICS,
    FRAUD_MODEL_POINTER,
    FRAUD_REVIEW_MART,
    FRAUD_SCORES_MART,
)
from services.settings import Settings

SCORES_IN_UNIT_INTERVAL = "scores_in_unit_interval"
SCORED_DONATIONS_EXIST = "scored_donations_exist_in_donations_mart"
QUEUED_HAVE_REASONS = "queued_donations_have_reasons"
QUEUE_ABOVE_THRESHOLD = "queue_above_threshold"
FEATURES_ONE_ROW_PER_DONATION = "features_one_row_per_donation"
MODEL_BEATS_RULES = "model_beats_rules_on_pr_auc"

CURRENT_MODEL = FRAUD_MODEL_POINTER
MODEL_FILE = "model.joblib"
METRICS_FILE = FRAUD_MODEL_METRICS

_TS = pa.timestamp("us", tz="UTC")
_IDS = [
    pa.field("donation_id", pa.string(), nullable=False),
    pa.field("occurred_at", _TS, nullable=False),
    pa.field("channel_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string()),
    pa.field("donor_key", pa.string(), nullable=False),
    pa.field("donor_name", pa.string()),
    pa.field("amount_minor", pa.int64(), nullable=False),
    pa.field("currency", pa.string(), nullable=False),
    pa.field("gross_rub_minor", pa.int64(), nullable=False),
]
FEATURES_SCHEMA = pa.schema(
    [
        *_IDS,
        *[pa.field(name, pa.float64(), nullable=False) for name in FEATURE_NAMES],
        pa.field("rules_flag", pa.string()),
    ]
)
SCORES_SCHEMA = pa.schema(
    [
        *_IDS,
        pa.field("score", pa.float64(), nullable=False),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("rules_flag", pa.string()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("model_kind", pa.string(), nullable=False),
    ]
)
# The decision in force when the queue was built (null: undecided); the page reads live decisions itself.
REVIEW_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        *SCORES_SCHEMA,
        pa.field("decision", pa.string()),
        pa.field("decided_by", pa.string()),
        pa.field("decided_at", _TS),
    ]
)


class FraudResource(dg.ConfigurableResource):
    """The fraud settings the assets need (defaults from `services.settings`)."""

    review_threshold: float
    lookback_days: int
    velocity_max_small: int
    velocity_small_minor: int
    velocity_window_seconds: int
    #: The review decisions log (`Settings.fraud_reviews_path`: EFIR_FRAUD_REVIEWS_FILE or DATA_DIR's).
    reviews_file: str

    def reviews(self) -> list[Review]:
        """Every recorded review decision, oldest first; an unreadable log fails the run clearly."""
        path = Path(self.reviews_file)
        try:
            return FraudReviewStore(path).history()
        except ReviewError as exc:
            raise dg.Failure(description=str(exc)) from exc

    @property
    def rules(self) -> VelocityRules:
        return VelocityRules(
            max_small=self.velocity_max_small,
            small_minor=self.velocity_small_minor,
            window=timedelta(seconds=self.velocity_window_seconds),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "FraudResource":
        return cls(
            review_threshold=settings.fraud_review_threshold,
            lookback_days=settings.fraud_lookback_days,
            velocity_max_small=settings.donation_velocity_max_small,
            velocity_small_minor=settings.donation_velocity_small_minor,
            velocity_window_seconds=settings.donation_velocity_window_seconds,
            reviews_file=str(settings.fraud_reviews_path),
        )


# ---- reading the lake ---------------------------------------------------------------------------

_FINGERPRINTS = ("ip_hash", "card_hash", "device_hash")


def _files(lake: Path, first: date, last: date) -> list[str]:
    files: list[str] = []
    day = first
    while day <= last:
        files.extend(sorted(str(p) for p in partition_dir(lake, DONATIONS_TOPIC, day).glob("*.parquet")))
        day += timedelta(days=1)
    return files


def read_donation_history(lake: Path, first: date, last: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Settled donations (with `donor_name`) and reversals landed on days [first, last], each event and
    each donation once; fingerprints are null in files landed before the events carried them."""
    files = _files(lake, first, last)
    reversals = pl.DataFrame(
        schema={"donation_id": pl.String, "occurred_at": pl.Datetime("us", "UTC"), "kind": pl.String}
    )
    if not files:
        return empty_donations().drop("gross_rub_minor").with_columns(
            pl.lit(None, pl.String).alias("donor_name")
        ), reversals
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        raw = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
        prints = ", ".join(p if p in raw.columns else f"NULL::VARCHAR AS {p}" for p in _FINGERPRINTS)
        con.register("raw", raw)
        # A republished event lands again under another offset; a donation settles once.
        once = (
            "QUALIFY row_number() OVER "
            "(PARTITION BY donation_id ORDER BY occurred_at, kafka_partition, kafka_offset) = 1"
        )
        settled = con.sql(
            "SELECT donation_id, occurred_at, channel_id, user_id, amount_minor, currency, "
            f"{prints}, donor_name "
            f"FROM raw WHERE event_type = $processed {once}",
            params={"processed": PROCESSED},
        ).pl()
        reversed_ = con.sql(
            "SELECT donation_id, occurred_at, event_type FROM raw WHERE list_contains($kinds, event_type) "
            "QUALIFY row_number() OVER (PARTITION BY donation_id, event_type ORDER BY occurred_at) = 1",
            params={"kinds": list(REVERSALS)},
        ).pl()
    finally:
        con.close()
    reversals = reversed_.select(
        "donation_id",
        pl.col("occurred_at").dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
        pl.col("event_type").replace_strict(REVERSAL_KINDS).alias("kind"),
    )
    settled = settled.with_columns(pl.col("occurred_at").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))
    return settled, reversals


def charged_back_donations(lake: Path) -> pl.DataFrame:
    """Every chargeback the lake holds (all days): the labels, with the time each became known."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        try:
            rel = con.sql(
                "SELECT donation_id, min(occurred_at) AS occurred_at, $kind AS kind "
                "FROM read_parquet($glob, union_by_name = true, hive_partitioning = false) "
                "WHERE event_type = $type GROUP BY donation_id",
                params={
                    "glob": topic_glob(lake, DONATIONS_TOPIC),
                    "type": DonationChargedBack.event_type,
                    "kind": CHARGED_BACK,
                },
            )
            frame = rel.pl()
        except duckdb.IOException:  # no donation files landed yet
            return pl.DataFrame(
                schema={"donation_id": pl.String, "occurred_at": pl.Datetime("us", "UTC"), "kind": pl.String}
            )
    finally:
        con.close()
    return frame.with_columns(pl.col("occurred_at").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))


def features_for_day(lake: Path, day: date, fraud: FraudResource) -> pl.DataFrame:
    """The day's settled donations with their features, computed over the lookback before the day."""
    settled, reversals = read_donation_history(lake, day - timedelta(days=fraud.lookback_days), day)
    names = settled.select("donation_id", "donor_name")
    valued = with_rub_value(settled.drop("donor_name"), FxTable.load())
    feats = donation_features(valued, reversals, fraud.rules)
    feats = feats.filter(pl.col("occurred_at").dt.date() == day).join(names, on="donation_id", how="left")
    return feats.select(FEATURES_SCHEMA.names)


def _table(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    if frame.is_empty():
        return schema.empty_table()
    return frame.select(schema.names).to_arrow().cast(schema)


# ---- assets -------------------------------------------------------------------------------------


@dg.asset(
    partitions_def=DAILY,
    deps=[LAKE_DONATIONS],
    group_name="fraud",
    kinds={"duckdb", "polars", "parquet"},
)
def fraud_features(
    context: dg.AssetExecutionContext, lake: LakeResource, marts: MartsResource, fraud: FraudResource
) -> dg.MaterializeResult:
    """Every settled donation of the day with its fraud features (velocity per donor, IP, card and device;
    amount pattern; account age; IP and device diversity; earlier chargebacks; time of day), each computed
    only from what was known before it, and the edge rule it would have tripped."""
    day = partition_day(context.partition_key)
    table = _table(features_for_day(lake.path, day, fraud), FEATURES_SCHEMA)
    path = write_mart_partition(marts.path, FRAUD_FEATURES_MART, day, table)
    flagged = table.num_rows - table.column("rules_flag").null_count
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "rules_flagged": flagged,
        }
    )


@dg.asset_check(asset=fraud_features, name=FEATURES_ONE_ROW_PER_DONATION, blocking=True)
def fraud_features_one_row_per_donation(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A donation is scored once: donation_id is unique in the day's features."""
    ((rows, distinct),) = query_mart(
        marts.path,
        FRAUD_FEATURES_MART,
        checked_day(context),
        "SELECT count(*), count(DISTINCT donation_id) FROM part",
    )
    return dg.AssetCheckResult(
        passed=rows == distinct, metadata={"rows": rows, "duplicates": int(rows) - int(distinct)}
    )


def model_dir(marts: Path) -> Path:
    return mart_dir(marts, FRAUD_MODEL_DIR)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = tmp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_current_model(marts: Path) -> tuple[FraudModel, dict[str, Any]]:
    """The model `current.json` names, and its metrics; a clear failure before any model was trained."""
    pointer = model_dir(marts) / CURRENT_MODEL
    if not pointer.exists():
        raise dg.Failure(
            description=f"no fraud model under {model_dir(marts)}: materialise fraud_model first"
        )
    current = json.loads(pointer.read_text())
    folder = model_dir(marts) / current["version"]
    model: FraudModel = joblib.load(folder / MODEL_FILE)
    return model, json.loads((folder / METRICS_FILE).read_text())


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


@dg.asset(deps=[fraud_features, LAKE_DONATIONS], group_name="fraud", kinds={"scikitlearn", "parquet"})
def fraud_model(lake: LakeResource, marts: MartsResource, fraud: FraudResource) -> dg.MaterializeResult:
    """The chargeback model over every day of features: supervised (calibrated logistic regression) when
    the lake holds enough chargebacks, an isolation forest otherwise; evaluated on a time split (the last
    30% of the days) against the edge's rules, then refitted on all days and stored under its version.

    Labels, by precedence: a moderator's latest review decision on the donation (`fraud` 1, `legitimate`
    0) wins; a donation nobody decided is 1 when it was charged back, else 0. A decision overrides only
    its own donation. The evaluation stays honest about time: its training days learn only from
    decisions recorded and chargebacks received before the holdout's first day (00:00 UTC), since later
    ones are knowledge the model deployed at the split could not have had (and reviewers may have seen
    holdout-period scores); the holdout is graded on every chargeback known at the build, and on
    chargebacks alone, because decisions exist only for donations a model queued, and grading on them
    would reward the model for its own selection. The deployed model is then refitted on every day with
    every chargeback and every decision."""
    params = ModelParams()
    files = mart_files(marts.path, FRAUD_FEATURES_MART, None)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        # The newest donations only (ModelParams.max_train_rows), so a large lake trains in bounded memory.
        features = con.sql(
            "SELECT * FROM read_parquet($files, hive_partitioning = false) "
            "ORDER BY occurred_at DESC, donation_id DESC LIMIT $rows",
            params={"files": files, "rows": params.max_train_rows},
        ).pl()
    finally:
        con.close()
    if features.is_empty():
        raise dg.Failure(description="fraud_features holds no donations yet: nothing to train on")
    features = features.with_columns(
        pl.col("occurred_at").dt.cast_time_unit("us").dt.convert_time_zone("UTC")
    ).sort("occurred_at", "donation_id")
    charged_back = charged_back_donations(lake.path)
    chargebacks = chargeback_labels(features, charged_back)
    reviews = fraud.reviews()
    decisions = latest(reviews)
    labels = with_review_labels(features["donation_id"], chargebacks, decisions)
    evaluation: dict[str, Any] | None
    reason = ""
    try:
        split_at = datetime.combine(split_day(features), time(), UTC)
        known = latest(reviews, before=split_at)
        # Training learns only the chargebacks that had arrived by the split; the holdout is graded on all.
        train_labels = with_review_labels(
            features["donation_id"], chargeback_labels(features, charged_back, before=split_at), known
        )
        evaluation = evaluate(
            features,
            chargebacks,
            threshold=fraud.review_threshold,
            params=params,
            train_labels=train_labels,
        ).as_dict()
        evaluation["train_review_labels"] = int(features["donation_id"].is_in(list(known)).sum())
        uncut = with_review_labels(features["donation_id"], chargebacks, known)
        evaluation["train_chargebacks_after_split"] = int(
            ((uncut > train_labels) & (features["occurred_at"] < split_at)).sum()
        )
    except TrainingError as exc:  # one day of data: no honest holdout yet
        evaluation = None
        reason = str(exc)
    model = train(features, labels, params)
    review_labels = int(features["donation_id"].is_in(list(decisions)).sum())
    overridden = int((labels != chargebacks.cast(pl.Int8)).sum())
    folder = model_dir(marts.path) / model.version
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "version": model.version,
        "kind": model.kind,
        "train_rows": model.train_rows,
        "train_positives": model.train_positives,
        "review_labels": review_labels,
        "review_overrides": overridden,
        "params": model.params,
        "evaluation": evaluation,
    }
    joblib.dump(model, tmp_path(folder / MODEL_FILE))
    os.replace(tmp_path(folder / MODEL_FILE), folder / MODEL_FILE)
    _write_atomically(folder / METRICS_FILE, json.dumps(summary, indent=2, sort_keys=True).encode())
    _write_atomically(model_dir(marts.path) / CURRENT_MODEL, json.dumps({"version": model.version}).encode())
    metadata: dict[str, Any] = {
        "version": model.version,
        "kind": model.kind,
        "train_rows": model.train_rows,
        "train_positives": model.train_positives,
        "review_labels": review_labels,
        "review_overrides": overridden,
        "path": dg.MetadataValue.path(str(folder / MODEL_FILE)),
    }
    if evaluation is not None:
        for who in ("model", "rules"):
            for name in ("precision", "recall", "pr_auc"):
                metadata[f"holdout_{who}_{name}"] = _finite(evaluation[who][name])
        metadata["holdout_rows"] = evaluation["holdout_rows"]
        metadata["holdout_positives"] = evaluation["holdout_positives"]
        metadata["train_chargebacks_after_split"] = evaluation["train_chargebacks_after_split"]
    else:
        metadata["evaluation"] = f"not evaluated: {reason}"
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(model.version))


@dg.asset_check(asset=fraud_model, name=MODEL_BEATS_RULES, blocking=False)
def fraud_model_beats_rules(marts: MartsResource) -> dg.AssetCheckResult:
    """The model ranks chargebacks better than the edge's rules on the time-split holdout (PR-AUC); a
    warning, not a stop: the rules still hold donations at the edge either way."""
    _, summary = load_current_model(marts.path)
    evaluation = summary.get("evaluation")
    if not evaluation:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"evaluated": False}
        )
    got, base = evaluation["model"]["pr_auc"], evaluation["rules"]["pr_auc"]
    passed = not math.isnan(got) and (math.isnan(base) or got > base)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"model_pr_auc": _finite(got), "rules_pr_auc": _finite(base)},
    )


@dg.asset(
    partitions_def=DAILY,
    deps=[fraud_features, fraud_model, donations],
    group_name="fraud",
    kinds={"scikitlearn", "parquet"},
)
def fraud_scores(context: dg.AssetExecutionContext, marts: MartsResource) -> dg.MaterializeResult:
    """Each settled donation of the day with its chargeback probability (or anomaly percentile) from the
    current model and the top reasons behind it."""
    day = partition_day(context.partition_key)
    model, _ = load_current_model(marts.path)
    source = mart_partition_path(marts.path, FRAUD_FEATURES_MART, day)
    if not source.exists():
        raise dg.Failure(
            description=f"mart {FRAUD_FEATURES_MART} has no partition {day}: materialise it first"
        )
    features = pl.DataFrame(pl.from_arrow(pq.read_table(source)))
    scores, reasons = score(model, features)
    scored = features.with_columns(
        pl.Series("score", scores, dtype=pl.Float64),
        pl.Series("reasons", reasons, dtype=pl.List(pl.String)),
        pl.lit(model.version).alias("model_version"),
        pl.lit(model.kind).alias("model_kind"),
    ).sort("score", "donation_id", descending=[True, False])
    table = _table(scored, SCORES_SCHEMA)
    path = write_mart_partition(marts.path, FRAUD_SCORES_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "model_version": model.version,
            "max_score": float(scores.max()) if len(scores) else 0.0,
        }
    )


@dg.asset_check(asset=fraud_scores, name=SCORES_IN_UNIT_INTERVAL, blocking=True)
def fraud_scores_in_unit_interval(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A score is a probability (or a percentile): never below 0, above 1 or NaN."""
    ((rows, bad),) = query_mart(
        marts.path,
        FRAUD_SCORES_MART,
        checked_day(context),
        "SELECT count(*), "
        "count(*) FILTER (WHERE score IS NULL OR isnan(score) OR score < 0 OR score > 1) FROM part",
    )
    return dg.AssetCheckResult(passed=bad == 0, metadata={"rows": rows, "out_of_range": bad})


@dg.asset_check(asset=fraud_scores, name=SCORED_DONATIONS_EXIST, blocking=True, additional_deps=[donations])
def fraud_scored_donations_exist(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """Every scored donation is a settled donation of the same day in the `donations` mart (scores never
    invent or misplace a donation)."""
    day = checked_day(context)
    con = duckdb.connect()
    try:
        con.read_parquet(mart_files(marts.path, FRAUD_SCORES_MART, day), hive_partitioning=False).create_view(
            "scores"
        )
        con.read_parquet(mart_files(marts.path, DONATIONS_MART, day), hive_partitioning=False).create_view(
            "money"
        )
        orphans = [
            str(d)
            for (d,) in con.sql(
                "SELECT s.donation_id FROM scores s ANTI JOIN (SELECT donation_id, occurred_at::DATE AS day "
                "FROM money WHERE event_type = $processed) m "
                "ON s.donation_id = m.donation_id AND s.occurred_at::DATE = m.day ORDER BY 1",
                params={"processed": PROCESSED},
            ).fetchall()
        ]
    finally:
        con.close()
    return dg.AssetCheckResult(
        passed=not orphans, metadata={"orphans": len(orphans), "first_orphans": orphans[:10]}
    )


@dg.asset(partitions_def=DAILY, deps=[fraud_scores], group_name="fraud", kinds={"duckdb", "parquet"})
def fraud_review_queue(
    context: dg.AssetExecutionContext, marts: MartsResource, fraud: FraudResource
) -> dg.MaterializeResult:
    """The day's donations whose score reaches the review threshold (EFIR_FRAUD_REVIEW_THRESHOLD),
    highest first, with their reasons: what moderators look at. Decided donations stay in the queue with
    the decision in force at the build (`decision`, `decided_by`, `decided_at`; null while undecided), so
    the day's queue stays whole for the audit; the page reads newer decisions from the log itself."""
    day = partition_day(context.partition_key)
    decisions = pa.Table.from_pylist(
        [
            {
                "donation_id": r.donation_id,
                "decision": r.decision,
                "decided_by": r.reviewer,
                "decided_at": r.decided_at,
            }
            for r in latest(fraud.reviews()).values()
        ],
        schema=pa.schema(
            [
                ("donation_id", pa.string()),
                ("decision", pa.string()),
                ("decided_by", pa.string()),
                ("decided_at", _TS),
            ]
        ),
    )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.read_parquet(mart_files(marts.path, FRAUD_SCORES_MART, day), hive_partitioning=False).create_view(
            "part"
        )
        con.register("decisions", decisions)
        queued = con.sql(
            "SELECT $day::DATE AS day, part.*, d.decision, d.decided_by, d.decided_at "
            "FROM part LEFT JOIN decisions d USING (donation_id) WHERE score >= $threshold "
            "ORDER BY score DESC, donation_id",
            params={"day": day, "threshold": fraud.review_threshold},
        ).to_arrow_table()
    finally:
        con.close()
    table = queued.select(REVIEW_SCHEMA.names).cast(REVIEW_SCHEMA)
    path = write_mart_partition(marts.path, FRAUD_REVIEW_MART, day, table)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": table.num_rows,
            "threshold": fraud.review_threshold,
            "decided": table.num_rows - table.column("decision").null_count,
        }
    )


@dg.asset_check(asset=fraud_review_queue, name=QUEUED_HAVE_REASONS, blocking=True)
def fraud_queued_have_reasons(
    context: dg.AssetCheckExecutionContext, marts: MartsResource
) -> dg.AssetCheckResult:
    """A moderator is never shown a score without why: every queued donation has at least one reason."""
    ((rows, bare),) = query_mart(
        marts.path,
        FRAUD_REVIEW_MART,
        checked_day(context),
        "SELECT count(*), count(*) FILTER (WHERE reasons IS NULL OR len(reasons) = 0) FROM part",
    )
    return dg.AssetCheckResult(passed=bare == 0, metadata={"queued": rows, "without_reasons": bare})


@dg.asset_check(asset=fraud_review_queue, name=QUEUE_ABOVE_THRESHOLD, blocking=True)
def fraud_queue_above_threshold(
    context: dg.AssetCheckExecutionContext, marts: MartsResource, fraud: FraudResource
) -> dg.AssetCheckResult:
    """The queue holds exactly the day's scores at or above the threshold (none missing, none extra)."""
    day = checked_day(context)
    ((low,),) = query_mart(
        marts.path,
        FRAUD_REVIEW_MART,
        day,
        f"SELECT count(*) FROM part WHERE score < {float(fraud.review_threshold)!r}",
    )
    ((queued,),) = query_mart(marts.path, FRAUD_REVIEW_MART, day, "SELECT count(*) FROM part")
    ((due,),) = query_mart(
        marts.path,
        FRAUD_SCORES_MART,
        day,
        f"SELECT count(*) FROM part WHERE score >= {float(fraud.review_threshold)!r}",
    )
    return dg.AssetCheckResult(
        passed=low == 0 and queued == due,
        metadata={"queued": queued, "due": due, "below_threshold": low},
    )


FRAUD_ASSETS = [fraud_features, fraud_model, fraud_scores, fraud_review_queue]
FRAUD_CHECKS = [
    fraud_features_one_row_per_donation,
    fraud_model_beats_rules,
    fraud_scores_in_unit_interval,
    fraud_scored_donations_exist,
    fraud_queued_have_reasons,
    fraud_queue_above_threshold,
]
