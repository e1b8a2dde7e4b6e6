"""Loyalty rules as data: how points are earned, when they expire, which sessions earn nothing, which
achievements and ranks a viewer holds. The Dagster assets apply these; the tests recompute them by hand.

Everything here is pure (no I/O), so a rule is changed in one place and the marts, the export the node
reads and the dashboards follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

# ---- earning ------------------------------------------------------------------------------------

#: Points per eligible minute watched (a UTC minute in which the viewer fetched new segments).
POINTS_PER_MINUTE = 1
#: Roubles-in-kopecks per point donated: 1 point per 10 ₽ of the donation's RUB value, per donation.
KOPECKS_PER_DONATION_POINT = 1000
#: Bonuses ready for their events: a paid subscription month, a share of the stream.
SUBSCRIPTION_BONUS_POINTS = 500
SHARE_BONUS_POINTS = 50


def donation_points(gross_rub_minor: int) -> int:
    """Points of one money event: floor(RUB / 10) of the donation, the exact negative for a reversal.

    Per event, not per day total, so a refund takes back exactly what its donation gave.
    """
    points = abs(gross_rub_minor) // KOPECKS_PER_DONATION_POINT
    return -points if gross_rub_minor < 0 else points


def watch_points(watch_minutes: int) -> int:
    return watch_minutes * POINTS_PER_MINUTE


# ---- anti-farming -------------------------------------------------------------------------------

NO_PLAYBACK_PROGRESS = "no_playback_progress"
USER_AGENT = "user_agent"
IP_SESSIONS = "ip_sessions"


@dataclass(frozen=True)
class FarmingRules:
    """Which viewing sessions earn nothing (and do not count as viewers in the stream analytics).

    A heartbeat with no bytes or no new segments is not playback; a session with no such progress at all
    is idle. Bot and headless user agents are not audiences. One IP hash with more than
    `max_sessions_per_ip` sessions in a day (all channels together) is a farm: all its sessions are out.
    """

    excluded_user_agent_classes: frozenset[str] = frozenset({"bot", "headless"})
    max_sessions_per_ip: int = 5


@dataclass(frozen=True)
class SessionSummary:
    """What a day's heartbeats say about one viewer session on one channel."""

    channel_id: str
    session_id: str
    user_agent_class: str
    ip_hash: str | None
    progress_heartbeats: int  # heartbeats with bytes > 0 and segments > 0


def progressed(bytes_: int, segments: int) -> bool:
    """A heartbeat shows playback only when it fetched bytes of at least one new segment."""
    return bytes_ > 0 and segments > 0


def exclusion_reason(
    session: SessionSummary, sessions_on_ip: Mapping[str, int], rules: FarmingRules
) -> str | None:
    """Why the session earns nothing (the first rule that applies, in a fixed order), or None."""
    if session.progress_heartbeats == 0:
        return NO_PLAYBACK_PROGRESS
    if session.user_agent_class in rules.excluded_user_agent_classes:
        return USER_AGENT
    if session.ip_hash is not None and sessions_on_ip.get(session.ip_hash, 0) > rules.max_sessions_per_ip:
        return IP_SESSIONS
    return None


def sessions_per_ip(sessions: Iterable[SessionSummary]) -> dict[str, int]:
    """Distinct sessions per IP hash over the day (a session seen on two channels counts once)."""
    seen: dict[str, set[str]] = {}
    for s in sessions:
        if s.ip_hash is not None:
            seen.setdefault(s.ip_hash, set()).add(s.session_id)
    return {ip: len(ids) for ip, ids in seen.items()}


# ---- expiry, achievements, ranks ----------------------------------------------------------------


@dataclass(frozen=True)
class DayActivity:
    """One viewer's activity on one channel on one day (a row of `loyalty_points_daily`)."""

    day: date
    points: int
    watch_minutes: int
    donations: int
    chat_messages: int


@dataclass(frozen=True)
class Standing:
    """A viewer's standing on a channel as of a day."""

    balance: int
    lifetime_points: int
    expired_points: int
    watch_minutes: int
    donations: int
    chat_messages: int
    last_active: date
    badges: tuple[str, ...]
    rank: str


def expire(days: Sequence[DayActivity], as_of: date, expiry_days: int) -> tuple[int, int]:
    """(balance, expired points) after walking the active days in order.

    A gap of more than `expiry_days` days without activity expires the balance held before it; so does
    such a gap between the last active day and `as_of`. Spending is not modelled yet (no spend events).
    """
    balance = expired = 0
    previous: date | None = None
    for activity in sorted(days, key=lambda a: a.day):
        if previous is not None and (activity.day - previous).days > expiry_days:
            expired += balance
            balance = 0
        balance += activity.points
        previous = activity.day
    if previous is not None and (as_of - previous).days > expiry_days:
        expired += balance
        balance = 0
    return balance, expired


HOURS_BADGES: tuple[tuple[int, str], ...] = (
    (100, "watched_100h"),
    (500, "watched_500h"),
    (1000, "watched_1000h"),
)
FIRST_DONATION = "first_donation"
CHATTER = "chatter"
#: Chat messages (visible ones) that earn the chat activity badge.
CHAT_ACTIVITY_MESSAGES = 100


def badges(watch_minutes: int, donations: int, chat_messages: int) -> tuple[str, ...]:
    """Achievements are for life: lifetime minutes, any donation ever, lifetime visible chat messages."""
    earned = [name for hours, name in HOURS_BADGES if watch_minutes >= hours * 60]
    if donations > 0:
        earned.append(FIRST_DONATION)
    if chat_messages >= CHAT_ACTIVITY_MESSAGES:
        earned.append(CHATTER)
    return tuple(earned)


#: (lifetime points needed, rank), ascending; a viewer holds the highest rank reached.
RANKS: tuple[tuple[int, str], ...] = (
    (0, "newcomer"),
    (60, "regular"),
    (600, "fan"),
    (3_000, "devotee"),
    (12_000, "legend"),
)


def rank_for(lifetime_points: int) -> str:
    """Ranks follow lifetime points, so expiry empties the wallet but never demotes a viewer."""
    held = RANKS[0][1]
    for threshold, name in RANKS:
        if lifetime_points >= threshold:
            held = name
    return held


def standing(days: Sequence[DayActivity], as_of: date, expiry_days: int) -> Standing:
    """Balance, lifetime totals, badges and rank of one viewer on one channel from their active days."""
    balance, expired = expire(days, as_of, expiry_days)
    lifetime = sum(a.points for a in days)
    minutes = sum(a.watch_minutes for a in days)
    donations = sum(a.donations for a in days)
    messages = sum(a.chat_messages for a in days)
    return Standing(
        balance=balance,
        lifetime_points=lifetime,
        expired_points=expired,
        watch_minutes=minutes,
        donations=donations,
        chat_messages=messages,
        last_active=max(a.day for a in days),
        badges=badges(minutes, donations, messages),
        rank=rank_for(lifetime),
    )
