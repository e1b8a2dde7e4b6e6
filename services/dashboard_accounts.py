"""Who may open the dashboards: local accounts with a role, managed by `efir accounts`.

A streamer sees only their own channels; finance sees every channel, the payout batches and the fraud
review queue. Passwords are stored only as salted scrypt hashes in one JSON file readable by its owner,
and checked in constant time; an unknown name costs the same scrypt as a wrong password, so the sign-in
form does not tell which names exist. A platform identity provider (OIDC through Streamlit's `st.login`)
can replace this store later: the pages only ever see a `Principal`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

Role = Literal["streamer", "finance"]
ROLES: tuple[str, ...] = get_args(Role)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD = 10
# scrypt at n=2**14, r=8: ~16 MB and tens of milliseconds per check, which makes guessing slow.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_DUMMY_SALT = bytes(16)


class AccountError(ValueError):
    """A request the account store refuses, with a message meant for the operator."""


@dataclass(frozen=True)
class Principal:
    """The signed-in user as the pages see it."""

    username: str
    role: Role
    channels: tuple[str, ...]

    @property
    def sees_all(self) -> bool:
        return self.role == "finance"

    def visible(self, channels: Iterable[str]) -> list[str]:
        """The channels of `channels` this user may look at, in their order."""
        return [c for c in channels if self.sees_all or c in self.channels]


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


class AccountStore:
    """The accounts file: `{"accounts": {name: {role, channels, salt, hash, created_at}}}`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        try:
            accounts = json.loads(self.path.read_text())["accounts"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AccountError(f"{self.path} is not an Efir accounts file: {exc}") from exc
        return dict(accounts)

    def _save(self, accounts: dict[str, dict[str, object]]) -> None:
        """Write a temporary file then rename it, so a crash never leaves a half-written store."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"accounts": accounts}, fh, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def usernames(self) -> list[str]:
        return sorted(self._load())

    def principal(self, username: str) -> Principal | None:
        entry = self._load().get(username)
        if entry is None:
            return None
        return Principal(username, entry["role"], tuple(entry["channels"]))  # type: ignore[arg-type]

    def add(self, username: str, role: str, channels: Iterable[str], password: str) -> Principal:
        channels = tuple(dict.fromkeys(c.strip() for c in channels if c.strip()))
        if not USERNAME.match(username):
            raise AccountError("a username is 2-32 characters: lower-case letters, digits, '_', '.', '-'")
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if role == "streamer" and not channels:
            raise AccountError("a streamer account needs at least one --channel")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
        accounts = self._load()
        if username in accounts:
            raise AccountError(f"account {username!r} exists; remove it first or set its password")
        salt = secrets.token_bytes(16)
        accounts[username] = {
            "role": role,
            "channels": list(channels),
            "salt": salt.hex(),
            "hash": _hash(password, salt).hex(),
            "created_at": datetime.now(UTC).isoformat(),
        }
        self._save(accounts)
        return Principal(username, role, channels)  # type: ignore[arg-type]

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
        accounts = self._load()
        if username not in accounts:
            raise AccountError(f"no account {username!r}")
        salt = secrets.token_bytes(16)
        accounts[username].update(salt=salt.hex(), hash=_hash(password, salt).hex())
        self._save(accounts)

    def remove(self, username: str) -> None:
        accounts = self._load()
        if accounts.pop(username, None) is None:
            raise AccountError(f"no account {username!r}")
        self._save(accounts)

    def verify(self, username: str, password: str) -> Principal | None:
        """The account when the password matches, else None; the same work either way."""
        entry = self._load().get(username)
        salt = bytes.fromhex(str(entry["salt"])) if entry else _DUMMY_SALT
        expected = bytes.fromhex(str(entry["hash"])) if entry else bytes(32)
        matches = hmac.compare_digest(_hash(password, salt), expected)
        if entry is None or not matches:
            return None
        return Principal(username, entry["role"], tuple(entry["channels"]))  # type: ignore[arg-type]
