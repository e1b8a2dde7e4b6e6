"""What finance watches between batches: every channel's ledger balance now, and the chargebacks.

A balance here is the same ledger `services.payouts` pays from (streamer shares credited to date − what
approved batches paid), so finance sees before the period closes who will be paid, who carries a
negative balance after a chargeback, and what a draft batch is about to change. Read-only, from the
marts; amounts in RUB kopecks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from services import events
from services.marts import (
    DONATIONS_MART,
    GIFT_PAYMENTS_MART,
    INTERACTIVE_PAYMENTS_MART,
    REVENUE_MART,
    SUBSCRIPTION_PAYMENTS_MART,
    mart_files,
)
from services.payout_store import APPROVED, BATCH_PARQUET, batch_dir, batch_info, batch_periods
from services.payouts import PAYOUT


@dataclass(frozen=True, slots=True)
class Balance:
    channel_id: str
    credited_minor: int  # streamer shares to date, reversals already negative
    paid_minor: int  # gross of approved payouts
    balance_minor: int
    last_day: date | None  # the newest revenue day counted


@dataclass(frozen=True, slots=True)
class Chargeback:
    occurred_at: datetime
    channel_id: str
    what: str  # donation, subscription, gift, boost or request
    reference: str  # that payment's id: the donation, subscription, gift, boost or request id
    amount_minor: int
    currency: str
    gross_rub_minor: int  # negative: what the chargeback took back


def balances(marts: Path) -> list[Balance]:
    """Every channel with revenue or a payout, by name."""
    credited: dict[str, tuple[int, date | None]] = {}
    revenue = mart_files(marts, REVENUE_MART)
    con = duckdb.connect()
    try:
        if revenue:
            for channel, share, last in con.sql(
                "SELECT channel_id, sum(streamer_share_minor)::BIGINT, max(day) "
                "FROM read_parquet($files, hive_partitioning = false) GROUP BY channel_id",
                params={"files": revenue},
            ).fetchall():
                credited[channel] = (share, last)
        approved = [
            str(batch_dir(marts, p) / BATCH_PARQUET)
            for p in batch_periods(marts)
            if batch_info(marts, p).status == APPROVED
        ]
        paid: dict[str, int] = {}
        if approved:
            paid = dict(
                con.sql(
                    "SELECT channel_id, sum(gross_minor)::BIGINT FROM read_parquet($files) "
                    "WHERE status = $payout GROUP BY channel_id",
                    params={"files": approved, "payout": PAYOUT},
                ).fetchall()
            )
    finally:
        con.close()
    out = []
    for channel in sorted(credited.keys() | paid.keys()):
        share, last = credited.get(channel, (0, None))
        out.append(Balance(channel, share, paid.get(channel, 0), share - paid.get(channel, 0), last))
    return out


# Every money mart with bank disputes: the chargeback event type and the column naming what was paid for.
# (Sponsorships are invoices paid by bank transfer: they are refunded, never charged back.)
_CHARGEBACK_SOURCES: tuple[tuple[str, str, str, str], ...] = (
    (DONATIONS_MART, events.DonationChargedBack.event_type, "donation", "donation_id"),
    (
        SUBSCRIPTION_PAYMENTS_MART,
        events.SubscriptionChargedBack.event_type,
        "subscription",
        "subscription_id",
    ),
    (GIFT_PAYMENTS_MART, events.GiftChargedBack.event_type, "gift", "gift_id"),
    (INTERACTIVE_PAYMENTS_MART, events.BoostChargedBack.event_type, "boost", "boost_id"),
    (INTERACTIVE_PAYMENTS_MART, events.RequestChargedBack.event_type, "request", "request_id"),
)


def chargebacks(marts: Path, limit: int = 200) -> list[Chargeback]:
    """The newest chargebacks of every kind of payment across all channels."""
    found: list[Chargeback] = []
    con = duckdb.connect()
    try:
        for mart, event_type, what, id_column in _CHARGEBACK_SOURCES:
            files = mart_files(marts, mart)
            if not files:
                continue
            rows = con.sql(
                f"SELECT occurred_at, channel_id, $what, {id_column}, amount_minor, currency, "
                "gross_rub_minor "
                "FROM read_parquet($files, hive_partitioning = false, union_by_name = true) "
                "WHERE event_type = $type ORDER BY occurred_at DESC, event_id DESC LIMIT $limit",
                params={"files": files, "type": event_type, "what": what, "limit": limit},
            ).fetchall()
            found.extend(Chargeback(*row) for row in rows)
    finally:
        con.close()
    found.sort(key=lambda c: c.occurred_at, reverse=True)
    return found[:limit]
