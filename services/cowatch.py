"""A synthetic co-watching generator: who watches which channel for how long, day by day.

Real recommendation data cannot ship with the repository, and uniform random viewing has no structure
for a recommender to find (every model ties the popularity baseline), so this generator reproduces what
makes co-watching informative on streaming platforms:

- channels belong to genres (communities) and their popularity is Zipf-skewed, within a genre and overall;
- each channel has a fixed main game, mostly one of its genre's games, with the catalogue's skew
  (`services.games.main_games`), so viewers' game preferences follow their genres;
- each viewer prefers one or two genres (a Dirichlet mix), watches a few channels habitually and
  discovers new ones mostly inside their genres, sometimes anywhere (exploration);
- activity is heavy-tailed (a few viewers watch every day, most a few times a month), and minutes per
  session are log-normal.

It is deterministic for a seed. The recommendation evaluation (`services.recommend_eval`) uses it, and
the 10M-event generator may reuse it for view heartbeats (docs/contracts.md, "Co-watching generator").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from services.games import main_games


@dataclass(frozen=True, slots=True)
class Watch:
    """One viewer watching one channel on one day for `minutes` (a day's sessions summed)."""

    day: date
    viewer_id: str
    channel_id: str
    minutes: int


@dataclass(frozen=True, slots=True)
class CoWatching:
    """The generated watches plus the ground truth behind them (for tests and notebooks)."""

    watches: list[Watch]
    channel_genre: dict[str, int]  # channel -> genre index
    viewer_genres: dict[str, list[float]]  # viewer -> preference weight per genre (sums to 1)
    # channel -> its fixed main game (slug), mostly one of its genre's (`services.games.main_games`)
    channel_game: dict[str, str] = field(default_factory=dict)


def generate_cowatching(
    *,
    viewers: int = 2000,
    channels: int = 200,
    genres: int = 8,
    days: int = 28,
    start: date = date(2026, 10, 1),
    seed: int = 7,
    explore: float = 0.1,
    habit: float = 0.6,
    zipf: float = 1.1,
    off_genre_games: float = 0.2,
) -> CoWatching:
    """Daily (viewer, channel, minutes) watches of `viewers` over `channels` in `genres` for `days` days.

    `explore` is the chance a discovery ignores the viewer's genres; `habit` the chance a session goes
    back to a channel the viewer already watched; `zipf` the popularity skew exponent;
    `off_genre_games` the share of channels whose main game is not one of their genre's. Viewer ids are
    `v00001`..., channel ids `c0001`... (valid node channel and user ids).
    """
    if min(viewers, channels, genres, days) < 1 or channels < genres:
        raise ValueError("viewers, channels, genres and days must be positive, and channels >= genres")
    if not (0 <= explore <= 1 and 0 <= habit <= 1):
        raise ValueError("explore and habit are probabilities in [0, 1]")
    rng = np.random.default_rng(seed)
    channel_ids = [f"c{i:04d}" for i in range(1, channels + 1)]
    viewer_ids = [f"v{i:05d}" for i in range(1, viewers + 1)]
    genre_of = np.arange(channels) % genres  # every genre gets channels
    rng.shuffle(genre_of)
    popularity = 1.0 / np.arange(1, channels + 1) ** zipf  # a global Zipf rank...
    popularity = popularity[rng.permutation(channels)]  # ...given to channels at random
    in_genre = [np.flatnonzero(genre_of == g) for g in range(genres)]
    genre_weights = [popularity[idx] / popularity[idx].sum() for idx in in_genre]
    overall = popularity / popularity.sum()

    # One or two favourite genres per viewer, concentrated (alpha < 1).
    prefs = np.zeros((viewers, genres))
    for v in range(viewers):
        favourites = rng.choice(genres, size=1 + int(rng.random() < 0.5), replace=False)
        prefs[v, favourites] = rng.dirichlet(np.full(len(favourites), 0.8))
    prefs = 0.9 * prefs + 0.1 / genres  # a little interest in everything
    activity = np.minimum(rng.lognormal(mean=-1.2, sigma=0.9, size=viewers), 3.0)  # sessions per day

    watches: list[Watch] = []
    habits: list[list[int]] = [[] for _ in range(viewers)]
    for d in range(days):
        day = start + timedelta(days=d)
        sessions = rng.poisson(activity)
        for v in map(int, np.flatnonzero(sessions)):
            minutes: dict[int, int] = {}
            for _ in range(int(sessions[v])):
                if habits[v] and rng.random() < habit:
                    channel = int(rng.choice(habits[v]))
                elif rng.random() < explore:
                    channel = int(rng.choice(channels, p=overall))
                else:
                    genre = int(rng.choice(genres, p=prefs[v]))
                    channel = int(in_genre[genre][rng.choice(len(in_genre[genre]), p=genre_weights[genre])])
                if channel not in habits[v]:
                    habits[v].append(channel)
                minutes[channel] = minutes.get(channel, 0) + max(1, int(rng.lognormal(3.0, 0.8)))
            watches.extend(Watch(day, viewer_ids[v], channel_ids[c], m) for c, m in sorted(minutes.items()))
    return CoWatching(
        watches=watches,
        channel_genre={channel_ids[c]: int(genre_of[c]) for c in range(channels)},
        viewer_genres={viewer_ids[v]: [float(x) for x in prefs[v]] for v in range(viewers)},
        channel_game=dict(
            zip(
                channel_ids,
                main_games([int(g) for g in genre_of], genres, seed=seed, off_genre=off_genre_games),
                strict=True,
            )
        ),
    )
