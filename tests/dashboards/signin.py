"""Open the dashboards app in Streamlit's AppTest and sign in through the real form."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.dashboard_accounts import AccountStore

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PASSWORD = "correct horse battery"


def add_account(path: Path, username: str, role: str, channels: Sequence[str] = ()) -> None:
    AccountStore(path).add(username, role, channels, PASSWORD)


def sign_in(app: AppTest, username: str, password: str = PASSWORD) -> AppTest:
    app.text_input(key="signin_username").input(username)
    app.text_input(key="signin_password").input(password)
    return app.button[0].click().run()


def reviews_file(marts_dir: Path) -> Path:
    """Where a signed-in test app's fraud review decisions go: beside its marts, inside the test's tmp."""
    return marts_dir.parent / "fraud_reviews.jsonl"


def signed_in_app(
    monkeypatch: pytest.MonkeyPatch,
    marts_dir: Path,
    *,
    role: str = "finance",
    channels: Sequence[str] = (),
    username: str = "olga",
    page: str | None = None,
) -> AppTest:
    """The app after `username` (a new account of `role`) signed in; on `page` when given."""
    accounts = marts_dir.parent / f"accounts-{username}.json"
    add_account(accounts, username, role, channels)
    monkeypatch.setenv("EFIR_DASHBOARD_ACCOUNTS_FILE", str(accounts))
    monkeypatch.setenv("EFIR_MARTS_DIR", str(marts_dir))
    monkeypatch.setenv("EFIR_FRAUD_REVIEWS_FILE", str(reviews_file(marts_dir)))
    app = sign_in(AppTest.from_file(str(APP), default_timeout=60).run(), username)
    assert not app.exception, app.exception
    if page is not None:
        app.switch_page(page).run()
        assert not app.exception, app.exception
    return app
