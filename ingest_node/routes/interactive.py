"""Interactive donations and the streamer's widget settings over HTTP.

Who may call what:
- Viewers (anyone, like a donation): pay for a boosted message or a request (`Idempotency-Key`
  required; the same key replays the stored answer, another body with it is refused), read the queue,
  challenges, moments, the goal and the top donors.
- The streamer: a chat token (`Authorization: Bearer`) of a user whose role in the channel is `owner`,
  or the admin token. Any other valid chat token is refused (403); a missing or bad token is 401.
  Opening/closing the queue, play/skip/remove/reorder, challenges, the goal and alert settings are
  theirs, each audit-logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from sqlalchemy.orm import Session

from ingest_node.audit import audit
from ingest_node.deps import PaymentsDep, SessionDep, SettingsDep, StreamerDep
from ingest_node.models import Channel, utcnow
from ingest_node.money import alert_settings, challenges, interactive, payments, widgets
from ingest_node.money.alerts import AlertHub
from ingest_node.money.interactive import Refused
from ingest_node.money.interactive_models import (
    AlertSettingsRow,
    BoostedMessage,
    Challenge,
    MediaRequest,
    RequestStatus,
    StreamGoal,
    StreamMoment,
)
from ingest_node.money.models import MoneyCharge
from ingest_node.money.schemas import ChannelRef, Token, UserId
from ingest_node.routes.money_http import IdempotencyKeyDep, open_once
from services.chat.automod import Rule
from services.money import Currency
from services.payments import PaymentRefused, PaymentServiceError
from services.settings import Settings

router = APIRouter(tags=["interactive"])
Amount = Annotated[StrictInt, Field(ge=1, le=10**12, description="integer minor units")]
Title = Annotated[StrictStr, Field(min_length=1, max_length=200)]


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(exc.status, exc.detail)


def _wake(request: Request) -> None:
    hub: AlertHub = request.app.state.alert_hub
    hub.notify()


# ---- paid actions: shared idempotent creation --------------------------------------------------------


def _paid(
    session: Session,
    settings: Settings,
    client: Any,
    key: str,
    body: BaseModel,
    opener: Callable[[str, str], interactive.Opened],
    describe: Callable[[interactive.Opened], tuple[dict[str, Any], str]],
    payment_token: str,
) -> JSONResponse:
    """Commit the entity and its pending charge under the key, then ask the provider (payments.submit)."""
    try:
        opened = open_once(session, key, body, opener)
    except Refused as exc:
        raise _refused(exc) from None
    if isinstance(opened, JSONResponse):
        return opened
    created, description = describe(opened)
    done = payments.submit(
        session,
        settings,
        client,
        opened.charge,
        payment_token=payment_token,
        description=description,
        created=created,
    )
    return JSONResponse(done.body, status_code=done.status)


# ---- boosted chat messages ---------------------------------------------------------------------------


class BoostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    amount_minor: Amount
    currency: Currency
    message: Annotated[StrictStr, Field(min_length=1, max_length=300)]
    display_name: Annotated[StrictStr | None, Field(max_length=100)] = None
    user_id: UserId | None = None
    payment_token: Token


@router.post("/api/v1/boosts", status_code=status.HTTP_201_CREATED)
def boost_message(
    body: BoostIn, session: SessionDep, settings: SettingsDep, client: PaymentsDep, key: IdempotencyKeyDep
) -> JSONResponse:
    """Pay to pin a chat message; its words are screened by the channel's automod BEFORE charging."""
    with session.begin():
        if session.get(Channel, body.channel_id) is not None:
            automod = alert_settings.channel_automod(session, body.channel_id)
            verdict = automod.evaluate(body.message, user="boost", now=0.0, skip=frozenset({Rule.REPEAT}))
            if verdict is not None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"the message was refused by the channel's moderation ({verdict.rule}); "
                    "nothing was charged",
                )

    def opener(k: str, d: str) -> interactive.Opened:
        return interactive.open_boost(
            session,
            settings,
            key=k,
            digest=d,
            channel_id=body.channel_id,
            amount_minor=body.amount_minor,
            currency=body.currency,
            message=body.message,
            display_name=body.display_name,
            user_id=body.user_id,
        )

    def describe(o: interactive.Opened) -> tuple[dict[str, Any], str]:
        created = {
            "boost_id": o.entity_id,
            "charge_id": o.charge.charge_id,
            "channel_id": body.channel_id,
            "amount_minor": body.amount_minor,
            "currency": body.currency.value,
            "status": "pending",
            "pin_seconds": settings.boost_pin_seconds,
        }
        return created, f"Boosted message in {body.channel_id}"

    return _paid(session, settings, client, key, body, opener, describe, body.payment_token)


@router.get("/api/v1/boosts/{boost_id}")
def get_boost(boost_id: str, session: SessionDep) -> dict[str, Any]:
    boost = session.get(BoostedMessage, boost_id)
    if boost is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"boost {boost_id!r} does not exist")
    return {
        "boost_id": boost.boost_id,
        "channel_id": boost.channel_id,
        "amount_minor": boost.amount_minor,
        "currency": boost.currency,
        "status": boost.status,
        "pin_id": boost.pin_id,
        "pin_seconds": boost.pin_seconds,
    }


# ---- the request queue -------------------------------------------------------------------------------


class QueueSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: StrictBool
    currency: Currency = Currency.RUB
    min_amount_minor: Amount


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel_id: ChannelRef
    kind: Annotated[StrictStr, Field(pattern=r"^(music|game)$")]
    title: Title
    url: Annotated[StrictStr | None, Field(max_length=500, pattern=r"^https?://\S+$")] = None
    requester_id: UserId | None = None
    requester_name: Annotated[StrictStr | None, Field(max_length=100)] = None
    amount_minor: Amount
    currency: Currency
    payment_token: Token


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refund: StrictBool = False


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_ids: Annotated[list[Annotated[StrictStr, Field(max_length=64)]], Field(max_length=500)]


@router.put("/api/v1/channels/{channel_id}/requests/settings")
def configure_requests(
    channel_id: str,
    body: QueueSettingsIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: StreamerDep,
) -> dict[str, Any]:
    try:
        with session.begin():
            interactive.configure_queue(
                session,
                settings,
                channel_id,
                is_open=body.open,
                currency=body.currency,
                min_amount_minor=body.min_amount_minor,
                actor=actor,
            )
            state = widgets.requests_state(session, channel_id)
    except Refused as exc:
        raise _refused(exc) from None
    _wake(request)
    return state


@router.post("/api/v1/requests", status_code=status.HTTP_201_CREATED)
def submit_request(
    body: RequestIn, session: SessionDep, settings: SettingsDep, client: PaymentsDep, key: IdempotencyKeyDep
) -> JSONResponse:
    def opener(k: str, d: str) -> interactive.Opened:
        return interactive.open_request(
            session,
            settings,
            key=k,
            digest=d,
            channel_id=body.channel_id,
            kind=body.kind,
            title=body.title,
            url=body.url,
            requester_id=body.requester_id,
            requester_name=body.requester_name,
            amount_minor=body.amount_minor,
            currency=body.currency,
        )

    def describe(o: interactive.Opened) -> tuple[dict[str, Any], str]:
        created = {
            "request_id": o.entity_id,
            "charge_id": o.charge.charge_id,
            "channel_id": body.channel_id,
            "amount_minor": body.amount_minor,
            "currency": body.currency.value,
            "status": "pending",
        }
        return created, f"{body.kind.capitalize()} request in {body.channel_id}"

    return _paid(session, settings, client, key, body, opener, describe, body.payment_token)


@router.get("/api/v1/channels/{channel_id}/requests")
def list_requests(channel_id: str, session: SessionDep) -> dict[str, Any]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    return widgets.requests_state(session, channel_id)


@router.get("/api/v1/requests/{request_id}")
def get_request(request_id: str, session: SessionDep) -> dict[str, Any]:
    found = session.get(MediaRequest, request_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"request {request_id!r} does not exist")
    return {**interactive.public_request(found), "channel_id": found.channel_id}


@router.post("/api/v1/channels/{channel_id}/requests/{request_id}/play")
def play_request(
    channel_id: str,
    request_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: StreamerDep,
) -> dict[str, Any]:
    try:
        with session.begin():
            found = interactive.locked_request(session, channel_id, request_id)
            interactive.finish(session, settings, found, RequestStatus.PLAYED, actor=actor)
            answer = interactive.public_request(found)
    except Refused as exc:
        raise _refused(exc) from None
    _wake(request)
    return answer


def _withdraw_refund(session: Session, channel_id: str, request_id: str) -> None:
    """The provider did not take the refund: the request stays queued with its money."""
    with session.begin():
        found = interactive.locked_request(session, channel_id, request_id)
        if found.status != RequestStatus.QUEUED:
            return
        if found.refund == "requested":
            found.refund = None
        elif found.refund == "refunded":  # it did refund (its answer was lost): the webhook came first
            found.status, found.finished_at = RequestStatus.REVERSED, utcnow()


def _skip_or_remove(
    target: RequestStatus,
    channel_id: str,
    request_id: str,
    body: FinishIn,
    request: Request,
    session: Session,
    settings: Settings,
    client: Any,
    actor: str,
) -> dict[str, Any]:
    """With `refund`, the provider is asked first: if it refuses or is down, nothing changes (502/409).

    The refund is marked `requested` before the provider is asked, because its webhook may be handled
    before this request finishes the skip: marked, the webhook leaves the request for the skip to end
    (one `request.refunded`, the request `skipped`), instead of reversing it as an outside refund."""
    try:
        with session.begin():
            found = interactive.locked_request(session, channel_id, request_id)
            if found.status != RequestStatus.QUEUED:
                raise Refused(409, f"request {request_id} is {found.status}, not queued")
            if found.refund is not None:
                raise Refused(409, f"a refund of request {request_id} is already in progress")
            charge = session.get(MoneyCharge, found.charge_id)
            assert charge is not None and charge.provider_payment_id is not None
            payment_id = charge.provider_payment_id
            if body.refund:
                found.refund = "requested"
        if body.refund:
            try:
                client.refund(payment_id)
            except PaymentServiceError:
                _withdraw_refund(session, channel_id, request_id)
                raise Refused(
                    502, "the payment service is unavailable; the request was left in the queue"
                ) from None
            except PaymentRefused as exc:
                _withdraw_refund(session, channel_id, request_id)
                raise Refused(
                    409, f"the refund was refused, the request was left in the queue: {exc}"
                ) from None
        with session.begin():
            found = interactive.locked_request(session, channel_id, request_id)
            interactive.finish(session, settings, found, target, actor=actor, refund=body.refund)
            answer = interactive.public_request(found)
    except Refused as exc:
        raise _refused(exc) from None
    _wake(request)
    return answer


@router.post("/api/v1/channels/{channel_id}/requests/{request_id}/skip")
def skip_request(
    channel_id: str,
    request_id: str,
    body: FinishIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    actor: StreamerDep,
) -> dict[str, Any]:
    return _skip_or_remove(
        RequestStatus.SKIPPED, channel_id, request_id, body, request, session, settings, client, actor
    )


@router.post("/api/v1/channels/{channel_id}/requests/{request_id}/remove")
def remove_request(
    channel_id: str,
    request_id: str,
    body: FinishIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    client: PaymentsDep,
    actor: StreamerDep,
) -> dict[str, Any]:
    return _skip_or_remove(
        RequestStatus.REMOVED, channel_id, request_id, body, request, session, settings, client, actor
    )


@router.put("/api/v1/channels/{channel_id}/requests/order")
def reorder_requests(
    channel_id: str, body: OrderIn, request: Request, session: SessionDep, actor: StreamerDep
) -> dict[str, Any]:
    try:
        with session.begin():
            interactive.reorder(session, channel_id, body.request_ids, actor=actor)
            state = widgets.requests_state(session, channel_id)
    except Refused as exc:
        raise _refused(exc) from None
    _wake(request)
    return state


# ---- challenges and moments --------------------------------------------------------------------------


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    target_minor: Amount
    currency: Currency


@router.post("/api/v1/channels/{channel_id}/challenges", status_code=status.HTTP_201_CREATED)
def create_challenge(
    channel_id: str, body: ChallengeIn, session: SessionDep, settings: SettingsDep, actor: StreamerDep
) -> dict[str, Any]:
    try:
        with session.begin():
            created = challenges.create(
                session,
                settings,
                channel_id=channel_id,
                title=body.title,
                target_minor=body.target_minor,
                currency=body.currency,
                actor=actor,
            )
            return challenges.public(created)
    except Refused as exc:
        raise _refused(exc) from None


@router.get("/api/v1/channels/{channel_id}/challenges")
def list_challenges(channel_id: str, session: SessionDep) -> list[dict[str, Any]]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    rows = session.query(Challenge).filter(Challenge.channel_id == channel_id).order_by(Challenge.created_at)
    return [challenges.public(c) for c in rows]


@router.get("/api/v1/challenges/{challenge_id}")
def get_challenge(challenge_id: str, session: SessionDep) -> dict[str, Any]:
    found = session.get(Challenge, challenge_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"challenge {challenge_id!r} does not exist")
    return challenges.public(found)


@router.post("/api/v1/channels/{channel_id}/challenges/{challenge_id}/close")
def close_challenge(
    channel_id: str, challenge_id: str, session: SessionDep, actor: StreamerDep
) -> dict[str, Any]:
    try:
        with session.begin():
            return challenges.public(challenges.close(session, channel_id, challenge_id, actor=actor))
    except Refused as exc:
        raise _refused(exc) from None


@router.get("/api/v1/channels/{channel_id}/moments")
def list_moments(channel_id: str, session: SessionDep) -> list[dict[str, Any]]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    rows = (
        session.query(StreamMoment)
        .filter(StreamMoment.channel_id == channel_id)
        .order_by(StreamMoment.created_at)
    )
    return [
        {
            "moment_id": m.moment_id,
            "broadcast_id": m.broadcast_id,
            "donation_id": m.donation_id,
            "offset_ms": m.offset_ms,
            "label": m.label,
        }
        for m in rows
    ]


# ---- the goal bar and top donors ---------------------------------------------------------------------


class GoalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    target_minor: Amount
    currency: Currency


@router.put("/api/v1/channels/{channel_id}/goal")
def set_goal(
    channel_id: str, body: GoalIn, request: Request, session: SessionDep, actor: StreamerDep
) -> dict[str, Any]:
    """A new goal counts donations made from now on, once settled (it replaces the previous one)."""
    with session.begin():
        goal = session.get(StreamGoal, channel_id)
        if goal is None:
            goal = StreamGoal(channel_id=channel_id)
            session.add(goal)
        goal.title, goal.target_minor, goal.currency = body.title, body.target_minor, body.currency.value
        goal.started_at = utcnow()
        audit(
            session,
            actor=actor,
            action="goal.set",
            entity=f"channel:{channel_id}",
            currency=body.currency.value,
        )
        session.flush()
        state = widgets.goal_state(session, channel_id)
    _wake(request)
    return state


@router.delete("/api/v1/channels/{channel_id}/goal", status_code=status.HTTP_204_NO_CONTENT)
def clear_goal(channel_id: str, request: Request, session: SessionDep, actor: StreamerDep) -> None:
    with session.begin():
        goal = session.get(StreamGoal, channel_id)
        if goal is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "this channel has no goal")
        session.delete(goal)
        audit(session, actor=actor, action="goal.cleared", entity=f"channel:{channel_id}")
    _wake(request)


@router.get("/api/v1/channels/{channel_id}/goal")
def get_goal(channel_id: str, session: SessionDep) -> dict[str, Any]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    return widgets.goal_state(session, channel_id)


@router.get("/api/v1/channels/{channel_id}/top-donors")
def get_top_donors(
    channel_id: str,
    session: SessionDep,
    period: widgets.Period = widgets.Period.STREAM,
    currency: Annotated[Currency, Query()] = Currency.RUB,
) -> dict[str, Any]:
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    return widgets.top_donors(session, channel_id, period, currency)


# ---- alert settings ----------------------------------------------------------------------------------


@router.put("/api/v1/channels/{channel_id}/alert-settings")
def put_alert_settings(
    channel_id: str, body: alert_settings.AlertSettings, session: SessionDep, actor: StreamerDep
) -> dict[str, Any]:
    with session.begin():
        row = session.get(AlertSettingsRow, channel_id)
        if row is None:
            row = AlertSettingsRow(channel_id=channel_id)
            session.add(row)
        row.settings, row.updated_at = body.model_dump_json(), utcnow()
        audit(session, actor=actor, action="alerts.configured", entity=f"channel:{channel_id}")
    return body.model_dump(mode="json")


@router.get("/api/v1/channels/{channel_id}/alert-settings")
def get_alert_settings(channel_id: str, session: SessionDep, actor: StreamerDep) -> dict[str, Any]:
    return alert_settings.load(session, channel_id).model_dump(mode="json")
