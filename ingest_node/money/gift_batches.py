"""Gift subscriptions to N random viewers: one charge pays N one-month subscriptions.

Who counts as present (documented in docs/contracts.md): signed-in viewers connected to the channel's
chat socket on this node, plus everyone who posted a visible chat message in the channel within the
last `EFIR_GIFT_SUBS_PRESENCE_MINUTES` (the database is shared, so chatters on every node count). The
gifter, users banned from the channel's chat and viewers who already hold a live subscription to it are
never chosen. Recipients are drawn once, when the purchase is recorded, and stored with its charge
(`subscription_batch_members`), so a retried request (same Idempotency-Key) replays the same
recipients and never charges again. Migration: `0002_money_core`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest_node.chat.models import ChatMessage, MessageStatus
from ingest_node.models import Base, Channel, utcnow
from ingest_node.money import charges, payer_checks
from ingest_node.money import subscriptions as subs
from ingest_node.money.models import ChargeKind, MoneyCharge, Subscription
from services import subscriptions as rules
from services.subscriptions import Tier


class SubscriptionBatchMember(Base):
    """One recipient subscription of a batch charge (`money_charges.kind = 'sub_gift_batch'`)."""

    __tablename__ = "subscription_batch_members"
    charge_id: Mapped[str] = mapped_column(sa.ForeignKey("money_charges.charge_id"), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        sa.ForeignKey("subscriptions.subscription_id"), primary_key=True
    )


class NotEnoughViewers(Exception):
    """Fewer eligible viewers are present than the purchase asks for (nothing is charged)."""


@dataclass(frozen=True)
class Opened:
    charge: MoneyCharge
    subscriptions: list[Subscription]


def present_viewers(
    session: Session, channel_id: str, connected: Iterable[str], now: datetime, minutes: int
) -> set[str]:
    """Signed-in chat sockets on this node plus the channel's recent visible chatters (all nodes)."""
    since = now - timedelta(minutes=minutes)
    chatters = session.execute(
        sa.select(ChatMessage.user_id)
        .where(
            ChatMessage.channel_id == channel_id,
            ChatMessage.status == MessageStatus.VISIBLE,
            ChatMessage.created_at >= since,
        )
        .distinct()
    ).scalars()
    return {*connected, *chatters}


def eligible(session: Session, channel_id: str, gifter_id: str, present: set[str]) -> list[str]:
    """The present viewers who may receive a gift: not the gifter, not banned, not already subscribed."""
    candidates = present - {gifter_id}
    if not candidates:
        return []
    subscribed = set(
        session.execute(
            sa.select(Subscription.subscriber_id).where(
                Subscription.channel_id == channel_id,
                Subscription.subscriber_id.in_(candidates),
                Subscription.status.in_([s.value for s in subs.LIVE]),
            )
        ).scalars()
    )
    banned = payer_checks.banned_among(session, channel_id, candidates)
    return sorted(candidates - subscribed - banned)


def open_batch(
    session: Session,
    *,
    key: str,
    digest: str,
    channel_id: str,
    gifter_id: str,
    tier: Tier,
    count: int,
    connected: Iterable[str],
    presence_minutes: int,
) -> Opened:
    """Draw `count` recipients, create their pending gifted subscriptions and one charge for all of them
    (caller's transaction); refuses (NotEnoughViewers) rather than charging for fewer."""
    if session.get(Channel, channel_id) is None:
        raise subs.NotFound(f"channel {channel_id!r} does not exist")
    pool = eligible(
        session,
        channel_id,
        gifter_id,
        present_viewers(session, channel_id, connected, utcnow(), presence_minutes),
    )
    if len(pool) < count:
        raise NotEnoughViewers(
            f"only {len(pool)} eligible viewers are present in {channel_id!r} (not the gifter, not banned, "
            f"not already subscribed); {count} were asked for. Nothing was charged"
        )
    chosen = secrets.SystemRandom().sample(pool, count)
    created = [subs.new_subscription(session, channel_id, user, tier, gifted_by=gifter_id) for user in chosen]
    charge = charges.new_charge(
        session,
        kind=ChargeKind.SUB_GIFT_BATCH,
        channel_id=channel_id,
        amount_minor=rules.TIER_PRICE_MINOR[tier] * count,
        currency=rules.SUBSCRIPTION_CURRENCY,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
        tier=tier,
    )
    session.add_all(
        SubscriptionBatchMember(charge_id=charge.charge_id, subscription_id=sub.subscription_id)
        for sub in created
    )
    return Opened(charge, created)


def members(session: Session, charge_id: str) -> list[str]:
    """The subscriptions a batch charge paid for, in a stable order."""
    return list(
        session.execute(
            sa.select(SubscriptionBatchMember.subscription_id)
            .where(SubscriptionBatchMember.charge_id == charge_id)
            .order_by(SubscriptionBatchMember.subscription_id)
        ).scalars()
    )
