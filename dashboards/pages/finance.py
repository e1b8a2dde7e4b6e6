"""Finance's page: review a period's payout batch, approve it (the same approval as `efir payouts approve`,
audit-logged) and export it as CSV for the bank. Everything is read from the batches in the marts."""

import pandas as pd
import streamlit as st

from services.money import SETTLEMENT_CURRENCY, format_minor
from services.payout_store import (
    DRAFT,
    PayoutBatchError,
    approve,
    batch_info,
    batch_periods,
    batch_totals,
    read_batch,
    read_csv_export,
)
from services.settings import Settings

EMPTY_STATE = "No payout batches yet — run `efir payouts run PERIOD` or the payout jobs in Dagster"


def rub(amount_minor: int) -> str:
    return format_minor(amount_minor, SETTLEMENT_CURRENCY)


root = Settings().marts_root

st.title("Payouts")
periods = batch_periods(root)
if not periods:
    st.info(EMPTY_STATE)
    st.stop()

names = [p.name for p in reversed(periods)]  # newest first
chosen = st.selectbox("Period", names, key="period")
period = next(p for p in periods if p.name == chosen)
info = batch_info(root, period)
table = read_batch(root, period)
totals = batch_totals(table)

status = info.status + (
    f" by {info.approval.by} at {info.approval.at:%Y-%m-%d %H:%M} UTC" if info.approval else ""
)
st.caption(f"{period.schedule.value} batch {period.start} – {period.end}: **{status}**")
paid, tax, net, carried = st.columns(4)
paid.metric("Gross paid", rub(totals["gross_minor"]))
tax.metric("Tax withheld", rub(totals["tax_minor"]))
net.metric("Net to streamers", rub(totals["net_minor"]))
carried.metric("Carried over", rub(totals["carried_minor"]))

rows = table.to_pylist()
st.dataframe(
    pd.DataFrame(
        {
            "Channel": [r["channel_id"] for r in rows],
            "Status": [r["status"] for r in rows],
            "Tax status": [r["tax_status"] for r in rows],
            "Method": [r["payout_method"] for r in rows],
            "Carried in": [rub(r["carried_in_minor"]) for r in rows],
            "Period share": [rub(r["period_share_minor"]) for r in rows],
            "Balance": [rub(r["balance_minor"]) for r in rows],
            "Gross": [rub(r["gross_minor"]) for r in rows],
            "Tax": [rub(r["tax_minor"]) for r in rows],
            "Net": [rub(r["net_minor"]) for r in rows],
            "Carried out": [rub(r["carried_out_minor"]) for r in rows],
        }
    ),
    hide_index=True,
)

st.download_button(
    "Export CSV",
    data=read_csv_export(root, period),
    file_name=f"payouts-{period.name}.csv",
    mime="text/csv",
    key="export",
)

if info.status == DRAFT:
    approver = st.text_input("Approved by", key="approver")
    if st.button("Approve batch", key="approve", type="primary"):
        try:
            approval = approve(root, period, approver)
        except PayoutBatchError as exc:
            st.error(str(exc))
        else:
            st.success(
                f"Approved by {approval.by}. Publish the payout events with "
                f"`efir payouts publish {period.name} --by {approval.by}`."
            )
elif not info.published:
    st.warning(f"Events not published yet: `efir payouts publish {period.name} --by NAME`")
