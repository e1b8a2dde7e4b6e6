"""Efir's Streamlit dashboards (`streamlit run dashboards/app.py`): one app, one page per audience.

Nothing renders before sign-in; the pages a user is offered follow their role (a page left out of
`st.navigation` cannot be opened by its URL either).
"""

from pathlib import Path

import streamlit as st

from dashboards.auth import sign_in_gate, sign_out_button

st.set_page_config(page_title="Efir", page_icon="📺", layout="wide")
who = sign_in_gate()
sign_out_button(who)

PAGES = Path(__file__).parent / "pages"
pages = [
    st.Page(PAGES / "streamer.py", title="Streamer revenue", icon="💰", url_path="streamer", default=True),
    st.Page(PAGES / "audience.py", title="Audience and loyalty", icon="👥", url_path="audience"),
]
if who.role == "finance":
    pages.append(st.Page(PAGES / "finance.py", title="Payouts", icon="🏦", url_path="finance"))
    pages.append(st.Page(PAGES / "moderation.py", title="Fraud review", icon="🛡️", url_path="moderation"))
st.navigation(pages).run()
