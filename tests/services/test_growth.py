"""Growth suggestions computed by hand on small, made-up channel histories."""

from __future__ import annotations

from datetime import date, timedelta

from services.growth import suggestions
from services.marts import DailyRevenue, StreamDay

MONDAY = date(2026, 11, 2)


def day(
    n: int, watch: int = 600, unique: int = 10, returning: int = 5, chat: float | None = 5.0
) -> StreamDay:
    return StreamDay(
        MONDAY + timedelta(days=n), 5, 2.0, watch, unique, unique - returning, returning, 10, chat, None
    )


def revenue(n: int, gross: int) -> DailyRevenue:
    return DailyRevenue(MONDAY + timedelta(days=n), gross, gross * 85 // 100, gross - gross * 85 // 100, 1, 0)


def test_too_little_history_says_nothing() -> None:
    assert suggestions([day(n) for n in range(6)], []) == []


def test_a_healthy_channel_gets_no_advice() -> None:
    assert suggestions([day(n) for n in range(14)], [revenue(n, 10_000) for n in range(28)]) == []


def test_best_weekday() -> None:
    # Two weeks; Saturdays (n=5, 12) have 1,800 watch minutes, other days 600: mean 771.4, Saturday +133 %.
    days = [day(n, watch=1800 if n % 7 == 5 else 600) for n in range(14)]
    (only,) = suggestions(days, [])
    assert only.title == "Stream on Saturdays"
    assert only.why == "Your Saturday streams average 30.0 watch hours against 12.9 on a typical day (+133%)."


def test_few_returning_viewers_and_a_quiet_chat() -> None:
    days = [day(n, unique=20, returning=4, chat=0.5) for n in range(7)]
    titles = [s.title for s in suggestions(days, [])]
    assert titles == ["Give viewers a reason to come back", "Talk with your chat"]
    assert "20%" in suggestions(days, [])[0].why


def test_revenue_decline() -> None:
    # Days 0..13: 100 ₽ a day (1,400 ₽); days 14..27: 50 ₽ a day (700 ₽): −50 %.
    money = [revenue(n, 10_000 if n < 14 else 5_000) for n in range(28)]
    (only,) = suggestions([day(n) for n in range(7)], money)
    assert only.why.startswith("700.00 RUB in the last 14 days against 1 400.00 RUB in the 14 before (-50%)")
    # A 10 % dip is noise, not a decline.
    steady = [revenue(n, 10_000 if n < 14 else 9_000) for n in range(28)]
    assert suggestions([day(n) for n in range(7)], steady) == []
