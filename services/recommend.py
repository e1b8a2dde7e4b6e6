"""Channel recommendations for viewers: item-item co-watching blended with popularity (and friends).

Why item-item cosine: it is exact and explainable ("viewers of X also watch Y"), needs no training
loop, and works with a few thousand channels on two cores; the evaluation (`services.recommend_eval`)
shows it beats recommending the most popular channels. The rules, one place each:

- A viewer's interest in a channel is log(1 + minutes watched) in the window: a marathon viewer does not
  outweigh ten regular ones.
- Channel similarity is the cosine of their viewer columns (diagonal zeroed), and a viewer's co-watching
  score for a channel is the sum of its similarities to what they watched, scaled so their best is 1.
- Popularity is log(1 + distinct viewers), scaled so the most watched channel is 1; it breaks ties and
  is all a viewer with no co-watching signal gets (cold start).
- Friends, when a social graph is given and the viewer has friends among the window's viewers: the share
  of those friends who watched the channel in the window. The graph comes from the platform's social
  service (the `social_graph` asset, `services.social`); viewers without friends keep the plain blend.
- Game affinity, when game data is given and the viewer has any: the share of the viewer's watch time
  spent on the channel's (current or last) game, so a channel playing what the viewer watches most
  scores highest; a channel with no known game scores 0 here.
- score = weights of those parts summed (weights sum to 1, so scores are in [0, 1]); channels the viewer
  already watched in the window are never recommended (recommendations are for discovery); at most
  `k` per viewer, best first, ties broken by channel id so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

#: The mart written by `assets.recommendations` (`MARTS/viewer_recommendations/date=.../part.parquet`).
RECOMMENDATIONS_MART = "viewer_recommendations"
K = 10
#: Days of `audience_daily` (ending with the partition's day) the recommendations learn from.
WINDOW_DAYS = 28
#: Share of the score from popularity, and from friends when the viewer has any; the rest is co-watching.
POPULARITY_WEIGHT = 0.1
#: 0.3: on the generated holdout with a synthetic social graph (friends mostly share a favourite genre)
#: it raised recall@10 over the plain blend on every seed (+0.010 to +0.016, docs/recommendations.md).
#: Giving the same share to popularity instead gains as much there (a homophily-only graph tells little
#: that co-watching does not), so the weight is not raised further before real friendships say more.
FRIENDS_WEIGHT = 0.3
#: Share of the score from game affinity when the viewer has game data. Zero by default: on the
#: generated holdout every weight tried (0.05-0.3) lowered recall@10 a little (docs/recommendations.md),
#: because co-watching already finds the communities games stand for. Callers may pass their own.
GAME_WEIGHT = 0.0
#: Viewers scored per block: bounds the dense (viewers x channels) score block in memory.
BLOCK = 2048

CO_WATCHING, POPULAR, FRIENDS, GAME = "co_watching", "popular", "friends", "game"


@dataclass(frozen=True, slots=True)
class Recommendation:
    viewer_id: str
    rank: int  # 1 = best
    channel_id: str
    score: float  # in [0, 1]
    source: str  # the part that contributed most: co_watching, popular, friends or game


@dataclass(frozen=True)
class WatchMatrix:
    """Viewers x channels interest (log1p of minutes), with the ids of its rows and columns."""

    interest: sparse.csr_matrix
    viewers: list[str]
    channels: list[str]


def watch_matrix(watched: Iterable[tuple[str, str, int]]) -> WatchMatrix:
    """From (viewer, channel, minutes) rows (repeats add up); rows with no minutes are no interest."""
    totals: dict[tuple[str, str], int] = {}
    for viewer, channel, minutes in watched:
        if minutes < 0:
            raise ValueError(f"negative minutes for viewer {viewer!r} on channel {channel!r}: {minutes}")
        if minutes:
            totals[(viewer, channel)] = totals.get((viewer, channel), 0) + minutes
    viewers = sorted({v for v, _ in totals})
    channels = sorted({c for _, c in totals})
    row = {v: i for i, v in enumerate(viewers)}
    col = {c: j for j, c in enumerate(channels)}
    data = np.log1p(np.fromiter(totals.values(), dtype=np.float64, count=len(totals)))
    rows = np.fromiter((row[v] for v, _ in totals), dtype=np.int64, count=len(totals))
    cols = np.fromiter((col[c] for _, c in totals), dtype=np.int64, count=len(totals))
    interest = sparse.csr_matrix((data, (rows, cols)), shape=(len(viewers), len(channels)))
    return WatchMatrix(interest, viewers, channels)


def channel_similarity(interest: sparse.csr_matrix) -> sparse.csr_matrix:
    """Cosine similarity of channels' viewer columns, with each channel's similarity to itself zeroed."""
    columns = normalize(interest.tocsc(), norm="l2", axis=0)
    similarity = (columns.T @ columns).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return similarity


def popularity(interest: sparse.csr_matrix) -> np.ndarray:
    """log(1 + distinct viewers) per channel, scaled so the most watched channel scores 1."""
    viewers = np.asarray((interest > 0).sum(axis=0)).ravel().astype(np.float64)
    scaled = np.log1p(viewers)
    top = scaled.max(initial=0.0)
    return scaled / top if top > 0 else scaled


@dataclass(frozen=True)
class GameData:
    """What the game part needs: each channel's current (or last) game, and each viewer's watch time per
    game (minutes, or any non-negative amounts: only their shares matter)."""

    channel_game: Mapping[str, str]
    viewer_game_minutes: Mapping[str, Mapping[str, float]]


def game_data(watched: Iterable[tuple[str, str, int]], channel_game: Mapping[str, str]) -> GameData:
    """GameData when each channel has one fixed game: a viewer's minutes on a channel count for its game."""
    minutes: dict[str, dict[str, float]] = {}
    for viewer, channel, mins in watched:
        game = channel_game.get(channel, "")
        if game and mins > 0:
            per_viewer = minutes.setdefault(viewer, {})
            per_viewer[game] = per_viewer.get(game, 0.0) + mins
    return GameData(channel_game, minutes)


def _game_affinity(
    games: GameData, viewers: list[str], channels: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per viewer with game time: their share of it per game (a vector over the known games, plus a 0 for
    "no game"); and each channel's index into it."""
    names = sorted({g for g in games.channel_game.values() if g})
    index = {g: i for i, g in enumerate(names)}
    column = np.array(
        [index.get(games.channel_game.get(c, ""), len(names)) for c in channels], dtype=np.int64
    )
    shares: dict[str, np.ndarray] = {}
    for viewer in viewers:
        per_game = games.viewer_game_minutes.get(viewer, {})
        vector = np.zeros(len(names) + 1)
        for game, amount in per_game.items():
            if amount < 0:
                raise ValueError(f"negative watch time for viewer {viewer!r} on game {game!r}: {amount}")
            if game in index:
                vector[index[game]] += amount
        total = vector.sum()
        if total > 0:
            shares[viewer] = vector / total
    return shares, column


def _top(
    viewer: str, scores: np.ndarray, parts: list[tuple[str, np.ndarray]], channels: list[str], k: int
) -> list[Recommendation]:
    """The viewer's `k` best channels among those with a positive, finite score."""
    candidates = np.flatnonzero(np.isfinite(scores) & (scores > 0))
    # Best score first; among equal scores the smaller channel id (columns are sorted by id).
    order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
    out = []
    for rank, j in enumerate(order, start=1):
        source = max(parts, key=lambda part: part[1][j])[0]
        out.append(Recommendation(viewer, rank, channels[j], float(scores[j]), source))
    return out


def recommend(
    matrix: WatchMatrix,
    *,
    k: int = K,
    popularity_weight: float = POPULARITY_WEIGHT,
    friends: Mapping[str, Iterable[str]] | None = None,
    friends_weight: float = FRIENDS_WEIGHT,
    viewers: Iterable[str] | None = None,
    games: GameData | None = None,
    game_weight: float = GAME_WEIGHT,
) -> list[Recommendation]:
    """Up to `k` channels per viewer of `matrix` (or of `viewers` among them) they have not watched."""
    if k < 1:
        raise ValueError("k must be at least 1")
    social_weight = friends_weight if friends is not None else 0.0
    genre_weight = game_weight if games is not None else 0.0
    shares = (popularity_weight, social_weight, genre_weight)
    if not (all(0 <= w <= 1 for w in shares) and sum(shares) <= 1):
        raise ValueError("popularity, friends and game weights are shares in [0, 1] summing to at most 1")
    affinity, game_column = (
        _game_affinity(games, matrix.viewers, matrix.channels) if games is not None else ({}, np.zeros(0))
    )
    interest = matrix.interest
    similarity = channel_similarity(interest)
    popular = popularity(interest)
    index = {v: i for i, v in enumerate(matrix.viewers)}
    wanted = [index[v] for v in viewers if v in index] if viewers is not None else list(range(len(index)))
    watched_by = (interest > 0).astype(np.float64).tocsr()
    out: list[Recommendation] = []
    for start in range(0, len(wanted), BLOCK):
        block = wanted[start : start + BLOCK]
        co = np.asarray((interest[block] @ similarity).todense())
        best = co.max(axis=1, keepdims=True)
        co = np.divide(co, best, out=np.zeros_like(co), where=best > 0)
        for offset, i in enumerate(block):
            viewer = matrix.viewers[i]
            mates = [index[f] for f in (friends or {}).get(viewer, ()) if f in index and f != viewer]
            social = (
                np.asarray(watched_by[mates].sum(axis=0)).ravel() / len(mates)
                if mates
                else np.zeros(len(matrix.channels))
            )
            w_friends = social_weight if mates else 0.0
            viewer_shares = affinity.get(viewer)
            w_game = genre_weight if viewer_shares is not None else 0.0
            game_part = (
                viewer_shares[game_column] if viewer_shares is not None else np.zeros(len(matrix.channels))
            )
            w_co = 1.0 - popularity_weight - w_friends - w_game
            parts = [
                (CO_WATCHING, w_co * co[offset]),
                (POPULAR, popularity_weight * popular),
                (FRIENDS, w_friends * social),
                (GAME, w_game * game_part),
            ]
            scores = parts[0][1] + parts[1][1] + parts[2][1] + parts[3][1]
            scores[interest[i].indices] = -np.inf  # already watched in the window: not a discovery
            out.extend(_top(viewer, scores, parts, matrix.channels, k))
    return out


def popular_baseline(matrix: WatchMatrix, *, k: int = K) -> list[Recommendation]:
    """The baseline the model must beat: the most watched channels the viewer has not watched yet."""
    return recommend(matrix, k=k, popularity_weight=1.0, friends_weight=0.0, game_weight=0.0)
