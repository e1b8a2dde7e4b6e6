"""Subscriptions: subscribe (first month paid), gift a month, cancel, pause, resume, change tier, renew.

Writes that move money take an Idempotency-Key and commit the pending charge before the Payment
Service is asked. Changing a subscription needs its manage token (`Authorization: Bearer <token>`),
given once in the 201 answer that created it and kept only as a hash; reading one needs its
unguessable id, like a donation. The renewal job is run by an admin (or a scheduler holding the
admin token) through `POST /api/v1/subscriptions/renewals/run`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ingest_node.deps import AdminDep, PaymentsDep, SessionDep, SettingsDep
from ingest_node.models import utcnow
from ingest_node.money import gift_batches, payer_checks, payments
from ingest_node.money import subscriptions as subs
from ingest_node.money.models import MoneyCharge, Subscription
from ingest_node.money.schemas import (
    GiftSubscriptionIn,
    RandomGiftSubscriptionsIn,
    SubscriptionIn,
    SubscriptionOut,
    TierChangeIn,
)
from ingest_node.routes.money_http import IdempotencyKeyDep, open_once
from services import subscriptions as rules
from services.payments import PaymentClient
from services.settings import Settings
from services.subscriptions import Tier

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])
_Upgrade = tuple[Subscription, rules.Proration, MoneyCharge | None]  # what an upgrade opens
_bearer = HTTPBearer(auto_error=False)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def out(sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        subscription_id=sub.subscription_id,
        channel_id=sub.channel_id,
        subscriber_id=sub.subscriber_id,
        tier=sub.tier,
        pending_tier=sub.pending_tier,
        status=sub.status,
        auto_renew=sub.auto_renew,
        gifted_by=sub.gifted_by,
        period_start=sub.period_start,
        period_end=sub.period_end,
        streak_months=sub.streak_months,
        badge=rules.TIER_BADGE[Tier(sub.tier)],
    )


def _open(
    session: Session,
    settings: Settings,
    client: PaymentClient,
    key: str,
    body: BaseModel,
    *,
    channel_id: str,
    subscriber_id: str,
    tier: Tier,
    payment_token: str,
    gifted_by: str | None,
) -> JSONResponse:

    def opener(stored_key: str, digest: str) -> subs.Opened:
        if gifted_by is not None:
            payer_checks.refuse_banned_recipient(session, channel_id, subscriber_id)
        payer_checks.refuse_flagged_payer(session, settings, gifted_by or subscriber_id)
        return subs.open_subscription(
            session,
            key=stored_key,
            digest=digest,
            channel_id=channel_id,
            subscriber_id=subscriber_id,
            tier=tier,
            payment_token=payment_token,
            gifted_by=gifted_by,
        )

    try:
        opened = open_once(session, key, body, opener)
    except subs.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except subs.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except payer_checks.RecipientBanned as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except payer_checks.PayerFlagged as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    if isinstance(opened, JSONResponse):
        return opened
    sub, charge = opened.subscription, opened.charge
    created = {
        **out(sub).model_dump(mode="json"),
        "charge_id": charge.charge_id,
        "amount_minor": charge.amount_minor,
        "currency": charge.currency,
    }
    done = payments.submit(
        session,
        settings,
        client,
        charge,
        payment_token=payment_token,
        description=f"Subscription {tier} to {channel_id}",
        created=created,
    )
    answer = dict(done.body)
    if done.status == 201:
        # The token is shown once: the stored replay body never holds it.
        answer["manage_token"] = opened.manage_token
    return JSONResponse(answer, status_code=done.status)


@router.post("", status_code=status.HTTP_201_CREATED)
def subscribe(
    body: SubscriptionIn,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    return _open(
        session,
        settings,
        client,
        key,
        body,
        channel_id=body.channel_id,
        subscriber_id=body.subscriber_id,
        tier=body.tier,
        payment_token=body.payment_token,
        gifted_by=None,
    )


@router.post("/gift", status_code=status.HTTP_201_CREATED)
def gift_subscription(
    body: GiftSubscriptionIn,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    """One month for `recipient_id`, paid by `gifter_id`; it does not renew (the recipient may subscribe)."""
    if body.recipient_id == body.gifter_id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "a subscription cannot be gifted to oneself"
        )
    return _open(
        session,
        settings,
        client,
        key,
        body,
        channel_id=body.channel_id,
        subscriber_id=body.recipient_id,
        tier=body.tier,
        payment_token=body.payment_token,
        gifted_by=body.gifter_id,
    )


@router.post("/gift/random", status_code=status.HTTP_201_CREATED)
def gift_random_subscriptions(
    body: RandomGiftSubscriptionsIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    """A month each for `count` random viewers present in the channel, one charge for all of them;
    `subscription.gifted` per recipient once it settles. Refused (409, nothing charged) when fewer
    eligible viewers are present; a retry with the same key replays the same recipients."""
    cap = settings.gift_subs_max_recipients
    if body.count > cap:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"count must be between 1 and {cap}, not {body.count}"
        )

    def opener(stored_key: str, digest: str) -> gift_batches.Opened:
        payer_checks.refuse_flagged_payer(session, settings, body.gifter_id)
        return gift_batches.open_batch(
            session,
            key=stored_key,
            digest=digest,
            channel_id=body.channel_id,
            gifter_id=body.gifter_id,
            tier=body.tier,
            count=body.count,
            connected=_chat_users(request, body.channel_id),
            presence_minutes=settings.gift_subs_presence_minutes,
        )

    try:
        opened = open_once(session, key, body, opener)
    except subs.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except gift_batches.NotEnoughViewers as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except payer_checks.PayerFlagged as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    if isinstance(opened, JSONResponse):
        return opened
    charge = opened.charge
    created = {
        "charge_id": charge.charge_id,
        "channel_id": body.channel_id,
        "gifter_id": body.gifter_id,
        "tier": body.tier.value,
        "amount_minor": charge.amount_minor,
        "currency": charge.currency,
        "status": "pending",
        "subscriptions": [out(sub).model_dump(mode="json") for sub in opened.subscriptions],
    }
    done = payments.submit(
        session,
        settings,
        client,
        charge,
        payment_token=body.payment_token,
        description=f"{body.count} gifted {body.tier} subscriptions to {body.channel_id}",
        created=created,
    )
    return JSONResponse(done.body, status_code=done.status)


def _chat_users(request: Request, channel_id: str) -> list[str]:
    """Signed-in viewers connected to the channel's chat socket on this node."""
    rooms = request.app.state.chat.hub.rooms
    return [conn.user_id for conn in list(rooms.get(channel_id, ())) if conn.user_id]


@router.post("/renewals/run")
def run_renewals(
    request: Request, settings: SettingsDep, client: PaymentsDep, actor: AdminDep
) -> dict[str, Any]:
    report = payments.renew_due(request.app.state.sessions, settings, client)
    return asdict(report)


@router.get("/{subscription_id}")
def get_subscription(subscription_id: str, session: SessionDep) -> SubscriptionOut:
    sub = session.get(Subscription, subscription_id)
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"subscription {subscription_id!r} does not exist")
    return out(sub)


def _change(
    session: Session, subscription_id: str, credentials: HTTPAuthorizationCredentials | None, fn: Any
) -> SubscriptionOut:
    try:
        with session.begin():
            sub = subs.locked(session, subscription_id)
            subs.check_token(sub, credentials.credentials if credentials else None)
            fn(sub)
    except subs.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except subs.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except subs.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return out(sub)


@router.post("/{subscription_id}/cancel")
def cancel(
    subscription_id: str, session: SessionDep, settings: SettingsDep, auth: BearerDep
) -> SubscriptionOut:
    """Stops renewal; perks stay to the end of the paid period. A second cancel answers 409."""
    return _change(session, subscription_id, auth, lambda sub: subs.cancel(session, settings, sub, utcnow()))


@router.post("/{subscription_id}/pause")
def pause(
    subscription_id: str, session: SessionDep, settings: SettingsDep, auth: BearerDep
) -> SubscriptionOut:
    return _change(session, subscription_id, auth, lambda sub: subs.pause(session, settings, sub, utcnow()))


@router.post("/{subscription_id}/resume")
def resume(
    subscription_id: str, session: SessionDep, settings: SettingsDep, auth: BearerDep
) -> SubscriptionOut:
    """The time left when it was paused is given back: the period end moves by the pause's length."""
    return _change(session, subscription_id, auth, lambda sub: subs.resume(session, settings, sub, utcnow()))


@router.post("/{subscription_id}/tier")
def change_tier(
    subscription_id: str,
    body: TierChangeIn,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    key: IdempotencyKeyDep,
    auth: BearerDep,
) -> JSONResponse:
    """Upgrade: the prorated difference is charged now (201, the tier changes when it settles).
    Downgrade: scheduled for the next renewal, nothing charged or credited (200)."""

    def opener(stored_key: str, digest: str) -> _Upgrade | JSONResponse:
        sub = subs.locked(session, subscription_id)
        subs.check_token(sub, auth.credentials if auth else None)
        if body.tier == sub.tier:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"the subscription is already {sub.tier}"
            )
        if not rules.is_upgrade(Tier(sub.tier), body.tier):
            subs.downgrade(session, settings, sub, body.tier)
            return JSONResponse({**out(sub).model_dump(mode="json"), "charged_minor": 0}, status_code=200)
        if sub.payment_token is None:
            raise subs.Conflict("a gifted subscription has no payment method to charge; subscribe instead")
        proration, charge = subs.open_upgrade(
            session, settings, sub, body.tier, key=stored_key, digest=digest, now=utcnow()
        )
        return sub, proration, charge

    try:
        opened = open_once(session, key, body, opener, subscription_id=subscription_id)
    except subs.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except subs.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except subs.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if isinstance(opened, JSONResponse):
        return opened
    sub, proration, charge = opened
    answer: dict[str, Any] = {
        **out(sub).model_dump(mode="json"),
        "upgrade_to": body.tier.value,
        "credit_minor": proration.credit_minor,
        "new_for_rest_minor": proration.new_for_rest_minor,
        "charged_minor": proration.charge_minor,
        "currency": rules.SUBSCRIPTION_CURRENCY.value,
    }
    if charge is None:
        return JSONResponse(answer, status_code=200)
    answer["charge_id"] = charge.charge_id
    assert sub.payment_token is not None
    done = payments.submit(
        session,
        settings,
        client,
        charge,
        payment_token=sub.payment_token,
        description=f"Upgrade {subscription_id} to {body.tier}",
        created=answer,
    )
    return JSONResponse(done.body, status_code=done.status)
