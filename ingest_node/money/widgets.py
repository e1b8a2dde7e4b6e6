"""The state the on-stream widgets show: the goal bar, the top-donors list and the request queue.

Each widget's state is computed from the database whenever a socket is woken (or polls), and sent only
when it changed, so a reconnect simply gets the current state: nothing to replay, nothing to miss.
Progress and rankings count settled donations only (`succeeded`): a refunded or charged-back donation
drops out. Amounts in different currencies are never added up: the goal has one currency, the list
is per currency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.ingest.models import Broadcast
from ingest_node.models import Donation, DonationStatus, utcnow
from ingest_node.money import interactive
from ingest_node.money.challenges import live_broadcast
from ingest_node.money.interactive_models import RequestQueue, StreamGoal
from services.money import Currency

TOP_LIMIT = 10


class Period(StrEnum):
    STREAM = "stream"  # the current broadcast (or the last one, while offline)
    DAY = "day"  # since 00:00 UTC
    MONTH = "month"  # since the 1st, 00:00 UTC


class Widget(StrEnum):
    GOAL = "goal"
    TOP_DONORS = "top-donors"
    REQUESTS = "requests"


def goal_state(session: Session, channel_id: str) -> dict[str, Any]:
    goal = session.get(StreamGoal, channel_id, populate_existing=True)
    if goal is None:
        return {"goal": None}
    raised = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Donation.amount_minor), 0)).where(
            Donation.channel_id == channel_id,
            Donation.status == DonationStatus.SUCCEEDED,
            Donation.currency == goal.currency,
            # Made after the goal was set (the node's clock; settlement times are whole provider seconds).
            Donation.created_at >= goal.started_at,
        )
    ).scalar_one()
    return {
        "goal": {
            "title": goal.title,
            "target_minor": goal.target_minor,
            "raised_minor": int(raised),
            "currency": goal.currency,
            "started_at": goal.started_at.isoformat(),
        }
    }


def period_start(
    session: Session, channel_id: str, period: Period, now: datetime | None = None
) -> datetime | None:
    now = now or utcnow()
    if period is Period.DAY:
        return datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period is Period.MONTH:
        return datetime(now.year, now.month, 1, tzinfo=UTC)
    broadcast = (
        live_broadcast(session, channel_id)
        or session.execute(
            sa.select(Broadcast)
            .where(Broadcast.channel_id == channel_id)
            .order_by(Broadcast.started_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    )
    return broadcast.started_at if broadcast is not None else None


def top_donors(
    session: Session, channel_id: str, period: Period, currency: Currency, now: datetime | None = None
) -> dict[str, Any]:
    """Named donors summed by name; each anonymous donation is its own row with `name: null` (shown
    as anonymous, never merged with or named after anyone)."""
    start = period_start(session, channel_id, period, now)
    rows: list[dict[str, Any]] = []
    if start is not None:
        settled = sa.and_(
            Donation.channel_id == channel_id,
            Donation.status == DonationStatus.SUCCEEDED,
            Donation.currency == currency.value,
            Donation.settled_at >= start,
        )
        named = session.execute(
            sa.select(
                Donation.donor_name, sa.func.sum(Donation.amount_minor), sa.func.min(Donation.settled_at)
            )
            .where(settled, Donation.donor_name.is_not(None))
            .group_by(Donation.donor_name)
        ).all()
        anonymous = session.execute(
            sa.select(Donation.amount_minor, Donation.settled_at).where(
                settled, Donation.donor_name.is_(None)
            )
        ).all()
        ranked = [(int(total), first, name) for name, total, first in named]
        ranked += [(int(amount), at, None) for amount, at in anonymous]
        ranked.sort(key=lambda r: (-r[0], r[1]))
        rows = [{"name": name, "amount_minor": total} for total, _, name in ranked[:TOP_LIMIT]]
    return {"period": period.value, "currency": currency.value, "donors": rows}


def requests_state(session: Session, channel_id: str) -> dict[str, Any]:
    queue = session.get(RequestQueue, channel_id, populate_existing=True)
    playing = interactive.now_playing(session, channel_id)
    return {
        "open": bool(queue and queue.is_open),
        "currency": queue.currency if queue else None,
        "now_playing": interactive.public_request(playing) if playing else None,
        "queue": [interactive.public_request(r) for r in interactive.queued(session, channel_id)],
    }


def state(
    session: Session, channel_id: str, widget: Widget, period: Period, currency: Currency
) -> dict[str, Any]:
    if widget is Widget.GOAL:
        return goal_state(session, channel_id)
    if widget is Widget.TOP_DONORS:
        return top_donors(session, channel_id, period, currency)
    return requests_state(session, channel_id)
