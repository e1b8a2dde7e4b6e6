"""The fraud review queue: donations whose fraud score reached the review threshold, highest first, each
with the reasons behind its score, the donor and the amount; above it, how the current model did against
the edge's rules on its time-split holdout. Read from the `fraud_review_queue` mart and the model's
metrics file, never from raw events. Open to finance and moderators (every channel), never to streamers.

A reviewer records a decision on a queued donation (fraud or legitimate, with an optional note) in the
append-only log of `services.fraud_reviews`; the table shows the decision in force and who made it, read
from that log at every run (the mart's own decision columns are only as new as its last build), and by
default only the donations nobody has decided yet. The decisions become the fraud model's labels at its
next training (docs/fraud.md)."""

import pandas as pd
import streamlit as st

from dashboards.auth import allowed
from services.fraud_reviews import MAX_NOTE, FraudReviewStore, Review, ReviewError, may_review
from services.marts import fraud_model_summary, review_days, review_queue
from services.money import SETTLEMENT_CURRENCY, Currency, format_minor
from services.settings import Settings

EMPTY_STATE = (
    "No fraud review queue yet — materialise fraud_features, fraud_model and fraud_scores in Dagster"
)
NOTHING_QUEUED = "Nothing reached the review threshold on this day"
ALL_DECIDED = "Every queued donation of this day has a decision; untick “Undecided only” to see them"
ALL_DAYS = "All days"
CHOICES = {"Fraud": "fraud", "Legitimate": "legitimate"}
CHOOSE = "Choose Fraud or Legitimate before recording"
FLASH_KEY = "fraud_review_flash"

# Donors' payment fingerprints and amounts are for finance (who handles chargebacks) and moderators only;
# the menu offers the page to them alone, and it is checked again here in case the page is run directly.
who = allowed("moderation")

settings = Settings()
root = settings.marts_root
store = FraudReviewStore(settings.fraud_reviews_path)
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

flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(flash)

days = review_days(root)
if not days:
    st.info(EMPTY_STATE)
    st.stop()

try:
    decisions = store.latest()
except ReviewError as exc:
    st.error(f"The review decisions cannot be read: {exc}")
    st.stop()

chosen = st.selectbox("Day", [d.isoformat() for d in days] + [ALL_DAYS], key="day")
day = None if chosen == ALL_DAYS else days[[d.isoformat() for d in days].index(chosen)]
everything = review_queue(root, day)
undecided = [r for r in everything if r.donation_id not in decisions]
queued, open_, at_stake, top = st.columns(4)
queued.metric("Queued", len(everything))
open_.metric("Undecided", len(undecided))
at_stake.metric("At stake", format_minor(sum(r.gross_rub_minor for r in everything), SETTLEMENT_CURRENCY))
top.metric("Highest score", f"{max((r.score for r in everything), default=0.0):.2f}")
if not everything:
    st.info(NOTHING_QUEUED)
    st.stop()

undecided_only = st.checkbox("Undecided only", value=True, key="undecided_only")
rows = review_queue(root, day, exclude=decisions.keys()) if undecided_only else everything
if not rows:
    st.info(ALL_DECIDED)
    st.stop()


def decided_by(review: Review | None) -> str:
    if review is None:
        return ""
    return f"{review.reviewer} ({review.role}), {review.decided_at:%Y-%m-%d %H:%M} UTC"


st.dataframe(
    pd.DataFrame(
        {
            "Score": [round(r.score, 3) for r in rows],
            "Decision": [
                decisions[r.donation_id].decision if r.donation_id in decisions else "" for r in rows
            ],
            "Decided by": [decided_by(decisions.get(r.donation_id)) for r in rows],
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

if not may_review(who.role):
    st.caption(f"The {who.role} role sees the queue but records no decisions.")
    st.stop()

labels = {r.donation_id: f"{r.donation_id} · {r.channel_id} · {r.donor} · score {r.score:.2f}" for r in rows}
with st.form("review", clear_on_submit=True):
    st.subheader("Record a decision")
    picked = st.selectbox("Donation", list(labels), format_func=labels.__getitem__, key="review_donation")
    verdict = st.radio("Decision", list(CHOICES), index=None, horizontal=True, key="review_decision")
    note = st.text_area("Note (optional)", max_chars=MAX_NOTE, key="review_note")
    submitted = st.form_submit_button("Record decision")
if submitted:
    if verdict is None or picked is None:
        st.error(CHOOSE)
    else:
        try:
            review = store.record(picked, CHOICES[verdict], reviewer=who.username, role=who.role, note=note)
        except ReviewError as exc:
            st.error(f"Not recorded: {exc}")
        else:
            message = f"Recorded: donation {review.donation_id} is {review.decision} (by {review.reviewer})"
            earlier = decisions.get(review.donation_id)
            if earlier is not None:
                message += (
                    f"; it supersedes {earlier.reviewer}'s “{earlier.decision}”, which stays in the log"
                )
            st.session_state[FLASH_KEY] = message
            st.rerun()

history = [r for r in store.history() if r.donation_id in labels]
if history:
    with st.expander(f"Decision history of these donations ({len(history)})"):
        st.dataframe(
            pd.DataFrame(
                {
                    "Decided at (UTC)": [f"{r.decided_at:%Y-%m-%d %H:%M:%S}" for r in reversed(history)],
                    "Donation": [r.donation_id for r in reversed(history)],
                    "Decision": [r.decision for r in reversed(history)],
                    "By": [f"{r.reviewer} ({r.role})" for r in reversed(history)],
                    "Note": [r.note or "" for r in reversed(history)],
                }
            ),
            hide_index=True,
        )
