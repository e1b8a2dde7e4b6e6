"""The streamer's page: revenue by day and by source (donations, subscriptions, gifts, sponsored
content), split into their share and the platform fee, and the latest donations, all read from the marts
the Dagster assets build."""

import pandas as pd
import streamlit as st

from dashboards.auth import allowed
from services import marts
from services.events import DonationChargedBack, DonationProcessed, DonationRefunded
from services.money import MINOR_PER_MAJOR, SETTLEMENT_CURRENCY, format_minor
from services.revenue import STREAMER_SHARE, RevenueSource
from services.settings import Settings

EMPTY_STATE = "No revenue yet — waiting for the first payments to be processed"
SOURCE_LABELS = {
    RevenueSource.DONATION: "Donations, boosts and requests",
    RevenueSource.SUBSCRIPTION: "Subscriptions",
    RevenueSource.GIFT: "Virtual gifts",
    RevenueSource.SPONSORED: "Sponsored content",
}
EVENT_LABELS = {
    DonationProcessed.event_type: "Donation",
    DonationRefunded.event_type: "Refund",
    DonationChargedBack.event_type: "Chargeback",
}


def rub(amount_minor: int) -> str:
    return format_minor(amount_minor, SETTLEMENT_CURRENCY)


# Settings are read on every rerun (they are cheap), so the page follows EFIR_MARTS_DIR / EFIR_DATA_DIR.
root = Settings().marts_root
# A streamer sees only their own channels; finance sees all; a moderator is not granted revenue at all.
who = allowed("streamer")

st.title("Streamer revenue")
channels = who.visible(marts.channels(root))
if not channels:
    st.info(EMPTY_STATE)
    st.stop()

channel = st.selectbox("Channel", channels, key="channel")
days = marts.revenue_by_day(root, channel)

total, share, fee = st.columns(3)
total.metric("Gross", rub(sum(d.gross_rub_minor for d in days)))
share.metric("Your share", rub(sum(d.streamer_share_minor for d in days)))
fee.metric("Platform fee", rub(sum(d.platform_fee_minor for d in days)))

st.subheader("Revenue by day")
# Roubles as numbers for the chart's axis only; every figure shown as text is formatted from minor units.
chart = pd.DataFrame(
    {
        "Your share, ₽": [d.streamer_share_minor / MINOR_PER_MAJOR for d in days],
        "Platform fee, ₽": [d.platform_fee_minor / MINOR_PER_MAJOR for d in days],
    },
    index=pd.Index([d.day for d in days], name="Day"),
)
st.bar_chart(chart)
st.dataframe(
    pd.DataFrame(
        {
            "Day": [d.day.isoformat() for d in days],
            "Gross": [rub(d.gross_rub_minor) for d in days],
            "Your share": [rub(d.streamer_share_minor) for d in days],
            "Platform fee": [rub(d.platform_fee_minor) for d in days],
            "Payments": [d.donations_count for d in days],
            "Refunds and chargebacks": [d.reversals_count for d in days],
        }
    ),
    hide_index=True,
)

st.subheader("Revenue by source")
sources = marts.revenue_by_source(root, channel)
st.dataframe(
    pd.DataFrame(
        {
            "Source": [SOURCE_LABELS.get(RevenueSource(s.source), s.source) for s in sources],
            "Your share of each payment": [f"{STREAMER_SHARE[RevenueSource(s.source)]:.0%}" for s in sources],
            "Gross": [rub(s.gross_rub_minor) for s in sources],
            "Your share": [rub(s.streamer_share_minor) for s in sources],
            "Platform fee": [rub(s.platform_fee_minor) for s in sources],
            "Payments": [s.payments_count for s in sources],
            "Refunds and chargebacks": [s.reversals_count for s in sources],
        }
    ),
    hide_index=True,
)

st.subheader("Recent donations")
recent = marts.recent_donations(root, channel)
st.dataframe(
    pd.DataFrame(
        {
            "When (UTC)": [r.occurred_at.strftime("%Y-%m-%d %H:%M") for r in recent],
            "What": [EVENT_LABELS.get(r.event_type, r.event_type) for r in recent],
            "From": [r.donor_name or "Anonymous" for r in recent],
            "Amount": [format_minor(r.amount_minor, r.currency) for r in recent],
            "In roubles": [rub(r.gross_rub_minor) for r in recent],
            "Message": [r.message or "" for r in recent],
        }
    ),
    hide_index=True,
)
