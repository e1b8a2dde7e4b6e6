"""Recall@10 of the recommendations on a time-split holdout, against the popularity baseline.

`uv run python -m services.recommend_eval` generates co-watching (`services.cowatch`), trains on the
first days, and asks: of the channels each viewer discovered in the last days (watched then, never in
training), how many were in their top 10? Reported per model with the number of viewers evaluated;
docs/recommendations.md holds the figures. Exit status 1 when the model does not beat the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sklearn.decomposition import TruncatedSVD

from services.cowatch import Watch, generate_cowatching
from services.recommend import (
    GAME_WEIGHT,
    POPULARITY_WEIGHT,
    K,
    Recommendation,
    WatchMatrix,
    game_data,
    recommend,
    watch_matrix,
)


@dataclass(frozen=True)
class Holdout:
    train: list[Watch]
    discovered: dict[str, set[str]]  # viewer -> channels first watched in the test days


def time_split(watches: list[Watch], split: date) -> Holdout:
    """Train on days before `split`; the truth is each training viewer's new channels from `split` on."""
    train = [w for w in watches if w.day < split]
    seen: dict[str, set[str]] = defaultdict(set)
    for w in train:
        seen[w.viewer_id].add(w.channel_id)
    discovered: dict[str, set[str]] = defaultdict(set)
    for w in watches:
        if w.day >= split and w.viewer_id in seen and w.channel_id not in seen[w.viewer_id]:
            discovered[w.viewer_id].add(w.channel_id)
    return Holdout(train, dict(discovered))


def recall_at_k(recommended: list[Recommendation], discovered: dict[str, set[str]], k: int = K) -> float:
    """Mean over viewers with discoveries of |top-k ∩ discovered| / min(k, |discovered|)."""
    top: dict[str, set[str]] = defaultdict(set)
    for r in recommended:
        if r.rank <= k:
            top[r.viewer_id].add(r.channel_id)
    if not discovered:
        raise ValueError("no viewer discovered a channel in the test days: nothing to evaluate")
    recalls = [len(top[v] & truth) / min(k, len(truth)) for v, truth in discovered.items()]
    return sum(recalls) / len(recalls)


def svd_recommend(matrix: WatchMatrix, components: int, *, k: int = K) -> list[Recommendation]:
    """The matrix-factorisation alternative (TruncatedSVD of the same interest matrix), for comparison:
    each viewer's reconstructed row, channels already watched excluded."""
    svd = TruncatedSVD(n_components=components, random_state=0)
    scores = svd.fit_transform(matrix.interest) @ svd.components_
    out: list[Recommendation] = []
    for i, viewer in enumerate(matrix.viewers):
        row = scores[i]
        row[matrix.interest[i].indices] = -np.inf
        unwatched = [j for j in np.argsort(-row, kind="stable") if np.isfinite(row[j])]
        for rank, j in enumerate(unwatched[:k], start=1):
            out.append(Recommendation(viewer, rank, matrix.channels[j], float(row[j]), "svd"))
    return out


def evaluate(
    *,
    viewers: int,
    channels: int,
    genres: int,
    days: int,
    test_days: int,
    seed: int,
    explore: float = 0.1,
    svd: tuple[int, ...] = (),
    game_weights: tuple[float, ...] = (),
    off_genre_games: float = 0.2,
) -> dict[str, object]:
    data = generate_cowatching(
        viewers=viewers,
        channels=channels,
        genres=genres,
        days=days,
        seed=seed,
        explore=explore,
        off_genre_games=off_genre_games,
    )
    start = min(w.day for w in data.watches)
    holdout = time_split(data.watches, start + timedelta(days=days - test_days))
    matrix = watch_matrix((w.viewer_id, w.channel_id, w.minutes) for w in holdout.train)
    results = {
        "popularity baseline": recall_at_k(recommend(matrix, popularity_weight=1.0), holdout.discovered),
        "co-watching only": recall_at_k(recommend(matrix, popularity_weight=0.0), holdout.discovered),
        f"co-watching + popularity ({POPULARITY_WEIGHT:g})": recall_at_k(
            recommend(matrix), holdout.discovered
        ),
    }
    # Game affinity from the training days only (each channel's fixed main game), as the asset would see.
    games = game_data(((w.viewer_id, w.channel_id, w.minutes) for w in holdout.train), data.channel_game)
    results["game + popularity (no co-watching)"] = recall_at_k(
        recommend(matrix, games=games, game_weight=1.0 - POPULARITY_WEIGHT), holdout.discovered
    )
    for weight in game_weights:
        results[f"model + game ({weight:g})"] = recall_at_k(
            recommend(matrix, games=games, game_weight=weight), holdout.discovered
        )
    for components in svd:
        results[f"TruncatedSVD ({components})"] = recall_at_k(
            svd_recommend(matrix, components), holdout.discovered
        )
    return {
        "generator": {
            "viewers": viewers,
            "channels": channels,
            "genres": genres,
            "days": days,
            "seed": seed,
            "explore": explore,
            "off_genre_games": off_genre_games,
        },
        "train_days": days - test_days,
        "test_days": test_days,
        "train_watches": len(holdout.train),
        "viewers_evaluated": len(holdout.discovered),
        f"recall@{K}": {name: round(value, 4) for name, value in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--channels", type=int, default=300)
    parser.add_argument("--genres", type=int, default=10)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--explore", type=float, default=0.1, help="share of discoveries outside genres")
    parser.add_argument(
        "--svd", type=int, nargs="*", default=[], help="also score TruncatedSVD with these ranks"
    )
    parser.add_argument(
        "--game-weights",
        type=float,
        nargs="*",
        default=[0.05, 0.1, 0.2],
        help="also score the model blended with game affinity at these weights (the default blend "
        f"uses {GAME_WEIGHT:g})",
    )
    parser.add_argument(
        "--off-genre-games", type=float, default=0.2, help="share of channels whose game is off their genre"
    )
    args = parser.parse_args(argv)
    beaten = True
    for seed in args.seeds:
        report = evaluate(
            viewers=args.viewers,
            channels=args.channels,
            genres=args.genres,
            days=args.days,
            test_days=args.test_days,
            seed=seed,
            explore=args.explore,
            svd=tuple(args.svd),
            game_weights=tuple(args.game_weights),
            off_genre_games=args.off_genre_games,
        )
        print(json.dumps(report))
        recall = report[f"recall@{K}"]
        assert isinstance(recall, dict)
        model = recall[f"co-watching + popularity ({POPULARITY_WEIGHT:g})"]
        beaten = beaten and model > recall["popularity baseline"]
    print(
        "model beats the popularity baseline on every seed" if beaten else "MODEL DOES NOT BEAT THE BASELINE"
    )
    return 0 if beaten else 1


if __name__ == "__main__":
    sys.exit(main())
