"""Finance's page: review a period's payout batch, approve it (the same approval as `efir payouts approve`,
audit-logged, in the signed-in name) and export it as CSV for the bank; every channel's balance between
batches; the chargebacks. Everything is read from the batches and the marts."""

import pandas as pd
import streamlit as st

from dashboards.auth import allowed, principal
from services.finance_views import balances, chargebacks
from services.money import SETTLEMENT_CURRENCY, Currency, format_minor
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
from services.payouts import Period
from services.settings import Settings

NO_BALANCES = "No revenue or payouts yet"
NO_CHARGEBACKS = "No chargebacks"
EMPTY_STATE = "No payout batches yet — run `efir payouts run PERIOD` or the payout jobs in Dagster"


def rub(amount_minor: int) -> str:
    return format_minor(amount_minor, SETTLEMENT_CURRENCY)


# Only roles granted the page reach it through the navigation; checked again here in case of a direct run.
allowed("finance")

root = Settings().marts_root


def show_batches(periods: list[Period]) -> None:
    """Review, approve and export one period's batch."""
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
        # The approval is recorded in the name of whoever signed in, not a name typed into the page.
        if st.button(f"Approve batch as {principal().username}", key="approve", type="primary"):
            try:
                approval = approve(root, period, principal().username)
            except PayoutBatchError as exc:
                st.error(str(exc))
            else:
                st.success(
                    f"Approved by {approval.by}. Publish the payout events with "
                    f"`efir payouts publish {period.name} --by {approval.by}`."
                )
    elif not info.published:
        st.warning(f"Events not published yet: `efir payouts publish {period.name} --by NAME`")


def show_balances() -> None:
    rows = balances(root)
    if not rows:
        st.info(NO_BALANCES)
        return
    negative = [r for r in rows if r.balance_minor < 0]
    owed, below = st.columns(2)
    owed.metric("Owed to streamers", rub(sum(r.balance_minor for r in rows if r.balance_minor > 0)))
    below.metric("Negative balances", len(negative))
    st.dataframe(
        pd.DataFrame(
            {
                "Channel": [r.channel_id for r in rows],
                "Credited to date": [rub(r.credited_minor) for r in rows],
                "Paid (approved)": [rub(r.paid_minor) for r in rows],
                "Balance": [rub(r.balance_minor) for r in rows],
                "Revenue up to": [r.last_day.isoformat() if r.last_day else "" for r in rows],
            }
        ),
        hide_index=True,
    )


def show_chargebacks() -> None:
    rows = chargebacks(root)
    if not rows:
        st.info(NO_CHARGEBACKS)
        return
    st.metric("Taken back", rub(-sum(r.gross_rub_minor for r in rows)))
    st.dataframe(
        pd.DataFrame(
            {
                "When (UTC)": [f"{r.occurred_at:%Y-%m-%d %H:%M}" for r in rows],
                "Channel": [r.channel_id for r in rows],
                "What": [r.what for r in rows],
                "Reference": [r.reference for r in rows],
                "Amount": [format_minor(r.amount_minor, Currency(r.currency)) for r in rows],
                "In RUB": [rub(r.gross_rub_minor) for r in rows],
            }
        ),
        hide_index=True,
    )


st.title("Payouts")
batches, balance_tab, chargeback_tab = st.tabs(["Batches", "Balances", "Chargebacks"])
with batches:
    periods = batch_periods(root)
    if periods:
        show_batches(periods)
    else:
        st.info(EMPTY_STATE)
with balance_tab:
    show_balances()
with chargeback_tab:
    show_chargebacks()
