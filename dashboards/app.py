"""Efir's Streamlit dashboards (`streamlit run dashboards/app.py`): one app, one page per audience."""

import streamlit as st

st.set_page_config(page_title="Efir", page_icon="📺", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/streamer.py", title="Streamer revenue", icon="💰", url_path="streamer", default=True),
        st.Page("pages/finance.py", title="Payouts", icon="🏦", url_path="finance"),
        st.Page("pages/audience.py", title="Audience and loyalty", icon="👥", url_path="audience"),
    ]
)
navigation.run()
