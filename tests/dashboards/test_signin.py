"""Sign-in gate of the dashboards, through the real form in Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.auth import MAX_FAILURES, NO_ACCOUNTS, WRONG
from tests.dashboards.signin import APP, PASSWORD, add_account, sign_in


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AppTest:
    accounts = tmp_path / "accounts.json"
    add_account(accounts, "olga", "finance")
    monkeypatch.setenv("EFIR_DASHBOARD_ACCOUNTS_FILE", str(accounts))
    monkeypatch.setenv("EFIR_MARTS_DIR", str(tmp_path / "marts"))
    return AppTest.from_file(str(APP), default_timeout=60).run()


def test_nothing_but_the_form_before_sign_in(app: AppTest) -> None:
    assert [t.value for t in app.title] == ["Efir dashboards"]
    assert [w.key for w in app.text_input] == ["signin_username", "signin_password"]
    assert not app.selectbox and not app.metric and not app.dataframe


@pytest.mark.parametrize(("username", "password"), [("olga", "wrong password!"), ("nobody", PASSWORD)])
def test_wrong_password_and_unknown_user_get_the_same_answer(
    app: AppTest, username: str, password: str
) -> None:
    sign_in(app, username, password)
    assert not app.exception
    assert [e.value for e in app.error] == [WRONG]
    assert [t.value for t in app.title] == ["Efir dashboards"]


def test_sign_in_shows_who_is_signed_in(app: AppTest) -> None:
    # Signing out is exercised in the Chromium test: AppTest does not deliver clicks on widgets of the
    # entry script once `st.navigation` runs a page.
    sign_in(app, "olga")
    assert not app.exception
    assert "Streamer revenue" in [t.value for t in app.title]
    assert "olga" in app.sidebar.caption[0].value


def test_the_form_locks_after_repeated_failures(app: AppTest) -> None:
    for _ in range(MAX_FAILURES):
        sign_in(app, "olga", "not the password")
    sign_in(app, "olga")  # the right password, too late
    assert app.error[0].value.startswith("Too many failed sign-ins")
    assert "Streamer revenue" not in [t.value for t in app.title]


def test_no_accounts_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EFIR_DASHBOARD_ACCOUNTS_FILE", str(tmp_path / "none.json"))
    app = AppTest.from_file(str(APP), default_timeout=60).run()
    assert [i.value for i in app.info] == [NO_ACCOUNTS]
    assert not app.text_input
