"""Virtual gifts on the node: a purchase is a pending gift plus its charge; `gift.sent` when it settles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.models import Channel
from ingest_node.money import charges
from ingest_node.money.models import ChargeKind, ChargeStatus, GiftPurchase, MoneyCharge
from services import events
from services import gifts as catalogue
from services.ids import new_id
from services.settings import Settings


@dataclass(frozen=True)
class Opened:
    gift: GiftPurchase
    charge: MoneyCharge


def open_gift(
    session: Session,
    *,
    key: str,
    digest: str,
    channel_id: str,
    item: catalogue.GiftItem,
    quantity: int,
    sender_id: str | None,
    sender_name: str | None,
    recipient_id: str | None,
    message: str,
) -> Opened:
    if session.get(Channel, channel_id) is None:
        raise LookupError(f"channel {channel_id!r} does not exist")
    amount = catalogue.total_minor(item, quantity)
    gift = GiftPurchase(
        gift_id=new_id(),
        channel_id=channel_id,
        item_id=item.id,
        quantity=quantity,
        amount_minor=amount,
        currency=item.currency.value,
        sender_id=sender_id,
        sender_name=sender_name,
        recipient_id=recipient_id,
        message=message,
        status=ChargeStatus.PENDING,
    )
    session.add(gift)
    session.flush()
    charge = charges.new_charge(
        session,
        kind=ChargeKind.GIFT,
        channel_id=channel_id,
        amount_minor=amount,
        currency=item.currency,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
        gift_id=gift.gift_id,
    )
    return Opened(gift, charge)


def on_settled(session: Session, settings: Settings, charge: MoneyCharge, settled_at: datetime) -> None:
    gift = _gift(session, charge)
    gift.status, gift.settled_at = ChargeStatus.SUCCEEDED, settled_at
    item = catalogue.item(gift.item_id)
    assert charge.provider_payment_id is not None
    sent = events.GiftSent(
        gift_id=gift.gift_id,
        item_id=item.id,
        item_name=item.name_en,
        rarity=item.rarity,
        kind=item.kind,
        quantity=gift.quantity,
        amount_minor=gift.amount_minor,
        currency=item.currency,
        sender_id=gift.sender_id,
        sender_name=gift.sender_name,
        recipient_id=gift.recipient_id,
        message=gift.message,
        payment_id=charge.provider_payment_id,
        settled_at=settled_at,
    )
    charges.emit(session, settings, sent, channel_id=gift.channel_id, user_id=gift.sender_id)


def on_status(session: Session, charge: MoneyCharge, status: ChargeStatus) -> None:
    """A failed, refunded or charged-back gift payment: the gift leaves the collection."""
    _gift(session, charge).status = status


def reverse(session: Session, charge: MoneyCharge, status: ChargeStatus) -> GiftPurchase:
    """A settled gift refunded or charged back: it leaves the collection (reversals.py emits the event)."""
    gift = _gift(session, charge)
    gift.status = status
    return gift


def collection(session: Session, user_id: str) -> list[dict[str, Any]]:
    """What a viewer holds: settled gifts received (and bought for nobody in particular), by item."""
    rows = session.execute(
        sa.select(GiftPurchase.item_id, sa.func.sum(GiftPurchase.quantity))
        .where(
            GiftPurchase.status == ChargeStatus.SUCCEEDED,
            sa.or_(
                GiftPurchase.recipient_id == user_id,
                sa.and_(GiftPurchase.sender_id == user_id, GiftPurchase.recipient_id.is_(None)),
            ),
        )
        .group_by(GiftPurchase.item_id)
        .order_by(GiftPurchase.item_id)
    ).all()
    return [
        {"item": catalogue.item(item_id).model_dump(mode="json"), "quantity": int(total)}
        for item_id, total in rows
    ]


def _gift(session: Session, charge: MoneyCharge) -> GiftPurchase:
    assert charge.gift_id is not None
    return session.execute(
        sa.select(GiftPurchase).where(GiftPurchase.gift_id == charge.gift_id).with_for_update()
    ).scalar_one()
