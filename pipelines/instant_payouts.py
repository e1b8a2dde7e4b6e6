"""Instant payouts: a verified streamer's whole balance up to a day, paid on request between batches.

An instant payout is a one-line batch named `instant-<day>-<channel>` in the same batch store, so every
later weekly or monthly batch subtracts it like any earlier payout (the ledger rule of
`services.payouts`), tax counts it in the year's income, and `efir payouts publish` sends its event.
It is built and approved in one step by the finance user who asks for it, and audit-logged twice
(built, approved). The order rules of the batch store still hold: earlier drafts must be approved
first, and a day already covered by a later batch cannot be paid again.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from assets.payouts import shares
from services.money import SETTLEMENT_CURRENCY, format_minor
from services.payout_store import PayoutBatchError, approve, check_order, prior_payouts, write_batch
from services.payouts import (
    PAYOUT,
    PAYOUT_THRESHOLD_MINOR,
    PayoutLine,
    Period,
    ProfilesError,
    StreamerProfiles,
    accruals_by_payer,
    build_lines,
    line_errors,
)
from services.tax import TaxTables


def load_profiles(path: Path) -> StreamerProfiles:
    try:
        return StreamerProfiles.load(path)
    except ProfilesError as exc:
        raise PayoutBatchError(str(exc)) from exc


def pay_instantly(
    marts: Path, profiles: StreamerProfiles, channel_id: str, day: date, *, by: str
) -> PayoutLine:
    """Build, check, write and approve the channel's instant payout up to `day`; raise with the reason
    when it may not be paid (not verified, balance under the threshold, order rules, missing days)."""
    if not by.strip():
        raise PayoutBatchError("an instant payout needs the name of who asks for it")
    if not profiles.of(channel_id).verified:
        raise PayoutBatchError(f"{channel_id} is not verified: instant payouts are for verified streamers")
    period = Period.instant(day, channel_id)
    check_order(marts, period)
    tables = TaxTables.load()
    try:
        accrued = shares(marts, period)
    except dg.Failure as exc:
        raise PayoutBatchError(exc.description or str(exc)) from exc
    lines = build_lines(
        period, profiles, tables, accruals_by_payer(tables, accrued), prior_payouts(marts, period)
    )
    line = next((x for x in lines if x.channel_id == channel_id), None)
    if line is None or line.status != PAYOUT:
        balance = line.balance_minor if line else 0
        raise PayoutBatchError(
            f"{channel_id} has {format_minor(balance, SETTLEMENT_CURRENCY)} up to {day}: below the "
            f"{format_minor(PAYOUT_THRESHOLD_MINOR, SETTLEMENT_CURRENCY)} payout threshold, nothing to pay"
        )
    errors = line_errors([line.as_row()])
    if errors:
        raise PayoutBatchError(f"the instant payout does not add up, not paying: {errors}")
    write_batch(marts, period, [line], actor=by)
    approve(marts, period, by)
    return line
