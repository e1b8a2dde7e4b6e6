"""The dashboard account store: hashed at rest, owner-only file, clear refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.dashboard_accounts import AccountError, AccountStore, Principal

PASSWORD = "s3cret-enough-pass"


def test_password_is_stored_only_as_a_hash_in_an_owner_only_file(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    text = store.path.read_text()
    assert PASSWORD not in text and "olga" in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_verify(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("sasha", "streamer", ["speedrun-sasha", "speedrun-sasha"], PASSWORD)
    assert store.verify("sasha", PASSWORD) == Principal("sasha", "streamer", ("speedrun-sasha",))
    assert store.verify("sasha", PASSWORD + "x") is None
    assert store.verify("nobody", PASSWORD) is None
    store.set_password("sasha", "another-long-one")
    assert store.verify("sasha", PASSWORD) is None
    assert store.verify("sasha", "another-long-one") is not None
    store.remove("sasha")
    assert store.verify("sasha", "another-long-one") is None


def test_visibility() -> None:
    channels = ["a", "b", "c"]
    assert Principal("x", "streamer", ("c", "a")).visible(channels) == ["a", "c"]
    assert Principal("y", "finance", ()).visible(channels) == channels


@pytest.mark.parametrize(
    ("username", "role", "channels", "password", "message"),
    [
        ("Bad Name", "finance", [], PASSWORD, "a username is"),
        ("olga", "admin", [], PASSWORD, "unknown role 'admin'"),
        ("olga", "streamer", [], PASSWORD, "needs at least one --channel"),
        ("olga", "finance", [], "short", "at least 10 characters"),
    ],
)
def test_refusals(
    tmp_path: Path, username: str, role: str, channels: list[str], password: str, message: str
) -> None:
    with pytest.raises(AccountError, match=message):
        AccountStore(tmp_path / "accounts.json").add(username, role, channels, password)


def test_duplicate_and_missing_accounts_and_a_broken_file(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    with pytest.raises(AccountError, match="exists"):
        store.add("olga", "finance", [], PASSWORD)
    with pytest.raises(AccountError, match="no account 'ivan'"):
        store.remove("ivan")
    store.path.write_text("{not json")
    with pytest.raises(AccountError, match="not an Efir accounts file"):
        store.verify("olga", PASSWORD)
