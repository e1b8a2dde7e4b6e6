"""Paid interactive actions: boosted chat messages and the music/game request queue.

Both are paid through the subscription/gift charge flow (`charges.py`, `payments.py`): the entity and
its pending charge commit together before the Payment Service is asked, and the webhook of the
charge (`boost:` / `req:` reference) calls `on_charge` in the webhook's transaction. So a boost is
pinned, and a request joins the queue, only once the money settled, exactly once.

The queue is the streamer's: it is closed until they open it, takes one currency (amounts are
compared, never converted), and orders requests by the streamer's manual order first, then by amount
(highest first), then by the time the payment settled. Refunds on skip or remove are the streamer's
choice per request (`refund: true` asks the provider for a refund of the whole amount; the default
keeps the money, as viewers are told when they pay). A refund or chargeback of a request still in
the queue takes it out (`reversed`).

A refund or chargeback of a settled boost or request emits its reversal (`boost.refunded|charged_back`,
`request.refunded|charged_back`) in the webhook's transaction, with the original settlement time and
the donations' split, so it cancels its credit exactly; the webhook is the only place that emits one,
so a skip with `refund: true` results in one `request.refunded`, when the provider's refund arrives. A
chargeback flags the payer as a subscription's or gift's does (`reversals.flag_charged_back`), and a
flagged payer's next boost or request is refused (403) before anything is charged. A reversed boost's
pin comes down at once (`pins.unpin_boosted`, audited `chat.unpinned` on the charge), in the same
transaction: a viewer never sees a message pinned whose money was taken back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.audit import audit
from ingest_node.chat import pins
from ingest_node.models import Channel, utcnow
from ingest_node.money import charges, payer_checks, reversals
from ingest_node.money.interactive_models import BoostedMessage, MediaRequest, RequestQueue, RequestStatus
from ingest_node.money.models import ChargeKind, ChargeStatus, MoneyCharge
from services import events
from services.ids import new_id
from services.money import Currency
from services.revenue import RevenueSource
from services.settings import Settings

log = logging.getLogger(__name__)
KINDS = frozenset({ChargeKind.BOOST, ChargeKind.REQUEST})
REQUEST_KINDS = ("music", "game")


class Refused(Exception):
    """A request the rules refuse: `status` is the HTTP status the route answers with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Opened:
    entity_id: str
    charge: MoneyCharge


def _channel(session: Session, channel_id: str) -> None:
    if session.get(Channel, channel_id) is None:
        raise Refused(404, f"channel {channel_id!r} does not exist")


def refuse_flagged(session: Session, settings: Settings, payer_id: str | None) -> None:
    """A payer flagged by a chargeback (of any charge or donation of theirs) may not pay again here."""
    try:
        payer_checks.refuse_flagged_payer(session, settings, payer_id)
    except payer_checks.PayerFlagged as exc:
        raise Refused(403, str(exc)) from None


def check_amount(settings: Settings, amount_minor: int) -> None:
    if not settings.donation_min_minor <= amount_minor <= settings.donation_max_minor:
        raise Refused(
            422,
            f"amount_minor must be between {settings.donation_min_minor} and "
            f"{settings.donation_max_minor} minor units",
        )


# ---- boosted chat messages ------------------------------------------------------------------------


def open_boost(
    session: Session,
    settings: Settings,
    *,
    key: str,
    digest: str,
    channel_id: str,
    amount_minor: int,
    currency: Currency,
    message: str,
    display_name: str | None,
    user_id: str | None,
) -> Opened:
    _channel(session, channel_id)
    check_amount(settings, amount_minor)
    refuse_flagged(session, settings, user_id)
    charge = charges.new_charge(
        session,
        kind=ChargeKind.BOOST,
        channel_id=channel_id,
        amount_minor=amount_minor,
        currency=currency,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
    )
    boost = BoostedMessage(
        boost_id=new_id(),
        channel_id=channel_id,
        charge_id=charge.charge_id,
        user_id=user_id,
        display_name=display_name,
        message=message,
        amount_minor=amount_minor,
        currency=currency.value,
        pin_seconds=settings.boost_pin_seconds,
        status=ChargeStatus.PENDING,
    )
    session.add(boost)
    session.flush()
    return Opened(boost.boost_id, charge)


def _pin(session: Session, settings: Settings, boost: BoostedMessage) -> str:
    """Pin the message in chat (docs/contracts.md "Chat pins"), keyed by the boost's charge so a repeat
    pins nothing twice. Everything `pin_boosted` refuses was checked before the charge was made."""
    pin = pins.pin_boosted(
        session,
        settings,
        channel_id=boost.channel_id,
        user_id=boost.user_id,
        display_name=boost.display_name or "",
        text=boost.message,
        amount_minor=boost.amount_minor,
        currency=boost.currency,
        seconds=boost.pin_seconds,
        event_id=f"boost:{boost.charge_id}",
    )
    return pin.pin_id


def _boost_settled(session: Session, settings: Settings, charge: MoneyCharge) -> None:
    boost = session.execute(
        sa.select(BoostedMessage).where(BoostedMessage.charge_id == charge.charge_id).with_for_update()
    ).scalar_one()
    assert charge.settled_at is not None and charge.provider_payment_id is not None
    boost.status, boost.settled_at = "pinned", charge.settled_at
    boost.pin_id = _pin(session, settings, boost)
    payload = events.BoostPinned(
        boost_id=boost.boost_id,
        charge_id=charge.charge_id,
        amount_minor=boost.amount_minor,
        currency=Currency(boost.currency),
        display_name=boost.display_name,
        message=boost.message,
        pin_seconds=boost.pin_seconds,
        payment_id=charge.provider_payment_id,
        settled_at=charge.settled_at,
    )
    charges.emit(session, settings, payload, channel_id=boost.channel_id, user_id=boost.user_id)


# ---- the request queue ----------------------------------------------------------------------------


def queue_of(session: Session, channel_id: str, *, lock: bool = False) -> RequestQueue | None:
    stmt = sa.select(RequestQueue).where(RequestQueue.channel_id == channel_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt, execution_options={"populate_existing": True}).scalar_one_or_none()


def configure_queue(
    session: Session,
    settings: Settings,
    channel_id: str,
    *,
    is_open: bool,
    currency: Currency,
    min_amount_minor: int,
    actor: str,
) -> RequestQueue:
    _channel(session, channel_id)
    check_amount(settings, min_amount_minor)
    queue = queue_of(session, channel_id, lock=True)
    if queue is None:
        queue = RequestQueue(channel_id=channel_id, min_amount_minor=min_amount_minor)
        session.add(queue)
    queue.is_open, queue.currency, queue.min_amount_minor = is_open, currency.value, min_amount_minor
    queue.updated_at = utcnow()
    audit(session, actor=actor, action="requests.configured", entity=f"channel:{channel_id}")
    return queue


def open_request(
    session: Session,
    settings: Settings,
    *,
    key: str,
    digest: str,
    channel_id: str,
    kind: str,
    title: str,
    url: str | None,
    requester_id: str | None,
    requester_name: str | None,
    amount_minor: int,
    currency: Currency,
) -> Opened:
    _channel(session, channel_id)
    check_amount(settings, amount_minor)
    queue = queue_of(session, channel_id)
    if queue is None or not queue.is_open:
        raise Refused(409, "the request queue of this channel is closed")
    if currency.value != queue.currency:
        raise Refused(422, f"this queue takes requests in {queue.currency}")
    if amount_minor < queue.min_amount_minor:
        raise Refused(422, f"a request costs at least {queue.min_amount_minor} minor units here")
    refuse_flagged(session, settings, requester_id)
    charge = charges.new_charge(
        session,
        kind=ChargeKind.REQUEST,
        channel_id=channel_id,
        amount_minor=amount_minor,
        currency=currency,
        key=key,
        digest=digest,
        actor=charges.API_ACTOR,
    )
    request = MediaRequest(
        request_id=new_id(),
        channel_id=channel_id,
        charge_id=charge.charge_id,
        kind=kind,
        title=title,
        url=url,
        requester_id=requester_id,
        requester_name=requester_name,
        amount_minor=amount_minor,
        currency=currency.value,
        status=RequestStatus.PENDING,
    )
    session.add(request)
    session.flush()
    return Opened(request.request_id, charge)


def _request_fields(request: MediaRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "kind": request.kind,
        "title": request.title,
        "requester_name": request.requester_name,
        "amount_minor": request.amount_minor,
        "currency": Currency(request.currency),
    }


def _request_charge(
    session: Session, settings: Settings, charge: MoneyCharge, target: ChargeStatus, reason: str
) -> None:
    request = session.execute(
        sa.select(MediaRequest).where(MediaRequest.charge_id == charge.charge_id).with_for_update()
    ).scalar_one()
    if target == ChargeStatus.SUCCEEDED:
        assert charge.settled_at is not None and charge.provider_payment_id is not None
        request.status, request.queued_at = RequestStatus.QUEUED, charge.settled_at
        payload = events.RequestSubmitted(
            **_request_fields(request),
            charge_id=charge.charge_id,
            payment_id=charge.provider_payment_id,
            settled_at=charge.settled_at,
        )
        charges.emit(session, settings, payload, channel_id=request.channel_id, user_id=request.requester_id)
    elif target == ChargeStatus.FAILED:
        request.status = RequestStatus.FAILED
    else:  # refunded or charged back (a skip/remove with a refund only asked for it: this is the one event)
        streamer_refund = request.refund == "requested"  # a skip/remove asked for it: that ends the request
        if streamer_refund:
            request.refund = "refunded"
        if request.status in (RequestStatus.QUEUED, RequestStatus.PENDING) and not streamer_refund:
            request.status, request.finished_at = RequestStatus.REVERSED, utcnow()
        _reversed(
            session,
            settings,
            charge,
            target,
            reason,
            entity={"request_id": request.request_id},
            channel_id=request.channel_id,
            payer_id=request.requester_id,
        )


def locked_request(session: Session, channel_id: str, request_id: str) -> MediaRequest:
    request = session.execute(
        sa.select(MediaRequest)
        .where(MediaRequest.request_id == request_id, MediaRequest.channel_id == channel_id)
        .with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()
    if request is None:
        raise Refused(404, f"request {request_id!r} does not exist in this channel")
    return request


FINISH_EVENTS: dict[str, type[events.Payload]] = {
    RequestStatus.PLAYED: events.RequestPlayed,
    RequestStatus.SKIPPED: events.RequestSkipped,
    RequestStatus.REMOVED: events.RequestRemoved,
}


def finish(
    session: Session,
    settings: Settings,
    request: MediaRequest,
    target: RequestStatus,
    *,
    actor: str,
    refund: bool = False,
) -> None:
    """Take a queued request out of the queue as played, skipped or removed (refund: the caller has
    already asked the provider for it)."""
    if request.status != RequestStatus.QUEUED:
        raise Refused(409, f"request {request.request_id} is {request.status}, not queued")
    request.status, request.finished_at, request.manual_order = target, utcnow(), None
    if refund and request.refund is None:  # "refunded" when the provider's webhook came first
        request.refund = "requested"
    audit(
        session,
        actor=actor,
        action=f"request.{target}",
        entity=f"request:{request.request_id}",
        currency=request.currency,
        amount_before=request.amount_minor,
        amount_after=0 if refund else request.amount_minor,
        status_before=RequestStatus.QUEUED,
        status_after=target,
    )
    extra: dict[str, Any] = {} if target == RequestStatus.PLAYED else {"refund": refund}
    payload = FINISH_EVENTS[target](**_request_fields(request), **extra)
    charges.emit(session, settings, payload, channel_id=request.channel_id, user_id=request.requester_id)


def reorder(session: Session, channel_id: str, request_ids: list[str], *, actor: str) -> None:
    """The listed queued requests go first, in the given order; the others follow by amount, time."""
    if len(set(request_ids)) != len(request_ids):
        raise Refused(422, "request_ids lists a request twice")
    queued = {
        r.request_id: r
        for r in session.execute(
            sa.select(MediaRequest)
            .where(MediaRequest.channel_id == channel_id, MediaRequest.status == RequestStatus.QUEUED)
            .with_for_update()
        ).scalars()
    }
    unknown = [rid for rid in request_ids if rid not in queued]
    if unknown:
        raise Refused(404, f"not in this channel's queue: {', '.join(unknown[:5])}")
    for request in queued.values():
        request.manual_order = None
    for position, rid in enumerate(request_ids):
        queued[rid].manual_order = position
    audit(session, actor=actor, action="requests.reordered", entity=f"channel:{channel_id}")


def queued(session: Session, channel_id: str) -> list[MediaRequest]:
    return list(
        session.execute(
            sa.select(MediaRequest)
            .where(MediaRequest.channel_id == channel_id, MediaRequest.status == RequestStatus.QUEUED)
            .order_by(
                MediaRequest.manual_order.is_(None),
                MediaRequest.manual_order,
                MediaRequest.amount_minor.desc(),
                MediaRequest.queued_at,
                MediaRequest.request_id,
            )
        ).scalars()
    )


def now_playing(session: Session, channel_id: str) -> MediaRequest | None:
    return session.execute(
        sa.select(MediaRequest)
        .where(MediaRequest.channel_id == channel_id, MediaRequest.status == RequestStatus.PLAYED)
        .order_by(MediaRequest.finished_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def public_request(request: MediaRequest) -> dict[str, Any]:
    """What anyone (and the overlay) may see of a request: no requester id, no payment details."""
    return {
        "request_id": request.request_id,
        "kind": request.kind,
        "title": request.title,
        "url": request.url,
        "requester_name": request.requester_name,
        "amount_minor": request.amount_minor,
        "currency": request.currency,
        "status": request.status,
        "refund": request.refund,
    }


# ---- the charge hook (called by payments.py in the webhook's transaction) --------------------------


REVERSAL_EVENTS: dict[tuple[str, str], type[events.InteractiveReversal]] = {
    (ChargeKind.BOOST, ChargeStatus.REFUNDED): events.BoostRefunded,
    (ChargeKind.BOOST, ChargeStatus.CHARGED_BACK): events.BoostChargedBack,
    (ChargeKind.REQUEST, ChargeStatus.REFUNDED): events.RequestRefunded,
    (ChargeKind.REQUEST, ChargeStatus.CHARGED_BACK): events.RequestChargedBack,
}


def _reversed(
    session: Session,
    settings: Settings,
    charge: MoneyCharge,
    target: ChargeStatus,
    reason: str,
    *,
    entity: dict[str, str],
    channel_id: str,
    payer_id: str | None,
) -> None:
    """The reversal event of a settled boost/request charge, and on a chargeback the payer's flag.

    Only a succeeded charge can be refunded or charged back (the dispatcher's transition table), and a
    webhook id is applied once, so this runs at most once per charge. The split is the donations' one,
    as its credit's (`boost.pinned` / `request.submitted`) is in the marts."""
    why = reversals.reason_for(target, reason)
    payload = REVERSAL_EVENTS[(charge.kind, target)](
        charge_id=charge.charge_id,
        payer_id=payer_id,
        **entity,
        **reversals.settled_fields(charge, charge.amount_minor, RevenueSource.DONATION, why),
    )
    charges.emit(session, settings, payload, channel_id=channel_id, user_id=payer_id)
    if target == ChargeStatus.CHARGED_BACK:
        # Boosts and requests keep no payment token: the user id is what can be flagged.
        reversals.flag_charged_back(session, settings, charge, why, user_id=payer_id, payment_token=None)


def on_charge(
    session: Session, settings: Settings, charge: MoneyCharge, target: ChargeStatus, reason: str = ""
) -> None:
    """Apply a charge's new status to its boost or request (`reason`: the provider's, for reversals)."""
    if charge.kind == ChargeKind.REQUEST:
        _request_charge(session, settings, charge, target, reason)
    elif target == ChargeStatus.SUCCEEDED:
        _boost_settled(session, settings, charge)
    else:
        boost = session.execute(
            sa.select(BoostedMessage).where(BoostedMessage.charge_id == charge.charge_id).with_for_update()
        ).scalar_one()
        boost.status = target
        if target in reversals.REVERSED:
            _reversed(
                session,
                settings,
                charge,
                target,
                reason,
                entity={"boost_id": boost.boost_id},
                channel_id=boost.channel_id,
                payer_id=boost.user_id,
            )
            _unpin_reversed(session, settings, charge, target)


def _unpin_reversed(session: Session, settings: Settings, charge: MoneyCharge, target: ChargeStatus) -> None:
    """Take a reversed boost's pin down now and audit it on the charge, next to its reversal: nothing
    when the pin already expired (then no viewer sees it anyway)."""
    reason = REVERSAL_EVENTS[(charge.kind, target)].event_type
    pin = pins.unpin_boosted(session, settings, event_id=f"boost:{charge.charge_id}", reason=reason)
    if pin is None:
        return
    audit(
        session,
        actor=charges.PROVIDER_ACTOR,
        action="chat.unpinned",
        entity=f"charge:{charge.charge_id}",
        currency=charge.currency,
        amount_before=pin.amount_minor,
        amount_after=0,
        status_before="pinned",
        status_after=target,
    )
