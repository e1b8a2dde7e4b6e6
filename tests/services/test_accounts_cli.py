"""`efir accounts` and the first account `efir up` makes."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.accounts_cli import FIRST_ACCOUNT, PASSWORD_FILE, ensure_first_account
from services.cli import main
from services.dashboard_accounts import AccountStore, Principal
from services.settings import get_settings


@pytest.fixture
def accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "accounts.json"
    monkeypatch.setenv("EFIR_DASHBOARD_ACCOUNTS_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_add_prints_a_generated_password_once_and_stores_its_hash(accounts: Path) -> None:
    result = CliRunner().invoke(
        main, ["accounts", "add", "sasha", "--role", "streamer", "--channel", "speedrun"]
    )
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    assert password not in accounts.read_text()
    assert AccountStore(accounts).verify("sasha", password) is not None
    listed = CliRunner().invoke(main, ["accounts", "list"])
    assert listed.output == "sasha\tstreamer\tspeedrun\n"


def test_add_a_moderator(accounts: Path) -> None:
    result = CliRunner().invoke(main, ["accounts", "add", "mila", "--role", "moderator"])
    assert result.exit_code == 0, result.output
    assert "Added mila (moderator: all channels)." in result.output
    assert CliRunner().invoke(main, ["accounts", "list"]).output == "mila\tmoderator\t*\n"
    assert AccountStore(accounts).principal("mila") == Principal("mila", "moderator", ())


def test_password_from_stdin_and_clear_errors(accounts: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        main, ["accounts", "add", "olga", "--role", "finance", "--password-stdin"], input="a long password\n"
    )
    assert ok.exit_code == 0 and "shown once" not in ok.output
    assert AccountStore(accounts).verify("olga", "a long password") is not None
    again = runner.invoke(
        main, ["accounts", "add", "olga", "--role", "finance", "--password-stdin"], input="x" * 12
    )
    assert again.exit_code == 1 and "account 'olga' exists" in again.output
    bad_role = runner.invoke(main, ["accounts", "add", "ivan", "--role", "root"])
    assert bad_role.exit_code == 2 and "'root' is not one of" in bad_role.output
    assert runner.invoke(main, ["accounts", "remove", "olga"]).exit_code == 0
    missing = runner.invoke(main, ["accounts", "remove", "olga"])
    assert missing.exit_code == 1 and "no account 'olga'" in missing.output


def test_efir_up_makes_a_first_account_only_on_an_empty_store(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    written = ensure_first_account(store, tmp_path)
    assert written == tmp_path / PASSWORD_FILE
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert store.verify(FIRST_ACCOUNT, written.read_text().strip()) is not None
    assert ensure_first_account(store, tmp_path) is None  # never a second time, never a reset
