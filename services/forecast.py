"""Daily revenue forecasts with their backtest error: two transparent methods, each scored on the
channel's own history by rolling-origin backtests, the better one kept and its error shown with it.

Amounts are integer kopecks; averages are taken in Decimal and rounded half-up once (services.money).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.money import round_half_up

HORIZON_DAYS = 7
#: Days of history a forecast needs: four weeks for the seasonal method plus the backtest folds.
MIN_HISTORY_DAYS = 28
BACKTEST_FOLDS = 7
WINDOW_DAYS = 28
SEASON_DAYS = 7
SEASONS = 4


def moving_average(history: Sequence[int], horizon: int) -> list[int]:
    """Every future day gets the mean of the last WINDOW_DAYS days (never below zero)."""
    window = history[-WINDOW_DAYS:]
    level = round_half_up(Decimal(sum(window)) / Decimal(len(window)))
    return [max(0, level)] * horizon


def seasonal_mean(history: Sequence[int], horizon: int) -> list[int]:
    """Each future day gets the mean of the same weekday over the last SEASONS weeks."""
    out = []
    for step in range(1, horizon + 1):
        same_weekday = [history[-k * SEASON_DAYS + (step - 1) % SEASON_DAYS] for k in range(1, SEASONS + 1)]
        # Chargebacks make a past day negative, but they are not a forecastable income: floor at zero.
        out.append(max(0, round_half_up(Decimal(sum(same_weekday)) / Decimal(len(same_weekday)))))
    return out


METHODS: dict[str, Callable[[Sequence[int], int], list[int]]] = {
    "moving_average_28d": moving_average,
    "seasonal_mean_4w": seasonal_mean,
}


def backtest_mae(history: Sequence[int], method: str, horizon: int = HORIZON_DAYS) -> int | None:
    """Mean absolute error (kopecks, half-up) of `method` forecasting `horizon` days from each of the last
    BACKTEST_FOLDS origins that leave MIN_HISTORY_DAYS before them; None when no origin fits."""
    errors: list[int] = []
    last_origin = len(history) - horizon
    for origin in range(last_origin - BACKTEST_FOLDS + 1, last_origin + 1):
        if origin < MIN_HISTORY_DAYS:
            continue
        predicted = METHODS[method](history[:origin], horizon)
        errors.extend(abs(p - a) for p, a in zip(predicted, history[origin : origin + horizon], strict=True))
    if not errors:
        return None
    return round_half_up(Decimal(sum(errors)) / Decimal(len(errors)))


@dataclass(frozen=True)
class Forecast:
    """The chosen method's next days and the error it made when backtested on this history."""

    method: str
    values: list[int]
    backtest_mae: int | None
    history_days: int


def forecast(history: Sequence[int], horizon: int = HORIZON_DAYS) -> Forecast | None:
    """The method with the lowest backtest MAE (the first in METHODS on a tie or without a backtest);
    None with less than MIN_HISTORY_DAYS of history."""
    if len(history) < MIN_HISTORY_DAYS:
        return None
    scored = [(backtest_mae(history, name, horizon), i, name) for i, name in enumerate(METHODS)]
    known = [s for s in scored if s[0] is not None]
    mae, _, name = min(known, key=lambda s: (s[0], s[1])) if known else scored[0]
    return Forecast(name, METHODS[name](history, horizon), mae, len(history))
