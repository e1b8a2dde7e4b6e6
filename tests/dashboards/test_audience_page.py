"""The audience and loyalty page over marts the real assets built from a hand-made lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from streamlit.testing.v1 import AppTest

from assets.loyalty import LOYALTY_ASSETS
from assets.resources import LakeResource, MartsResource
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from assets.revenue_forecast import revenue_forecast
from assets.stream_analytics import STREAM_ANALYTICS_ASSETS, LoyaltyRulesResource
from services.money import Currency
from tests.assets.test_revenue_forecast import revenue_day
from tests.dashboards.signin import signed_in_app
from tests.fixture_lake import land, processed
from tests.fixture_views import beat, by, chat, stream

EMPTY_STATE = "No audience yet — waiting for the first viewers to be counted"


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 27, 12, minute, second, tzinfo=UTC)


@pytest.fixture
def marts(lake: Path, tmp_path: Path) -> Path:
    """alpha on the 27th: u1 watches 12:00-12:02 (3 minutes) and donates 20.00 RUB (2 points), u2 watches
    12:01 (1 minute) and chats once, an anonymous session watches 12:01-12:02, a bot watches all along."""
    land(
        lake,
        [
            beat("alpha", "s1", at(0, 5), at(2, 5), user_id="u1"),
            beat("alpha", "s2", at(1, 0), at(1, 30), user_id="u2"),
            beat("alpha", "s3", at(1, 0), at(2, 30)),
            beat("alpha", "s4", at(0), at(9), user_id="u9", user_agent_class="bot"),
        ],
        topic="views",
    )
    land(lake, [chat("alpha", "u2", at(1))], topic="chat")
    streams = [
        stream("alpha", "b1", at(0), game="dota-2"),
        stream("alpha", "b1", at(5), ended=True, game="dota-2"),
    ]
    land(lake, streams, topic="streams")
    land(lake, [by("u1", processed("alpha", 2000, Currency.RUB, at(1)))])
    root = tmp_path / "marts"
    resources = {
        "lake": LakeResource(root=str(lake)),
        "marts": MartsResource(root=str(root)),
        "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=5),
    }
    assets = [*SOURCE_MART_ASSETS, streamer_revenue_daily, *STREAM_ANALYTICS_ASSETS, *LOYALTY_ASSETS]
    assert dg.materialize(assets, partition_key="2026-11-27", resources=resources).success
    return root


def open_audience(monkeypatch: pytest.MonkeyPatch, marts_dir: Path) -> AppTest:
    return signed_in_app(monkeypatch, marts_dir, role="finance", page="pages/audience.py")


def test_audience_page_shows_hand_computed_figures(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = open_audience(monkeypatch, marts)
    assert app.selectbox(key="audience_channel").options == ["alpha"]
    # Viewers per minute: 12:00 u1 = 1, 12:01 u1+u2+anon = 3, 12:02 u1+anon = 2: 6 minutes over 3.
    assert [m.value for m in app.metric] == ["3", "0.1", "3"]
    # One day of history is too little for growth advice (services/growth.py's rules are tested there).
    assert any(c.value.startswith("Nothing to suggest") for c in app.caption)
    (day,) = app.dataframe[0].value.to_dict("records")
    assert day == {
        "Day": "2026-11-27",
        "Peak": 3,
        "Average": 2.0,
        "Watch minutes": 6,
        "Unique viewers": 3,
        "New": 3,
        "Returning": 0,
        "Chat messages": 1,
        "Messages per viewer-hour": 10.0,  # 1 * 60 / 6
        "Revenue per viewer-hour": "200.00 RUB",  # 2000 kopecks * 60 / 6
    }
    # b1 is live 12:00-12:05: 6 minutes holding the 6 watched minutes.
    assert app.dataframe[1].value.to_dict("records") == [
        {
            "Day": "2026-11-27",
            "Broadcast": "b1",
            "Game": "Dota 2",
            "Live minutes": 6,
            "Peak": 3,
            "Average": 1.0,
            "Watch minutes": 6,
            "Average vs previous": "first",
        }
    ]
    # The platform's games: Dota 2 holds b1's 6 live minutes and the 6 counted viewer-minutes (not the bot's).
    assert app.dataframe[2].value.to_dict("records") == [
        {
            "Game": "Dota 2",
            "Watch minutes": 6,
            "Live minutes": 6,
            "Viewers per live minute": 1.0,
            "Peak viewers": 3,
            "Channels (most in a day)": 1,
        }
    ]
    board = app.dataframe[3].value.to_dict("records")  # no forecast: the leaderboard is fourth
    assert [(r["#"], r["Viewer"], r["Points"], r["Badges"]) for r in board] == [
        (1, "u1", 5, "first_donation"),  # 3 minutes + 2 points for 20 RUB
        (2, "u2", 1, ""),
    ]


def test_audience_page_has_an_empty_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = open_audience(monkeypatch, tmp_path / "no-marts")
    assert [i.value for i in app.info] == [EMPTY_STATE]


def test_audience_page_says_why_there_is_no_forecast_yet(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    app = open_audience(monkeypatch, marts)
    assert [i.value for i in app.info] == ["No forecast yet — it needs 28 days of revenue history"]


def test_audience_page_shows_the_forecast_with_its_backtest_error(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    # 35 days of revenue (1000 kopecks every seventh day from the 20th of October) up to the 23rd.
    first = date(2026, 10, 20)
    for n in range(35):
        revenue_day(marts, first + timedelta(days=n), {"alpha": 1000} if n % 7 == 0 else {})
    assert dg.materialize(
        [revenue_forecast], partition_key="2026-11-23", resources={"marts": MartsResource(root=str(marts))}
    ).success
    app = open_audience(monkeypatch, marts)
    assert "Method seasonal_mean_4w; backtest error ±0.00 RUB a day" in [c.value for c in app.caption]
    ahead = app.dataframe[3].value.to_dict("records")
    assert [(r["Day"], r["Forecast"]) for r in ahead] == [("2026-11-24", "10.00 RUB")] + [
        (f"2026-11-{d}", "0.00 RUB") for d in range(25, 31)
    ]
