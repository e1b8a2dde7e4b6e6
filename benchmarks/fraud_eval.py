"""The fraud model against the edge's rules on a time-split holdout of seeded synthetic traffic.

    uv run python -m benchmarks.fraud_eval [--seed 2026] [--days 28] [--donations 40000] [--rings 200]

Draws regular donors and fraud rings with `services.fraud_patterns.labelled_donations` (8 demo channels),
computes the features of `services.fraud_features` (the `fraud_features` asset's code), trains on the
first 70% of the days with only the chargebacks received before the split and grades the rest on every
chargeback (`services.fraud_model.evaluate`, as the `fraud_model` asset does), and prints precision and
recall at the review threshold (EFIR_FRAUD_REVIEW_THRESHOLD) and PR-AUC for the model and for the
rules-only baseline, as a Markdown table. Same arguments, same numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from services.demo import demo_channels
from services.fraud_features import chargeback_labels, donation_features, frames_from_events
from services.fraud_model import evaluate, split_day
from services.fraud_patterns import labelled_donations
from services.fx import FxTable
from services.settings import Settings

START = datetime(2026, 10, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--donations", type=int, default=40_000)
    parser.add_argument("--rings", type=int, default=200)
    args = parser.parse_args()
    threshold = Settings().fraud_review_threshold
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    began = time.perf_counter()
    channels = [c.channel_id for c in demo_channels(8)]
    events = labelled_donations(
        args.seed, channels, START, args.days, donations=args.donations, rings=args.rings
    )
    donations, reversals = frames_from_events(events, FxTable.load())
    drawn = time.perf_counter()
    features = donation_features(donations, reversals)
    labels = chargeback_labels(features, reversals)
    split_at = datetime.combine(split_day(features), datetime.min.time(), UTC)
    train_labels = chargeback_labels(features, reversals, before=split_at)
    late = int(((labels > train_labels) & (features["occurred_at"] < split_at)).sum())
    featured = time.perf_counter()
    result = evaluate(features, labels, threshold=threshold, train_labels=train_labels)
    done = time.perf_counter()
    print(
        f"{len(features)} donations ({int(labels.sum())} charged back) over {args.days} days, "
        f"seed {args.seed}; "
        f"train {result.train_rows} ({result.train_positives} chargebacks received before the split; "
        f"{late} more arrived after it), holdout from {result.split_at}: "
        f"{result.holdout_rows} ({result.holdout_positives} chargebacks); {result.kind} model"
    )
    print(
        f"draw {drawn - began:.1f} s, features {featured - drawn:.1f} s, "
        f"train + score {done - featured:.1f} s"
    )
    print()
    print(f"| scorer | precision @ {threshold:g} | recall @ {threshold:g} | PR-AUC | flagged |")
    print("|---|---|---|---|---|")
    for name, m in (
        ("model (calibrated logistic regression)", result.model),
        ("rules only (edge velocity)", result.rules),
    ):
        print(f"| {name} | {m.precision:.3f} | {m.recall:.3f} | {m.pr_auc:.3f} | {m.flagged} |")


if __name__ == "__main__":
    main()
