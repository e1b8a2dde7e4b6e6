"""The Streamlit app's streamer page over marts built by the real assets from a hand-made lake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from streamlit.testing.v1 import AppTest

from assets.donations import donations_event_id_unique
from assets.resources import LakeResource, MartsResource
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from services.events import SubscriptionCreated
from services.money import Currency
from tests.dashboards.signin import signed_in_app
from tests.fixture_lake import land, processed, reversal
from tests.fixture_payments import gift, subscription

EMPTY_STATE = "No revenue yet — waiting for the first payments to be processed"


@pytest.fixture
def marts(lake: Path, tmp_path: Path) -> Path:
    """Marts of two days: alpha gets 10.01 RUB and 10.01 USD on the 27th, and a refund of the RUB one and
    5.00 RUB from an anonymous donor on the 28th, plus a 199.00 RUB subscription and a 50.00 RUB gift
    on the 28th; beta gets 5.00 EUR."""
    first = processed("alpha", 1001, "RUB", datetime(2026, 11, 27, 10, tzinfo=UTC), donor_name="Masha")
    land(
        lake,
        [
            first,
            processed("alpha", 1001, "USD", datetime(2026, 11, 27, 11, tzinfo=UTC), message="gg"),
            processed("beta", 500, "EUR", datetime(2026, 11, 27, 12, tzinfo=UTC)),
            reversal(first, datetime(2026, 11, 28, 9, tzinfo=UTC)),
            processed("alpha", 500, "RUB", datetime(2026, 11, 28, 10, tzinfo=UTC), donor_name=None),
        ],
    )
    at = datetime(2026, 11, 28, 12, tzinfo=UTC)
    land(lake, [subscription(SubscriptionCreated, "alpha", 19900, at)], topic="subscriptions")
    land(lake, [gift("alpha", 5000, Currency.RUB, at)], topic="gifts")
    root = tmp_path / "marts"
    resources = {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(root))}
    for day in ("2026-11-27", "2026-11-28"):
        assert dg.materialize(
            [*SOURCE_MART_ASSETS, donations_event_id_unique, streamer_revenue_daily],
            partition_key=day,
            resources=resources,
        ).success
    return root


def run_app(monkeypatch: pytest.MonkeyPatch, marts_dir: Path) -> AppTest:
    """Signed in as finance, who sees every channel."""
    return signed_in_app(monkeypatch, marts_dir, role="finance")


def test_streamer_page_shows_hand_computed_revenue(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = run_app(monkeypatch, marts)
    assert app.selectbox(key="channel").options == ["alpha", "beta"]
    table = app.dataframe[0].value
    # 27th: 1001 RUB -> 851 + 150; 10.01 USD at 80.1214 -> 80202 -> 68172 + 12030.
    # 28th: refund -1001 -> -851 - 150; 500 -> 425 + 75; subscription 19900 at 70% -> 13930 + 5970;
    # gift 5000 at 80% -> 4000 + 1000.
    assert table.to_dict("records") == [
        {
            "Day": "2026-11-27",
            "Gross": "812.03 RUB",
            "Your share": "690.23 RUB",
            "Platform fee": "121.80 RUB",
            "Payments": 2,
            "Refunds and chargebacks": 0,
        },
        {
            "Day": "2026-11-28",
            "Gross": "243.99 RUB",
            "Your share": "175.04 RUB",
            "Platform fee": "68.95 RUB",
            "Payments": 3,
            "Refunds and chargebacks": 1,
        },
    ]
    assert [m.value for m in app.metric] == ["1 056.02 RUB", "865.27 RUB", "190.75 RUB"]
    by_source = app.dataframe[1].value
    # Donations: 80202 + 500 (the refunded 1001 nets out) -> 80702, share 68172 + 425 -> 68597.
    assert by_source.to_dict("records") == [
        {
            "Source": "Donations, boosts and requests",
            "Your share of each payment": "85%",
            "Gross": "807.02 RUB",
            "Your share": "685.97 RUB",
            "Platform fee": "121.05 RUB",
            "Payments": 3,
            "Refunds and chargebacks": 1,
        },
        {
            "Source": "Subscriptions",
            "Your share of each payment": "70%",
            "Gross": "199.00 RUB",
            "Your share": "139.30 RUB",
            "Platform fee": "59.70 RUB",
            "Payments": 1,
            "Refunds and chargebacks": 0,
        },
        {
            "Source": "Virtual gifts",
            "Your share of each payment": "80%",
            "Gross": "50.00 RUB",
            "Your share": "40.00 RUB",
            "Platform fee": "10.00 RUB",
            "Payments": 1,
            "Refunds and chargebacks": 0,
        },
    ]
    recent = app.dataframe[2].value
    assert recent["What"].tolist() == ["Donation", "Refund", "Donation", "Donation"]
    assert recent["From"].tolist()[:2] == ["Anonymous", "Masha"]
    assert recent["Amount"].tolist() == ["5.00 RUB", "10.01 RUB", "10.01 USD", "10.01 RUB"]
    assert recent["In roubles"].tolist()[1] == "-10.01 RUB"


def test_channel_selector_switches_channel(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = run_app(monkeypatch, marts)
    app.selectbox(key="channel").select("beta").run()
    assert not app.exception
    # 5.00 EUR at 93.4512 -> 46726 kopecks -> 39717 + 7009.
    rows = app.dataframe[0].value.to_dict("records")
    assert [(r["Gross"], r["Your share"], r["Platform fee"]) for r in rows] == [
        ("467.26 RUB", "397.17 RUB", "70.09 RUB")
    ]


def test_empty_state_before_any_marts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = run_app(monkeypatch, tmp_path / "no-marts-yet")
    assert [i.value for i in app.info] == [EMPTY_STATE]
    assert not app.selectbox and not app.dataframe


def test_a_streamer_sees_only_their_own_channel(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = signed_in_app(monkeypatch, marts, role="streamer", channels=["beta"], username="beta-owner")
    assert app.selectbox(key="channel").options == ["beta"]
    shown = " ".join(str(m.value) for m in app.metric)
    assert "5.00 EUR" not in shown and "RUB" in shown  # beta's 5.00 EUR, settled in roubles
    # alpha's donors never reach the page.
    assert "Masha" not in app.dataframe[-1].value.to_string()
