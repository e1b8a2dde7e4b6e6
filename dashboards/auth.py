"""Sign-in for the dashboards: nothing but the form renders until a user has signed in.

Signing in opens a session in the account store and puts its opaque token in the page's URL
(`?session=...`), because Streamlit's `st.session_state` dies with the browser's websocket connection and a
reload would otherwise sign the user out; `AccountStore.open_session` says why the URL and how the token is
kept safe. Every run looks the token up again, so signing out (which revokes it), its expiry
(EFIR_DASHBOARD_SESSION_HOURS), a password change or a removed account end the sign-in in every tab at
once. The run's `Principal` is kept in `st.session_state` for the pages, which ask `principal()` for it,
or `allowed(page)` to refuse a role the page is not granted to. Five wrong passwords in a session lock the
form for a while, on top of scrypt's cost per attempt.
"""

from __future__ import annotations

import time
from datetime import timedelta

import streamlit as st

from services.dashboard_accounts import AccountError, AccountStore, Principal
from services.settings import Settings

STATE_KEY = "efir_principal"
TOKEN_KEY = "efir_session_token"
SESSION_PARAM = "session"
FAILURES_KEY = "efir_signin_failures"
LOCKED_UNTIL_KEY = "efir_signin_locked_until"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0
NO_ACCOUNTS = "No dashboard accounts yet — create one with `efir accounts add NAME --role finance`"
WRONG = "Wrong username or password"
ENDED = "Your sign-in has ended (signed out or expired); please sign in again"
NOT_GRANTED = "This page is not open to the {role} role"


def principal() -> Principal:
    """The signed-in user; a page reached without one stops here (the app gate normally prevents it)."""
    who = st.session_state.get(STATE_KEY)
    if not isinstance(who, Principal):
        st.error("Please sign in")
        st.stop()
    return who


def allowed(page: str) -> Principal:
    """The signed-in user when their role is granted `page` (its URL path); otherwise the page stops here.

    The app's menu already leaves such pages out, so a URL to one does not open it; each page checks again
    so that no route around the menu (a direct run, a future link) renders it for the wrong role."""
    who = principal()
    if not who.may_open(page):
        st.error(NOT_GRANTED.format(role=who.role))
        st.stop()
    return who


def _store() -> AccountStore:
    return AccountStore(Settings().dashboard_accounts_path)


def _forget() -> None:
    for key in (STATE_KEY, TOKEN_KEY):
        st.session_state.pop(key, None)
    if SESSION_PARAM in st.query_params:
        del st.query_params[SESSION_PARAM]


def _attempt(store: AccountStore, username: str, password: str) -> None:
    locked_until = float(st.session_state.get(LOCKED_UNTIL_KEY, 0.0))
    if time.monotonic() < locked_until:
        st.error(f"Too many failed sign-ins; try again in {locked_until - time.monotonic():.0f} s")
        return
    who = store.verify(username.strip(), password)
    if who is None:
        failures = int(st.session_state.get(FAILURES_KEY, 0)) + 1
        st.session_state[FAILURES_KEY] = failures
        if failures >= MAX_FAILURES:
            st.session_state[LOCKED_UNTIL_KEY] = time.monotonic() + LOCKOUT_SECONDS
            st.session_state[FAILURES_KEY] = 0
        st.error(WRONG)
        return
    token = store.open_session(who.username, timedelta(hours=Settings().dashboard_session_hours))
    st.session_state[TOKEN_KEY] = token
    st.query_params[SESSION_PARAM] = token
    st.session_state[FAILURES_KEY] = 0
    st.rerun()


def _signed_in(store: AccountStore) -> Principal | None:
    """The user of this browser session's token (kept from the sign-in, or from the URL after a reload),
    or None without a live one. A page switch in the menu drops the URL's query, so the token is written
    back whenever the URL lacks it (and a reload there keeps the user signed in)."""
    carried = st.query_params.get(SESSION_PARAM)
    token = st.session_state.get(TOKEN_KEY) or carried
    if not token:
        return None
    who = store.session_principal(token)
    if who is None:
        _forget()
        st.warning(ENDED)
        return None
    st.session_state[TOKEN_KEY] = token
    st.session_state[STATE_KEY] = who
    if carried != token:
        st.query_params[SESSION_PARAM] = token
    return who


def sign_in_gate() -> Principal:
    """Return the signed-in user, or render the sign-in form and stop the run."""
    store = _store()
    try:
        who = _signed_in(store)
        if who is not None:
            return who
        st.title("Efir dashboards")
        has_accounts = bool(store.usernames())
    except AccountError as exc:
        st.error(str(exc))
        st.stop()
    if not has_accounts:
        st.info(NO_ACCOUNTS)
        st.stop()
    with st.form("signin"):
        username = st.text_input("Username", key="signin_username")
        password = st.text_input("Password", type="password", key="signin_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            _attempt(store, username, password)
        except AccountError as exc:
            st.error(str(exc))
    st.stop()


def sign_out_button(who: Principal) -> None:
    scope = "all channels" if who.sees_all else ", ".join(who.channels)
    st.sidebar.caption(f"Signed in as **{who.username}** ({who.role}: {scope})")
    if st.sidebar.button("Sign out", key="signout"):
        token = st.session_state.get(TOKEN_KEY)
        if token:
            _store().close_session(token)
        _forget()
        st.rerun()
