"""The fraud review queue: donations whose fraud score reached the review threshold, highest first, each
with the reasons behind its score, the donor and the amount; above it, how the current model did against
the edge's rules on its time-split holdout. Read from the `fraud_review_queue` mart and the model's
metrics file, never from raw events. Open to finance and moderators (every channel), never to streamers."""

import pandas as pd
import streamlit as st

from dashboards.auth import allowed
from services.marts import fraud_model_summary, review_days, review_queue
from services.money import SETTLEMENT_CURRENCY, Currency, format_minor
from services.settings import Settings

EMPTY_STATE = (
    "No fraud review queue yet — materialise fraud_features, fraud_model and fraud_scores in Dagster"
)
NOTHING_QUEUED = "Nothing reached the review threshold on this day"
ALL_DAYS = "All days"

# Donors' payment fingerprints and amounts are for finance (who handles chargebacks) and moderators only;
# the menu offers the page to them alone, and it is checked again here in case the page is run directly.
allowed("moderation")

root = Settings().marts_root
st.title("Fraud review")

summary = fraud_model_summary(root)
if summary is not None:
    evaluation = summary.get("evaluation")
    line = f"Model `{summary['version']}` ({summary['kind']}), trained on {summary['train_rows']} donations"
    if evaluation:
        got, rules = evaluation["model"], evaluation["rules"]
        line += (
            f"; holdout from {evaluation['split_at']}: "
            f"PR-AUC {got['pr_auc']:.2f} (rules {rules['pr_auc']:.2f}), "
            f"precision {got['precision']:.2f}, recall {got['recall']:.2f}"
        )
    st.caption(line)

days = review_days(root)
if not days:
    st.info(EMPTY_STATE)
    st.stop()

chosen = st.selectbox("Day", [d.isoformat() for d in days] + [ALL_DAYS], key="day")
rows = review_queue(root, None if chosen == ALL_DAYS else days[[d.isoformat() for d in days].index(chosen)])
queued, at_stake, top = st.columns(3)
queued.metric("Queued", len(rows))
at_stake.metric("At stake", format_minor(sum(r.gross_rub_minor for r in rows), SETTLEMENT_CURRENCY))
top.metric("Highest score", f"{max((r.score for r in rows), default=0.0):.2f}")
if not rows:
    st.info(NOTHING_QUEUED)
    st.stop()

st.dataframe(
    pd.DataFrame(
        {
            "Score": [round(r.score, 3) for r in rows],
            "When (UTC)": [f"{r.occurred_at:%Y-%m-%d %H:%M}" for r in rows],
            "Channel": [r.channel_id for r in rows],
            "Donor": [r.donor for r in rows],
            "Amount": [format_minor(r.amount_minor, Currency(r.currency)) for r in rows],
            "In RUB": [format_minor(r.gross_rub_minor, SETTLEMENT_CURRENCY) for r in rows],
            "Top reasons": ["; ".join(r.reasons) for r in rows],
            "Edge rule": [r.rules_flag or "" for r in rows],
            "Donation": [r.donation_id for r in rows],
        }
    ),
    hide_index=True,
    column_config={
        "Score": st.column_config.ProgressColumn("Score", min_value=0.0, max_value=1.0, format="%.2f")
    },
)
