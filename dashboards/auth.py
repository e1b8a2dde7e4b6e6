"""Sign-in for the dashboards: nothing but the form renders until a user has signed in.

The signed-in `Principal` lives in Streamlit's per-browser-session state; the pages ask `principal()`
for it and show only the channels it may see. Five wrong passwords in a session lock the form for a
while, on top of scrypt's cost per attempt.
"""

from __future__ import annotations

import time

import streamlit as st

from services.dashboard_accounts import AccountError, AccountStore, Principal
from services.settings import Settings

STATE_KEY = "efir_principal"
FAILURES_KEY = "efir_signin_failures"
LOCKED_UNTIL_KEY = "efir_signin_locked_until"
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0
NO_ACCOUNTS = "No dashboard accounts yet — create one with `efir accounts add NAME --role finance`"
WRONG = "Wrong username or password"


def principal() -> Principal:
    """The signed-in user; a page reached without one stops here (the app gate normally prevents it)."""
    who = st.session_state.get(STATE_KEY)
    if not isinstance(who, Principal):
        st.error("Please sign in")
        st.stop()
    return who


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
    st.session_state[STATE_KEY] = who
    st.session_state[FAILURES_KEY] = 0
    st.rerun()


def sign_in_gate() -> Principal:
    """Return the signed-in user, or render the sign-in form and stop the run."""
    who = st.session_state.get(STATE_KEY)
    if isinstance(who, Principal):
        return who
    store = AccountStore(Settings().dashboard_accounts_path)
    st.title("Efir dashboards")
    try:
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
        _attempt(store, username, password)
    st.stop()


def sign_out_button(who: Principal) -> None:
    scope = "all channels" if who.sees_all else ", ".join(who.channels)
    st.sidebar.caption(f"Signed in as **{who.username}** ({who.role}: {scope})")
    if st.sidebar.button("Sign out", key="signout"):
        st.session_state.pop(STATE_KEY, None)
        st.rerun()
