"""Virtual gifts: the catalogue, sending a gift (a paid action, `gift.sent` once it settles), a viewer's
collection. Anyone may send (like a donation); the price comes from the catalogue, never the client.
A collection is public, like a viewer's badges.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from ingest_node.deps import PaymentsDep, SessionDep, SettingsDep
from ingest_node.money import gifts as node_gifts
from ingest_node.money import payer_checks, payments
from ingest_node.money.models import GiftPurchase
from ingest_node.money.schemas import GiftIn, GiftOut
from ingest_node.routes.money_http import IdempotencyKeyDep, open_once
from services import gifts as catalogue

router = APIRouter(prefix="/api/v1/gifts", tags=["gifts"])


@router.get("/catalogue")
def get_catalogue() -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in catalogue.catalogue().values()]


@router.post("", status_code=status.HTTP_201_CREATED)
def send_gift(
    body: GiftIn, session: SessionDep, settings: SettingsDep, client: PaymentsDep, key: IdempotencyKeyDep
) -> JSONResponse:
    try:
        item = catalogue.item(body.item_id)
    except catalogue.UnknownGift as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None

    def opener(stored_key: str, digest: str) -> node_gifts.Opened:
        payer_checks.refuse_banned_recipient(session, body.channel_id, body.recipient_id)
        payer_checks.refuse_flagged_payer(session, settings, body.sender_id)
        return node_gifts.open_gift(
            session,
            key=stored_key,
            digest=digest,
            channel_id=body.channel_id,
            item=item,
            quantity=body.quantity,
            sender_id=body.sender_id,
            sender_name=body.sender_name,
            recipient_id=body.recipient_id,
            message=body.message,
        )

    try:
        opened = open_once(session, key, body, opener)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except payer_checks.RecipientBanned as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except payer_checks.PayerFlagged as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    if isinstance(opened, JSONResponse):
        return opened
    gift, charge = opened.gift, opened.charge
    created = {**_out(gift).model_dump(mode="json"), "charge_id": charge.charge_id}
    done = payments.submit(
        session,
        settings,
        client,
        charge,
        payment_token=body.payment_token,
        description=f"Gift {item.id} x{body.quantity} to {body.channel_id}",
        created=created,
    )
    return JSONResponse(done.body, status_code=done.status)


@router.get("/collection/{user_id}")
def collection(user_id: str, session: SessionDep) -> dict[str, Any]:
    return {"user_id": user_id, "items": node_gifts.collection(session, user_id)}


@router.get("/{gift_id}")
def get_gift(gift_id: str, session: SessionDep) -> GiftOut:
    gift = session.get(GiftPurchase, gift_id)
    if gift is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"gift {gift_id!r} does not exist")
    return _out(gift)


def _out(gift: GiftPurchase) -> GiftOut:
    return GiftOut.model_validate(gift, from_attributes=True)
