"""Efir's Streamlit dashboards (`streamlit run dashboards/app.py`): one app, one page per audience.

Nothing renders before sign-in; the pages a user is offered are the ones their role is granted in
`services.dashboard_accounts.ROLE_GRANTS` (a page left out of `st.navigation` cannot be opened by its URL
either, and each page checks the grant again).
"""

from pathlib import Path

import streamlit as st

from dashboards.auth import sign_in_gate, sign_out_button

st.set_page_config(page_title="Efir", page_icon="📺", layout="wide")
who = sign_in_gate()
sign_out_button(who)

PAGES = Path(__file__).parent / "pages"
# Every page by its URL path (also its name in ROLE_GRANTS): file, title, icon.
CATALOGUE = {
    "streamer": ("streamer.py", "Streamer revenue", "💰"),
    "audience": ("audience.py", "Audience and loyalty", "👥"),
    "finance": ("finance.py", "Payouts", "🏦"),
    "moderation": ("moderation.py", "Fraud review", "🛡️"),
}
granted = who.grant.pages
pages = [
    st.Page(
        PAGES / CATALOGUE[name][0],
        title=CATALOGUE[name][1],
        icon=CATALOGUE[name][2],
        url_path=name,
        default=name == granted[0],
    )
    for name in granted
]
st.navigation(pages).run()
