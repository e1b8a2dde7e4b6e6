"""`efir accounts`: who may sign in to the dashboards (streamers see their channels, finance sees all,
moderators see the fraud review queue only)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from services.dashboard_accounts import ROLES, AccountError, AccountStore, generate_password
from services.secret_files import write_secret
from services.settings import get_settings

FIRST_ACCOUNT = "admin"
PASSWORD_FILE = "dashboard_password"


def _store() -> AccountStore:
    return AccountStore(get_settings().dashboard_accounts_path)


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password read from stdin, or a generated one (shown once)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    return generate_password(), True


def ensure_first_account(store: AccountStore, data_dir: Path) -> Path | None:
    """On a store with no accounts, make a finance account `admin` whose password goes to an owner-only
    file (never to the console or a log): `efir up` must open to a dashboard someone can sign in to."""
    if store.usernames():
        return None
    password = generate_password()
    store.add(FIRST_ACCOUNT, "finance", [], password)
    path = data_dir / PASSWORD_FILE
    write_secret(path, password)
    return path


@click.group(short_help="Dashboard sign-in accounts: add, list, set a password, remove.")
def accounts() -> None:
    """Accounts of the Streamlit dashboards, in EFIR_DASHBOARD_ACCOUNTS_FILE (passwords as scrypt hashes).

    A streamer account sees only its --channel(s); a finance account sees every channel, the payout
    batches and the fraud review queue; a moderator account sees the fraud review queue of every channel
    and nothing else. Changing a password or removing an account also ends its dashboard sign-ins.
    """


@accounts.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--channel", "channels", multiple=True, help="A channel the streamer owns (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of making one.")
def accounts_add(username: str, role: str, channels: tuple[str, ...], password_stdin: bool) -> None:
    """Add an account; a generated password is printed once, here, and stored only hashed."""
    password, generated = _password(password_stdin)
    try:
        who = _store().add(username, role, channels, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    scope = "all channels" if who.sees_all else ", ".join(who.channels)
    click.echo(f"Added {who.username} ({who.role}: {scope}).")
    if generated:
        click.echo(f"Password (shown once): {password}")


@accounts.command("list")
def accounts_list() -> None:
    """Accounts with their role and channels (never their passwords)."""
    store = _store()
    names = store.usernames()
    if not names:
        click.echo(f"No accounts in {store.path}.")
    for name in names:
        who = store.principal(name)
        assert who is not None
        click.echo(f"{who.username}\t{who.role}\t{','.join(who.channels) or '*'}")


@accounts.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of making one.")
def accounts_set_password(username: str, password_stdin: bool) -> None:
    password, generated = _password(password_stdin)
    try:
        _store().set_password(username, password)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Password of {username} changed.")
    if generated:
        click.echo(f"Password (shown once): {password}")


@accounts.command("remove")
@click.argument("username")
def accounts_remove(username: str) -> None:
    try:
        _store().remove(username)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Removed {username}.")
