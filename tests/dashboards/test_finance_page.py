"""The finance page over a payout batch built by the real asset: review, approve, export."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from streamlit.testing.v1 import AppTest

from assets.resources import LakeResource, MartsResource
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from dashboards.auth import NOT_GRANTED, STATE_KEY
from services.dashboard_accounts import Principal
from services.events import GiftChargedBack
from services.money import Currency
from services.payout_store import APPROVED, DRAFT, batch_dir, batch_info, read_audit
from services.payouts import Period
from services.revenue import RevenueSource
from tests.dashboards.signin import signed_in_app
from tests.fixture_lake import land, processed, reversal
from tests.fixture_payments import gift
from tests.fixture_payments import reversal as payment_reversal
from tests.fixture_payouts import build, quiet_days, write_revenue

FINANCE_PAGE = Path(__file__).resolve().parents[2] / "dashboards" / "pages" / "finance.py"
WEEK = Period.parse("2026-W46")
NO_BALANCES, NO_CHARGEBACKS = "No revenue or payouts yet", "No chargebacks"
EMPTY_STATE = "No payout batches yet — run `efir payouts run PERIOD` or the payout jobs in Dagster"


@pytest.fixture
def marts(tmp_path: Path) -> Path:
    """One weekly batch: alpha 1,500 ₽ of donations (1,275 ₽ share, paid, 13% = 165.75 ₽), beta 1,000 ₽
    (850 ₽, carried over)."""
    root = tmp_path / "marts"
    quiet_days(root, WEEK)
    write_revenue(
        root,
        date(2026, 11, 10),
        [("alpha", RevenueSource.DONATION, 150_000), ("beta", RevenueSource.DONATION, 100_000)],
    )
    assert build(root, tmp_path / "no-profiles.yaml", WEEK).success
    return root


def open_finance(monkeypatch: pytest.MonkeyPatch, marts_dir: Path) -> AppTest:
    return signed_in_app(monkeypatch, marts_dir, role="finance", page="pages/finance.py")


def test_finance_page_shows_the_batch_and_its_totals(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = open_finance(monkeypatch, marts)
    assert app.selectbox(key="period").options == ["2026-W46"]
    batch_metrics = [m.value for m in app.tabs[0].metric]
    assert batch_metrics == ["1 275.00 RUB", "165.75 RUB", "1 109.25 RUB", "850.00 RUB"]
    rows = app.dataframe[0].value.to_dict("records")
    assert [(r["Channel"], r["Status"], r["Gross"], r["Tax"], r["Net"], r["Carried out"]) for r in rows] == [
        ("alpha", "payout", "1 275.00 RUB", "165.75 RUB", "1 109.25 RUB", "0.00 RUB"),
        ("beta", "carried", "0.00 RUB", "0.00 RUB", "0.00 RUB", "850.00 RUB"),
    ]
    assert "draft" in app.caption[0].value
    export = app.get("download_button")[0]
    assert export.proto.label == "Export CSV"


def test_approve_button_approves_in_the_signed_in_name_and_audits(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    app = open_finance(monkeypatch, marts)
    assert batch_info(marts, WEEK).status == DRAFT
    assert app.button(key="approve").proto.label == "Approve batch as olga"
    app.button(key="approve").click().run()
    assert not app.exception
    assert app.success[0].value.startswith("Approved by olga.")
    assert batch_info(marts, WEEK).status == APPROVED
    assert [(a["action"], a["actor"]) for a in read_audit(marts)][-1] == ("approved", "olga")
    app.run()
    assert "approved by olga" in app.caption[0].value
    # Once approved, alpha's 1,275 ₽ are paid: only beta's 850 ₽ is still owed.
    balances = app.tabs[1].dataframe[0].value.to_dict("records")
    assert [(r["Channel"], r["Paid (approved)"], r["Balance"]) for r in balances] == [
        ("alpha", "1 275.00 RUB", "0.00 RUB"),
        ("beta", "0.00 RUB", "850.00 RUB"),
    ]
    assert "approve" not in [b.key for b in app.button]  # nothing left to approve
    assert (batch_dir(marts, WEEK) / "batch.csv").exists()


def test_empty_state_before_any_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = open_finance(monkeypatch, tmp_path / "no-marts")
    assert [i.value for i in app.info] == [EMPTY_STATE, NO_BALANCES, NO_CHARGEBACKS]


def test_a_streamer_cannot_open_the_payouts(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = signed_in_app(monkeypatch, marts, role="streamer", channels=["alpha"])
    assert "Payouts" not in [t.value for t in app.title]
    # The page is not in a streamer's navigation, so no URL reaches it...
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/finance.py")
    # ...and run on its own with a streamer signed in, it refuses too.
    page = AppTest.from_file(str(FINANCE_PAGE), default_timeout=60)
    page.session_state[STATE_KEY] = Principal("alpha-owner", "streamer", ("alpha",))
    page.run()
    assert [e.value for e in page.error] == [NOT_GRANTED.format(role="streamer")]
    assert not page.selectbox and not page.dataframe


def test_chargebacks_tab_lists_them_from_every_money_mart(
    monkeypatch: pytest.MonkeyPatch, lake: Path, tmp_path: Path
) -> None:
    first = processed("alpha", 150_000, "RUB", datetime(2026, 11, 10, 10, tzinfo=UTC))
    land(lake, [first, reversal(first, datetime(2026, 11, 11, 9, tzinfo=UTC), chargeback=True)])
    sent = gift("beta", 5_000, Currency.RUB, datetime(2026, 11, 10, 12, tzinfo=UTC))
    back = payment_reversal(sent, GiftChargedBack, datetime(2026, 11, 11, 10, tzinfo=UTC))
    land(lake, [sent, back], topic="gifts")
    root = tmp_path / "marts"
    resources = {"lake": LakeResource(root=str(lake)), "marts": MartsResource(root=str(root))}
    for day in ("2026-11-10", "2026-11-11"):
        assert dg.materialize(
            [*SOURCE_MART_ASSETS, streamer_revenue_daily], partition_key=day, resources=resources
        ).success
    app = open_finance(monkeypatch, root)
    tab = app.tabs[2]
    assert [m.value for m in tab.metric] == ["1 550.00 RUB"]
    newest, older = tab.dataframe[0].value.to_dict("records")
    assert (newest["Channel"], newest["What"], newest["Reference"]) == (
        "beta",
        "gift",
        sent.payload["gift_id"],
    )
    assert (newest["Amount"], newest["In RUB"]) == ("50.00 RUB", "-50.00 RUB")
    assert (older["Channel"], older["What"], older["Amount"], older["In RUB"]) == (
        "alpha",
        "donation",
        "1 500.00 RUB",
        "-1 500.00 RUB",
    )
    # The chargeback nets alpha's ledger to zero: nothing owed, nothing negative.
    assert [m.value for m in app.tabs[1].metric] == ["0.00 RUB", "0"]
