"""Growth suggestions for a streamer, each backed by the figure that triggered it.

Twitch's analytics show numbers and leave the reading to the streamer; these rules turn the channel's
own stream analytics and revenue into a few concrete next steps. Each rule compares the channel with
itself (its best weekday against its average, recent weeks against earlier ones), never with other
channels, so a small channel gets advice as useful as a big one. Pure functions over the marts' rows.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from services.marts import DailyRevenue, StreamDay
from services.money import SETTLEMENT_CURRENCY, format_minor

MIN_DAYS = 7  # fewer live days than this say nothing reliable
LOW_RETURNING_SHARE = 0.30
LOW_CHAT_PER_VIEWER_HOUR = 2.0
BEST_DAY_LIFT = 1.25  # a weekday this much above the channel's average is worth a regular slot
DECLINE = 0.80  # the last 14 days at this fraction of the 14 before, or less, is a decline


@dataclass(frozen=True, slots=True)
class Suggestion:
    title: str
    why: str


def _best_weekday(days: Sequence[StreamDay]) -> Suggestion | None:
    minutes: dict[int, list[int]] = defaultdict(list)
    for d in days:
        minutes[d.day.weekday()].append(d.watch_minutes)
    if len(minutes) < 2:
        return None
    mean = sum(d.watch_minutes for d in days) / len(days)
    best, values = max(minutes.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
    best_mean = sum(values) / len(values)
    if mean <= 0 or best_mean < BEST_DAY_LIFT * mean:
        return None
    name = calendar.day_name[best]
    return Suggestion(
        f"Stream on {name}s",
        f"Your {name} streams average {best_mean / 60:.1f} watch hours against {mean / 60:.1f} on a "
        f"typical day ({best_mean / mean - 1:+.0%}).",
    )


def _returning(days: Sequence[StreamDay]) -> Suggestion | None:
    unique = sum(d.unique_viewers for d in days)
    returning = sum(d.returning_viewers for d in days)
    if unique == 0 or returning / unique >= LOW_RETURNING_SHARE:
        return None
    return Suggestion(
        "Give viewers a reason to come back",
        f"Only {returning / unique:.0%} of your viewers were returning ones: a fixed schedule, "
        "a recurring segment and a subscriber perk turn first visits into habits.",
    )


def _chat(days: Sequence[StreamDay]) -> Suggestion | None:
    rates = [d.messages_per_viewer_hour for d in days if d.messages_per_viewer_hour is not None]
    if not rates:
        return None
    rate = sum(rates) / len(rates)
    if rate >= LOW_CHAT_PER_VIEWER_HOUR:
        return None
    return Suggestion(
        "Talk with your chat",
        f"{rate:.1f} chat messages per viewer-hour: questions, polls and reading messages aloud "
        "raise engagement, and engaged viewers donate and subscribe more.",
    )


def _trend(revenue: Sequence[DailyRevenue]) -> Suggestion | None:
    if not revenue:
        return None
    last = max(r.day for r in revenue)
    recent = sum(r.gross_rub_minor for r in revenue if r.day > last - timedelta(days=14))
    before = sum(
        r.gross_rub_minor for r in revenue if last - timedelta(days=28) < r.day <= last - timedelta(days=14)
    )
    if before <= 0 or recent > DECLINE * before:
        return None
    return Suggestion(
        "Revenue is down: remind viewers how to support you",
        f"{format_minor(recent, SETTLEMENT_CURRENCY)} in the last 14 days against "
        f"{format_minor(before, SETTLEMENT_CURRENCY)} in the 14 before ({recent / before - 1:+.0%}). "
        "A donation goal on the overlay and a thank-you for each alert help.",
    )


def suggestions(days: Sequence[StreamDay], revenue: Sequence[DailyRevenue]) -> list[Suggestion]:
    """Up to four suggestions, the most actionable first; none while there is too little history."""
    if len(days) < MIN_DAYS:
        return []
    rules = (_best_weekday(days), _returning(days), _chat(days), _trend(revenue))
    return [s for s in rules if s is not None]
