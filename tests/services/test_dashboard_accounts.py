"""The dashboard account store: hashed at rest, owner-only file, clear refusals; roles' grants; sign-in
sessions that end at sign-out, expiry, a password change or removal."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.dashboard_accounts import ROLE_GRANTS, ROLES, AccountError, AccountStore, Principal

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


def test_every_role_has_a_grant_and_a_moderator_gets_the_queue_alone() -> None:
    assert set(ROLE_GRANTS) == set(ROLES) == {"streamer", "finance", "moderator"}
    mila = Principal("mila", "moderator", ())
    assert [p for p in ("streamer", "audience", "finance", "moderation") if mila.may_open(p)] == [
        "moderation"
    ]
    assert mila.visible(["a", "b"]) == ["a", "b"]  # the queue of every channel
    assert not Principal("x", "streamer", ("a",)).may_open("moderation")
    assert all(Principal("y", "finance", ()).may_open(p) for p in ("streamer", "finance", "moderation"))


def test_a_session_signs_in_by_its_token_until_closed(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    token = store.open_session("olga", timedelta(hours=12))
    other = store.open_session("olga", timedelta(hours=12))
    assert token != other and token not in store.path.read_text()
    assert store.session_principal(token) == Principal("olga", "finance", ())
    store.close_session(token)
    assert store.session_principal(token) is None
    assert store.session_principal(other) is not None  # another tab's sign-in is its own
    store.close_session(token)  # closing twice is harmless


def test_a_session_expires(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    token = store.open_session("olga", timedelta(hours=12), now=start)
    assert store.session_principal(token, now=start + timedelta(hours=11, minutes=59)) is not None
    assert store.session_principal(token, now=start + timedelta(hours=12)) is None
    store.open_session("olga", timedelta(hours=12))  # a new sign-in drops the expired sessions
    assert len(json.loads(store.path.read_text())["sessions"]) == 1


def test_a_password_change_or_removal_ends_the_accounts_sessions(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    store.add("sasha", "streamer", ["speedrun"], PASSWORD)
    olga, sasha = (store.open_session(n, timedelta(hours=1)) for n in ("olga", "sasha"))
    store.set_password("olga", "another-long-one")
    assert store.session_principal(olga) is None and store.session_principal(sasha) is not None
    store.remove("sasha")
    assert store.session_principal(sasha) is None


def test_session_refusals(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    with pytest.raises(AccountError, match="no account 'ivan'"):
        store.open_session("ivan", timedelta(hours=1))
    assert store.session_principal("") is None
    assert store.session_principal("x" * 10_000) is None


def test_an_unknown_role_in_the_file_is_a_clear_error(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "accounts.json")
    store.add("olga", "finance", [], PASSWORD)
    data = json.loads(store.path.read_text())
    data["accounts"]["olga"]["role"] = "admin"
    store.path.write_text(json.dumps(data))
    with pytest.raises(AccountError, match="unknown role 'admin'"):
        store.verify("olga", PASSWORD)
