"""The finance page over a payout batch built by the real asset: review, approve, export."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.payout_store import APPROVED, DRAFT, batch_dir, batch_info, read_audit
from services.payouts import Period
from services.revenue import RevenueSource
from tests.fixture_payouts import build, quiet_days, write_revenue

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
WEEK = Period.parse("2026-W46")
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
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts_dir))
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.switch_page("pages/finance.py").run()
    assert not app.exception, app.exception
    return app


def test_finance_page_shows_the_batch_and_its_totals(monkeypatch: pytest.MonkeyPatch, marts: Path) -> None:
    app = open_finance(monkeypatch, marts)
    assert app.selectbox(key="period").options == ["2026-W46"]
    assert [m.value for m in app.metric] == ["1 275.00 RUB", "165.75 RUB", "1 109.25 RUB", "850.00 RUB"]
    rows = app.dataframe[0].value.to_dict("records")
    assert [(r["Channel"], r["Status"], r["Gross"], r["Tax"], r["Net"], r["Carried out"]) for r in rows] == [
        ("alpha", "payout", "1 275.00 RUB", "165.75 RUB", "1 109.25 RUB", "0.00 RUB"),
        ("beta", "carried", "0.00 RUB", "0.00 RUB", "0.00 RUB", "850.00 RUB"),
    ]
    assert "draft" in app.caption[0].value
    export = app.get("download_button")[0]
    assert export.proto.label == "Export CSV"


def test_approve_button_approves_with_the_name_and_audits(
    monkeypatch: pytest.MonkeyPatch, marts: Path
) -> None:
    app = open_finance(monkeypatch, marts)
    app.button(key="approve").click().run()
    assert [e.value for e in app.error] == ["an approval needs the approver's name"]
    assert batch_info(marts, WEEK).status == DRAFT

    app.text_input(key="approver").input("Olga")
    app.button(key="approve").click().run()
    assert not app.exception
    assert app.success[0].value.startswith("Approved by Olga.")
    assert batch_info(marts, WEEK).status == APPROVED
    assert [(a["action"], a["actor"]) for a in read_audit(marts)][-1] == ("approved", "Olga")
    app.run()
    assert "approved by Olga" in app.caption[0].value
    assert not app.button  # nothing left to approve
    assert (batch_dir(marts, WEEK) / "batch.csv").exists()


def test_empty_state_before_any_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = open_finance(monkeypatch, tmp_path / "no-marts")
    assert [i.value for i in app.info] == [EMPTY_STATE]
