"""The revenue forecast methods and their backtest, recomputed by hand."""

from __future__ import annotations

from services.forecast import backtest_mae, forecast, moving_average, seasonal_mean

# 35 days; every seventh day (index 6, 13, ...) earns 1000 kopecks, the others nothing.
WEEKLY = [1000 if n % 7 == 6 else 0 for n in range(35)]


def test_methods_by_hand() -> None:
    # Last 28 days hold four spikes: 4000 / 28 = 142.857... -> 143.
    assert moving_average(WEEKLY, 3) == [143, 143, 143]
    # Same weekday over the last four weeks: the spike recurs on the 7th day ahead.
    assert seasonal_mean(WEEKLY, 7) == [0, 0, 0, 0, 0, 0, 1000]
    assert seasonal_mean([0] * 21 + [0, 0, 0, 0, 0, 0, 400], 7)[6] == 100  # one spike in four weeks


def test_backtest_uses_only_origins_with_four_weeks_behind_them() -> None:
    # Origins 22..28 with 7 days ahead; only 28 leaves 28 days of history. From history[:28] the moving
    # average says 143 for days 28..34 (six zeros, then 1000): (6 * 143 + 857) / 7 = 245.
    assert backtest_mae(WEEKLY, "moving_average_28d") == 245
    assert backtest_mae(WEEKLY, "seasonal_mean_4w") == 0
    assert backtest_mae(WEEKLY[:34], "seasonal_mean_4w") is None  # no origin fits


def test_forecast_keeps_the_method_with_the_lower_error() -> None:
    made = forecast(WEEKLY)
    assert made is not None
    assert (made.method, made.values, made.backtest_mae, made.history_days) == (
        "seasonal_mean_4w",
        [0, 0, 0, 0, 0, 0, 1000],
        0,
        35,
    )


def test_forecast_without_backtest_or_history() -> None:
    flat = forecast([500] * 28)
    assert flat is not None and (flat.method, flat.values, flat.backtest_mae) == (
        "moving_average_28d",
        [500] * 7,
        None,
    )
    assert forecast([500] * 27) is None


def test_forecasts_never_go_negative_after_chargeback_days() -> None:
    # Four weeks where every Monday (index 0, 7, ...) only a chargeback of 500 ₽ landed, other days 0.
    history = [-50_000 if day % 7 == 0 else 0 for day in range(28)]
    assert seasonal_mean(history, 7) == [0] * 7
    assert moving_average(history, 7) == [0] * 7
    result = forecast(history)
    assert result is not None and min(result.values) == 0
