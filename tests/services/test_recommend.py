"""The recommendation rules on a case small enough to compute by hand, the evaluation's split and
metric, and the co-watching generator's structure."""

from __future__ import annotations

import math
from datetime import date

import pytest

from services.cowatch import Watch, generate_cowatching
from services.recommend import (
    CO_WATCHING,
    FRIENDS,
    GAME,
    POPULAR,
    GameData,
    Recommendation,
    game_data,
    popular_baseline,
    recommend,
    watch_matrix,
)
from services.recommend_eval import (
    evaluate,
    recall_at_k,
    share_sharing_a_channel,
    svd_recommend,
    synthetic_friends,
    time_split,
)

# Everyone watched 60 minutes of each channel, so every interest is log(61) and the cosine of two
# channels is |shared viewers| / sqrt(|viewers of one| * |viewers of the other|).
#   a: v1 v2 v3   b: v1 v2 v5   c: v2 v3   d: v4 v5
WATCHED = {"v1": "ab", "v2": "abc", "v3": "ac", "v4": "d", "v5": "bd"}
ROWS = [(v, c, 60) for v, channels in WATCHED.items() for c in channels]


def by_viewer(recs: list[Recommendation]) -> dict[str, list[tuple[str, float, str]]]:
    out: dict[str, list[tuple[str, float, str]]] = {}
    for r in sorted(recs, key=lambda r: (r.viewer_id, r.rank)):
        out.setdefault(r.viewer_id, []).append((r.channel_id, round(r.score, 6), r.source))
    return out


def test_a_tiny_case_by_hand() -> None:
    # cos(a,c) = 2/sqrt(3*2), cos(b,c) = 1/sqrt(3*2), cos(b,d) = 1/sqrt(3*2), cos(a,d) = 0.
    # v1 (a, b): co(c) = 3/sqrt(6), co(d) = 1/sqrt(6); scaled by the best: c 1, d 1/3.
    # Popularity: log(1 + viewers) / log(1 + 3): a, b -> 1; c, d -> log 3 / log 4.
    pop_cd = math.log(3) / math.log(4)
    # score = 0.9 co + 0.1 popularity.
    expected_v1 = [
        ("c", round(0.9 + 0.1 * pop_cd, 6), CO_WATCHING),
        ("d", round(0.3 + 0.1 * pop_cd, 6), CO_WATCHING),
    ]
    # v4 (d): co(b) = 1/sqrt(6) (scaled 1), co(a) = co(c) = 0: b 0.9 + 0.1; a 0.1 (popular); c 0.1 pop_cd.
    expected_v4 = [("b", 1.0, CO_WATCHING), ("a", 0.1, POPULAR), ("c", round(0.1 * pop_cd, 6), POPULAR)]
    got = by_viewer(recommend(watch_matrix(ROWS)))
    assert got["v1"] == expected_v1
    assert got["v4"] == expected_v4
    # Nobody is recommended what they watched; v2 has only d left: co(d) = cos(a,d)+cos(b,d)+cos(c,d).
    assert [c for c, _, _ in got["v2"]] == ["d"]
    for viewer, recs in got.items():
        assert not {c for c, _, _ in recs} & set(WATCHED[viewer])


def test_k_caps_the_list_and_ties_break_by_channel_id() -> None:
    recs = by_viewer(recommend(watch_matrix(ROWS), k=1))
    assert recs["v4"] == [("b", 1.0, CO_WATCHING)]
    # The baseline: v1 has c and d left, equally popular: c first by id.
    assert [c for c, _, _ in by_viewer(popular_baseline(watch_matrix(ROWS)))["v1"]] == ["c", "d"]


def test_minutes_are_dampened_and_repeats_add_up() -> None:
    matrix = watch_matrix([("v1", "a", 30), ("v1", "a", 30), ("v2", "a", 0), ("v2", "b", 5)])
    assert matrix.viewers == ["v1", "v2"] and matrix.channels == ["a", "b"]
    assert matrix.interest[0, 0] == pytest.approx(math.log1p(60))
    assert matrix.interest[1, 0] == 0  # zero minutes is no interest


def test_friends_blend_in_when_given() -> None:
    # v4's friends v2 (a, b, c) and v3 (a, c): friends(a) = 2/2, friends(b) = 1/2, friends(c) = 2/2;
    # unknown friends are ignored. score = 0.6 co + 0.1 popularity + 0.3 friends.
    pop_cd = math.log(3) / math.log(4)
    got = by_viewer(recommend(watch_matrix(ROWS), friends={"v4": ["v2", "v3", "nobody"]}))
    assert got["v4"] == [
        ("b", round(0.6 + 0.1 + 0.3 * 0.5, 6), CO_WATCHING),
        ("a", round(0.1 + 0.3, 6), FRIENDS),
        ("c", round(0.1 * pop_cd + 0.3, 6), FRIENDS),
    ]
    # Viewers without friends keep the plain blend.
    assert got["v1"] == by_viewer(recommend(watch_matrix(ROWS)))["v1"]


@pytest.mark.parametrize(
    ("rows", "kw", "message"),
    [
        ([("v", "c", -1)], {}, "negative minutes"),
        (ROWS, {"k": 0}, "k must be"),
        (ROWS, {"popularity_weight": 1.5}, "weights"),
        (ROWS, {"popularity_weight": 0.8, "friends": {}, "friends_weight": 0.3}, "weights"),
    ],
)
def test_bad_input_is_refused_clearly(
    rows: list[tuple[str, str, int]], kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        recommend(watch_matrix(rows), **kw)  # type: ignore[arg-type]


def test_time_split_and_recall_by_hand() -> None:
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    watches = [
        Watch(d1, "v1", "a", 10),
        Watch(d2, "v1", "a", 10),  # not a discovery: seen in training
        Watch(d2, "v1", "b", 10),
        Watch(d2, "v1", "c", 10),
        Watch(d2, "v9", "z", 10),  # no training history: not evaluated
    ]
    holdout = time_split(watches, d2)
    assert holdout.train == watches[:1] and holdout.discovered == {"v1": {"b", "c"}}
    recs = [Recommendation("v1", 1, "b", 0.9, CO_WATCHING), Recommendation("v1", 2, "x", 0.5, POPULAR)]
    assert recall_at_k(recs, holdout.discovered) == 0.5
    assert recall_at_k(recs, holdout.discovered, k=1) == 1.0  # 1 hit of min(1, 2)


def test_the_generator_is_deterministic_and_has_communities() -> None:
    one = generate_cowatching(viewers=300, channels=40, genres=4, days=10, seed=3)
    assert one == generate_cowatching(viewers=300, channels=40, genres=4, days=10, seed=3)
    assert all(w.minutes >= 1 for w in one.watches)
    # Viewers mostly watch channels of their favourite genres.
    in_favourite = sum(
        1 for w in one.watches if one.viewer_genres[w.viewer_id][one.channel_genre[w.channel_id]] >= 0.1
    )
    assert in_favourite / len(one.watches) > 0.7
    with pytest.raises(ValueError, match="channels >= genres"):
        generate_cowatching(channels=2, genres=3)


def test_the_model_beats_the_popularity_baseline_on_a_small_holdout() -> None:
    report = evaluate(viewers=800, channels=80, genres=6, days=21, test_days=7, seed=5)
    recall = report["recall@10"]
    assert isinstance(recall, dict)
    assert recall["co-watching + popularity (0.1)"] > recall["popularity baseline"]


def test_the_synthetic_social_graph_is_symmetric_and_follows_genres() -> None:
    data = generate_cowatching(viewers=300, channels=40, genres=4, days=10, seed=3)
    friends = synthetic_friends(data, mean_friends=6, homophily=0.9, seed=3)
    assert friends == synthetic_friends(data, mean_friends=6, homophily=0.9, seed=3)
    pairs = [(a, b) for a, bs in friends.items() for b in bs]
    assert all(a != b and a in friends[b] for a, b in pairs) and len(set(pairs)) == len(pairs)
    assert 4 < len(pairs) / len(data.viewer_genres) < 8  # mean degree about 6

    def favourite(v: str) -> int:
        prefs = data.viewer_genres[v]
        return prefs.index(max(prefs))

    assert sum(favourite(a) == favourite(b) for a, b in pairs) / len(pairs) > 0.85
    assert synthetic_friends(data, mean_friends=0, homophily=0.5, seed=1) == {}
    with pytest.raises(ValueError, match="homophily"):
        synthetic_friends(data, mean_friends=1, homophily=2, seed=1)
    # Friends who watched the same channel, by hand: (x, y) share c; (x, z) share nothing; w watched nothing.
    watched = {"x": {"a", "c"}, "y": {"c"}, "z": {"b"}}
    assert share_sharing_a_channel([("x", "y"), ("x", "z"), ("x", "w")], watched) == 0.5


def test_the_evaluation_reports_the_social_term() -> None:
    report = evaluate(
        viewers=800, channels=80, genres=6, days=21, test_days=7, seed=5, friends_weights=(0.3,)
    )
    recall, social = report["recall@10"], report["social"]
    assert isinstance(recall, dict) and isinstance(social, dict)
    assert {"model + friends (0.3)", "friends + popularity (no co-watching)"} <= set(recall)
    assert social["friend_pairs_sharing_a_channel"] > social["random_pairs_sharing_a_channel"]
    assert recall["model + friends (0.3)"] > recall["popularity baseline"]


def test_the_svd_comparison_never_recommends_what_was_watched() -> None:
    got = by_viewer(svd_recommend(watch_matrix(ROWS), 2, k=2))
    for viewer, recs in got.items():
        assert len(recs) <= 2 and not {c for c, _, _ in recs} & set(WATCHED[viewer])


def test_game_affinity_blends_in_when_given() -> None:
    # a, b play Dota 2; c, d Chess. v4 watched only d: all its game time is Chess (share 1); v1 watched
    # a and b: all Dota 2. score = 0.6 co + 0.1 popularity + 0.3 x share of the channel's game.
    pop_cd = math.log(3) / math.log(4)
    channel_game = {"a": "dota-2", "b": "dota-2", "c": "chess", "d": "chess"}
    games = game_data(ROWS, channel_game)
    assert games.viewer_game_minutes["v4"] == {"chess": 60} and games.viewer_game_minutes["v1"] == {
        "dota-2": 120
    }
    got = by_viewer(recommend(watch_matrix(ROWS), games=games, game_weight=0.3))
    assert got["v4"] == [
        ("b", round(0.6 + 0.1, 6), CO_WATCHING),
        ("c", round(0.1 * pop_cd + 0.3, 6), GAME),  # no co-watching with d, but v4's game
        ("a", 0.1, POPULAR),
    ]
    # v1's game (Dota 2) is played by none of its candidates: co-watching and popularity only.
    assert got["v1"] == [
        ("c", round(0.6 + 0.1 * pop_cd, 6), CO_WATCHING),
        ("d", round(0.2 + 0.1 * pop_cd, 6), CO_WATCHING),
    ]
    # A viewer without game time keeps the plain blend; so does everyone at the default weight (0).
    partial = GameData(channel_game, {"v4": {"chess": 60}})
    plain = by_viewer(recommend(watch_matrix(ROWS)))
    assert by_viewer(recommend(watch_matrix(ROWS), games=partial, game_weight=0.3))["v1"] == plain["v1"]
    assert by_viewer(recommend(watch_matrix(ROWS), games=games)) == plain
    # Shares, not minutes: a viewer's split between games is what counts.
    split = GameData(channel_game, {"v4": {"chess": 30, "dota-2": 90}})
    got_split = by_viewer(recommend(watch_matrix(ROWS), games=split, game_weight=0.3))["v4"]
    assert got_split[1] == ("a", round(0.1 + 0.3 * 0.75, 6), GAME)


def test_bad_game_input_is_refused_clearly() -> None:
    games = GameData({"a": "chess"}, {"v1": {"chess": -5}})
    with pytest.raises(ValueError, match="negative watch time"):
        recommend(watch_matrix(ROWS), games=games, game_weight=0.3)
    with pytest.raises(ValueError, match="weights"):
        recommend(watch_matrix(ROWS), games=games, popularity_weight=0.5, game_weight=0.6)


def test_generated_channels_have_a_skewed_fixed_main_game() -> None:
    data = generate_cowatching(viewers=50, channels=200, genres=5, days=2, seed=3)
    games = list(data.channel_game.values())
    assert (
        len(games) == 200
        and data.channel_game
        == generate_cowatching(viewers=50, channels=200, genres=5, days=2, seed=3).channel_game
    )
    counts = sorted((games.count(g) for g in set(games)), reverse=True)
    assert counts[0] >= 3 * counts[-1]  # a few games hold most channels
