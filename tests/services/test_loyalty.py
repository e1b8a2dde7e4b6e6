"""The loyalty rules of services.loyalty, each recomputed by hand."""

from __future__ import annotations

from datetime import date

import pytest

from services.loyalty import (
    CHAT_ACTIVITY_MESSAGES,
    IP_SESSIONS,
    NO_PLAYBACK_PROGRESS,
    USER_AGENT,
    DayActivity,
    FarmingRules,
    SessionSummary,
    badges,
    donation_points,
    exclusion_reason,
    expire,
    progressed,
    rank_for,
    sessions_per_ip,
    standing,
    watch_points,
)


@pytest.mark.parametrize(
    ("gross", "points"), [(0, 0), (999, 0), (1000, 1), (1999, 1), (25_050, 25), (-1999, -1), (-25_050, -25)]
)
def test_one_point_per_ten_roubles_per_donation_and_reversals_take_it_back(gross: int, points: int) -> None:
    assert donation_points(gross) == points
    assert donation_points(gross) + donation_points(-gross) == 0


def test_one_point_per_minute() -> None:
    assert watch_points(0) == 0 and watch_points(95) == 95


def day(d: int, points: int, minutes: int = 0, donations: int = 0, chat: int = 0) -> DayActivity:
    return DayActivity(date(2026, 1, d), points, minutes, donations, chat)


def test_expiry_after_more_than_n_days_without_activity() -> None:
    # Gaps: 1st -> 4th is 3 days (kept with N=3), 4th -> 9th is 5 days (expires 10 + 20 = 30).
    days = [day(1, 10), day(4, 20), day(9, 5)]
    assert expire(days, date(2026, 1, 9), 3) == (5, 30)
    assert expire(days, date(2026, 1, 12), 3) == (5, 0 + 30)  # 3 days after the 9th: kept
    assert expire(days, date(2026, 1, 13), 3) == (0, 35)  # 4 days: the last 5 expire too
    assert expire(days, date(2026, 1, 9), 5) == (35, 0)  # a 5-day gap is not more than 5
    assert expire(list(reversed(days)), date(2026, 1, 9), 3) == (5, 30)  # order of input does not matter


def test_badges_at_their_thresholds() -> None:
    assert badges(100 * 60 - 1, 0, CHAT_ACTIVITY_MESSAGES - 1) == ()
    assert badges(100 * 60, 1, CHAT_ACTIVITY_MESSAGES) == ("watched_100h", "first_donation", "chatter")
    assert badges(1000 * 60, 0, 0) == ("watched_100h", "watched_500h", "watched_1000h")
    assert badges(500 * 60, 0, 0) == ("watched_100h", "watched_500h")


def test_ranks_by_lifetime_points() -> None:
    assert [rank_for(p) for p in (-5, 0, 59, 60, 599, 600, 2_999, 3_000, 11_999, 12_000)] == [
        "newcomer",
        "newcomer",
        "newcomer",
        "regular",
        "regular",
        "fan",
        "fan",
        "devotee",
        "devotee",
        "legend",
    ]


def test_standing_keeps_lifetime_achievements_through_expiry() -> None:
    days = [day(1, 6_000, minutes=6_000, donations=1, chat=60), day(20, 1, minutes=1, chat=40)]
    s = standing(days, date(2026, 1, 20), 7)
    assert (s.balance, s.lifetime_points, s.expired_points, s.rank) == (1, 6_001, 6_000, "devotee")
    assert s.badges == ("watched_100h", "first_donation", "chatter")
    assert s.last_active == date(2026, 1, 20)


def session(sid: str, ua: str = "browser", ip: str | None = "ip", progress: int = 1) -> SessionSummary:
    return SessionSummary("alpha", sid, ua, ip, progress)


def test_farming_rules_in_order() -> None:
    rules = FarmingRules(max_sessions_per_ip=2)
    on_ip = {"ip": 2, "farm": 3}
    assert exclusion_reason(session("a"), on_ip, rules) is None
    assert exclusion_reason(session("a", ip=None), on_ip, rules) is None  # no hash: the rule cannot apply
    assert exclusion_reason(session("a", progress=0), on_ip, rules) == NO_PLAYBACK_PROGRESS
    assert exclusion_reason(session("a", ua="bot"), on_ip, rules) == USER_AGENT
    assert exclusion_reason(session("a", ua="headless"), on_ip, rules) == USER_AGENT
    assert exclusion_reason(session("a", ua="tv"), on_ip, rules) is None
    assert exclusion_reason(session("a", ip="farm"), on_ip, rules) == IP_SESSIONS
    # The first rule that applies is the reason given.
    assert (
        exclusion_reason(session("a", ua="bot", ip="farm", progress=0), on_ip, rules) == NO_PLAYBACK_PROGRESS
    )


def test_progress_needs_bytes_and_segments() -> None:
    assert progressed(1, 1) and not progressed(0, 3) and not progressed(500, 0)


def test_sessions_per_ip_count_a_session_once_across_channels() -> None:
    both = [
        session("a"),
        SessionSummary("beta", "a", "browser", "ip", 1),
        session("b"),
        session("c", ip=None),
    ]
    assert sessions_per_ip(both) == {"ip": 2}
