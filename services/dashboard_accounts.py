"""Who may open the dashboards: local accounts with a role, managed by `efir accounts`, and their sign-ins.

What each role may open is data, in `ROLE_GRANTS`: a streamer sees only their own channels' revenue and
audience; finance sees every channel, the payout batches and the fraud review queue; a moderator sees the
fraud review queue of every channel and nothing else (no revenue, no payouts). Passwords are stored only
as salted scrypt hashes in one JSON file readable by its owner, and checked in constant time; an unknown
name costs the same scrypt as a wrong password, so the sign-in form does not tell which names exist. A
platform identity provider (OIDC through Streamlit's `st.login`) can replace this store later: the pages
only ever see a `Principal`.

Sign-in sessions live in the same file, so that reloading the browser tab (which ends Streamlit's
per-connection state) does not sign the user out. See `AccountStore.open_session` for why the session is
an opaque token carried in the URL and how it is kept safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from services.file_lock import exclusive

Role = Literal["streamer", "finance", "moderator"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True)
class RoleGrant:
    """What a role may open: dashboard pages (by their URL path, in menu order, the first one the landing
    page) and whether it sees every channel or only the account's own."""

    pages: tuple[str, ...]
    all_channels: bool


# The one place that says which role gets which page; the app's menu and every page's own check read it.
ROLE_GRANTS: dict[str, RoleGrant] = {
    "streamer": RoleGrant(pages=("streamer", "audience"), all_channels=False),
    "finance": RoleGrant(pages=("streamer", "audience", "finance", "moderation"), all_channels=True),
    "moderator": RoleGrant(pages=("moderation",), all_channels=True),
}
# A session token: 256 random bits, URL-safe; anything much longer is not one of ours.
_TOKEN_BYTES = 32
_MAX_TOKEN_CHARS = 64
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
    def grant(self) -> RoleGrant:
        return ROLE_GRANTS[self.role]

    @property
    def sees_all(self) -> bool:
        return self.grant.all_channels

    def may_open(self, page: str) -> bool:
        """Whether this user's role is granted the dashboard page with URL path `page`."""
        return page in self.grant.pages

    def visible(self, channels: Iterable[str]) -> list[str]:
        """The channels of `channels` this user may look at, in their order."""
        return [c for c in channels if self.sees_all or c in self.channels]


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _token_key(token: str) -> str:
    """What the store keeps of a session token: its SHA-256. The token is 256 random bits, so a fast hash
    is enough (nothing to brute-force), and a stolen file holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(username: str, entry: dict[str, object]) -> Principal:
    role = entry["role"]
    if role not in ROLE_GRANTS:
        raise AccountError(f"account {username!r} has an unknown role {role!r}; one of: {', '.join(ROLES)}")
    return Principal(username, role, tuple(entry["channels"]))  # type: ignore[arg-type]


Entries = dict[str, dict[str, object]]


class AccountStore:
    """The accounts file: `{"accounts": {name: {role, channels, salt, hash, created_at}},
    "sessions": {sha256(token): {username, expires_at}}}`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> tuple[Entries, Entries]:
        """The accounts and the sign-in sessions (a file from before sessions has none)."""
        if not self.path.exists():
            return {}, {}
        try:
            data = json.loads(self.path.read_text())
            return dict(data["accounts"]), dict(data.get("sessions", {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AccountError(f"{self.path} is not an Efir accounts file: {exc}") from exc

    def _load(self) -> Entries:
        return self._read()[0]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's lock file for a read-modify-write: every browser session of the dashboards
        and `efir accounts` write this one file, and none may lose another's change."""
        with exclusive(self.path):
            yield

    def _save(self, accounts: Entries, sessions: Entries | None = None) -> None:
        """Write a temporary file then rename it, so a crash never leaves a half-written store (the
        caller holds `_locked`). Without `sessions`, the stored ones are kept."""
        if sessions is None:
            sessions = self._read()[1]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"accounts": accounts, "sessions": sessions}, fh, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def usernames(self) -> list[str]:
        return sorted(self._load())

    def principal(self, username: str) -> Principal | None:
        entry = self._load().get(username)
        if entry is None:
            return None
        return _principal(username, entry)

    def add(self, username: str, role: str, channels: Iterable[str], password: str) -> Principal:
        channels = tuple(dict.fromkeys(c.strip() for c in channels if c.strip()))
        if not USERNAME.match(username):
            raise AccountError("a username is 2-32 characters: lower-case letters, digits, '_', '.', '-'")
        if role not in ROLE_GRANTS:
            raise AccountError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
        if role == "streamer" and not channels:
            raise AccountError("a streamer account needs at least one --channel")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        digest = _hash(password, salt).hex()
        with self._locked():
            accounts = self._load()
            if username in accounts:
                raise AccountError(f"account {username!r} exists; remove it first or set its password")
            accounts[username] = {
                "role": role,
                "channels": list(channels),
                "salt": salt.hex(),
                "hash": digest,
                "created_at": datetime.now(UTC).isoformat(),
            }
            self._save(accounts)
        return Principal(username, role, channels)  # type: ignore[arg-type]

    def set_password(self, username: str, password: str) -> None:
        """Change the password and end the account's sign-ins (a leaked password or session stops
        working once it is changed)."""
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        digest = _hash(password, salt).hex()
        with self._locked():
            accounts, sessions = self._read()
            if username not in accounts:
                raise AccountError(f"no account {username!r}")
            accounts[username].update(salt=salt.hex(), hash=digest)
            self._save(accounts, {k: v for k, v in sessions.items() if v["username"] != username})

    def remove(self, username: str) -> None:
        with self._locked():
            accounts, sessions = self._read()
            if accounts.pop(username, None) is None:
                raise AccountError(f"no account {username!r}")
            self._save(accounts, {k: v for k, v in sessions.items() if v["username"] != username})

    def verify(self, username: str, password: str) -> Principal | None:
        """The account when the password matches, else None; the same work either way."""
        entry = self._load().get(username)
        salt = bytes.fromhex(str(entry["salt"])) if entry else _DUMMY_SALT
        expected = bytes.fromhex(str(entry["hash"])) if entry else bytes(32)
        matches = hmac.compare_digest(_hash(password, salt), expected)
        if entry is None or not matches:
            return None
        return _principal(username, entry)

    def open_session(self, username: str, lifetime: timedelta, now: datetime | None = None) -> str:
        """Start a sign-in session for `username` (already verified) and return its token.

        Why an opaque token in the URL (`?session=...`): Streamlit keeps `st.session_state` per websocket
        connection, so a browser reload starts from nothing; the only state that survives the reload and
        that a Streamlit app can both read and write is the page's URL query (`st.context.cookies` is
        read-only, and setting a cookie would take injected JavaScript, which cannot make it HttpOnly
        either). So the URL carries 256 random bits that mean nothing by themselves: no password, no
        username, no signed claims. The store keeps only the token's SHA-256 and finds a session by that
        hash, so neither a stolen store nor timing of a comparison gives a usable token. A session ends
        at `lifetime` (EFIR_DASHBOARD_SESSION_HOURS), at sign-out (`close_session`), when the password is
        changed and when the account is removed; its role and channels are read from the account at
        every use, so a changed account applies at once. The cost of a URL: the token sits in the tab's
        history and in a copied link, which is why it expires and why signing out revokes it.
        """
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._locked():
            accounts, sessions = self._read()
            if username not in accounts:
                raise AccountError(f"no account {username!r}")
            live = {k: v for k, v in sessions.items() if datetime.fromisoformat(str(v["expires_at"])) > now}
            live[_token_key(token)] = {"username": username, "expires_at": (now + lifetime).isoformat()}
            self._save(accounts, live)
        return token

    def session_principal(self, token: str, now: datetime | None = None) -> Principal | None:
        """The user a session token signs in, or None when it is unknown, expired, revoked or its account
        is gone."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return None
        accounts, sessions = self._read()
        session = sessions.get(_token_key(token))
        if session is None or datetime.fromisoformat(str(session["expires_at"])) <= (
            now or datetime.now(UTC)
        ):
            return None
        username = str(session["username"])
        entry = accounts.get(username)
        return None if entry is None else _principal(username, entry)

    def close_session(self, token: str) -> None:
        """Sign-out: the token stops working at once (an unknown token is already closed)."""
        with self._locked():
            accounts, sessions = self._read()
            if sessions.pop(_token_key(token), None) is not None:
                self._save(accounts, sessions)
