"""A reload keeps the user signed in: a new Streamlit session (what a reloaded tab is) opened with the
session token from the URL is signed in, and stops being once the token is revoked or has expired."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import ENDED, SESSION_PARAM
from services.dashboard_accounts import AccountStore
from tests.dashboards.signin import APP, add_account, sign_in


@pytest.fixture
def accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "accounts.json"
    add_account(path, "olga", "finance")
    monkeypatch.setenv("EFIR_DASHBOARD_ACCOUNTS_FILE", str(path))
    monkeypatch.setenv("EFIR_MARTS_DIR", str(tmp_path / "marts"))
    return path


def reloaded(token: str) -> AppTest:
    """A fresh browser session on the app's URL carrying `token`, as after a reload of the tab."""
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.query_params[SESSION_PARAM] = token
    app.run()
    assert not app.exception, app.exception
    return app


def signed_out(app: AppTest) -> bool:
    return [t.value for t in app.title] == ["Efir dashboards"] and bool(app.text_input(key="signin_password"))


def test_sign_in_puts_an_opaque_token_in_the_url_and_a_reload_stays_signed_in(accounts: Path) -> None:
    app = sign_in(AppTest.from_file(str(APP), default_timeout=60).run(), "olga")
    token = app.query_params[SESSION_PARAM]
    assert len(token) >= 43  # 256 random bits
    stored = accounts.read_text()
    assert token not in stored and "correct horse" not in stored  # kept only as a hash

    again = reloaded(token)
    assert "Streamer revenue" in [t.value for t in again.title]
    assert "olga" in again.sidebar.caption[0].value
    assert again.query_params[SESSION_PARAM] == token


def test_after_sign_out_the_token_no_longer_signs_in(accounts: Path) -> None:
    token = AccountStore(accounts).open_session("olga", timedelta(hours=12))
    assert not signed_out(reloaded(token))
    AccountStore(accounts).close_session(token)  # what the Sign out button does (clicked in Chromium)
    app = reloaded(token)
    assert signed_out(app)
    assert [w.value for w in app.warning] == [ENDED]
    assert SESSION_PARAM not in app.query_params
    assert not app.metric and not app.dataframe


def test_an_expired_token_does_not_sign_in(accounts: Path) -> None:
    thirteen_hours_ago = datetime.now(UTC) - timedelta(hours=13)
    token = AccountStore(accounts).open_session("olga", timedelta(hours=12), now=thirteen_hours_ago)
    app = reloaded(token)
    assert signed_out(app)
    assert [w.value for w in app.warning] == [ENDED]


@pytest.mark.parametrize("token", ["made-up-token", "x" * 5000, ""])
def test_a_forged_or_garbage_token_gets_the_form(accounts: Path, token: str) -> None:
    assert signed_out(reloaded(token))


def test_the_lifetime_is_a_setting(accounts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFIR_DASHBOARD_SESSION_HOURS", "0.5")
    before = datetime.now(UTC)
    sign_in(AppTest.from_file(str(APP), default_timeout=60).run(), "olga")
    (expires,) = [
        datetime.fromisoformat(s["expires_at"]) for s in json.loads(accounts.read_text())["sessions"].values()
    ]
    assert before + timedelta(minutes=30) <= expires <= datetime.now(UTC) + timedelta(minutes=30)
