"""Charges: one payment at the Payment Service for a subscription or a gift, with its idempotency record.

Every function adds to the caller's transaction, so a charge, the entity it pays for, the audit row
and the outbox event always commit together.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.audit import audit
from ingest_node.models import utcnow
from ingest_node.money.models import ChargeKind, ChargeStatus, MoneyCharge
from ingest_node.outbox import enqueue
from services.events import Envelope, Payload
from services.ids import new_id
from services.money import Currency
from services.settings import Settings

API_ACTOR = "api"
PROVIDER_ACTOR = "payment-service"
JOB_ACTOR = "renewal-job"
REFERENCE_PREFIX: dict[ChargeKind, str] = {
    ChargeKind.SUB_CREATE: "sub",
    ChargeKind.SUB_GIFT: "sub",
    ChargeKind.SUB_UPGRADE: "sub",
    ChargeKind.SUB_RENEW: "sub",
    ChargeKind.SUB_GIFT_BATCH: "sub",
    ChargeKind.GIFT: "gift",
    ChargeKind.BOOST: "boost",
    ChargeKind.REQUEST: "req",
}
PREFIXES = frozenset(f"{p}:" for p in REFERENCE_PREFIX.values())


def owns(reference: str) -> bool:
    """True for a payment reference of a subscription or gift charge (donations use a bare id)."""
    return any(reference.startswith(prefix) for prefix in PREFIXES)


def by_key(session: Session, key: str) -> MoneyCharge | None:
    return session.execute(
        sa.select(MoneyCharge).where(MoneyCharge.idempotency_key == key),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()


def new_charge(
    session: Session,
    *,
    kind: ChargeKind,
    channel_id: str,
    amount_minor: int,
    currency: Currency,
    key: str,
    digest: str,
    actor: str,
    subscription_id: str | None = None,
    gift_id: str | None = None,
    tier: str | None = None,
) -> MoneyCharge:
    charge_id = new_id()
    charge = MoneyCharge(
        charge_id=charge_id,
        reference=f"{REFERENCE_PREFIX[kind]}:{charge_id}",
        kind=kind,
        channel_id=channel_id,
        subscription_id=subscription_id,
        gift_id=gift_id,
        tier=tier,
        amount_minor=amount_minor,
        currency=currency.value,
        status=ChargeStatus.PENDING,
        idempotency_key=key,
        request_hash=digest,
    )
    session.add(charge)
    session.flush()
    audit(
        session,
        actor=actor,
        action=f"charge.{kind}.created",
        entity=f"charge:{charge_id}",
        currency=currency.value,
        amount_before=None,
        amount_after=0,
        status_after=ChargeStatus.PENDING,
    )
    return charge


def set_status(
    session: Session, charge: MoneyCharge, target: ChargeStatus, *, actor: str, reason: str = ""
) -> None:
    """Move a charge and audit the money credited before and after (only a succeeded charge counts)."""
    before = ChargeStatus(charge.status)
    now = utcnow()
    if target == ChargeStatus.SUCCEEDED and charge.settled_at is None:
        charge.settled_at = now
    if target == ChargeStatus.FAILED:
        charge.failure_reason = (reason or "declined")[:300]
    charge.status = target
    charge.updated_at = now
    audit(
        session,
        actor=actor,
        action=f"charge.{charge.kind}.{target}",
        entity=f"charge:{charge.charge_id}",
        currency=charge.currency,
        amount_before=charge.amount_minor if before == ChargeStatus.SUCCEEDED else 0,
        amount_after=charge.amount_minor if target == ChargeStatus.SUCCEEDED else 0,
        status_before=before,
        status_after=target,
    )


def store_response(charge: MoneyCharge, status: int, body: dict[str, Any]) -> None:
    charge.response_status = status
    charge.response_body = json.dumps(body)


def emit(
    session: Session, settings: Settings, payload: Payload, *, channel_id: str, user_id: str | None
) -> None:
    enqueue(session, Envelope.wrap(payload, channel_id=channel_id, node_id=settings.node_id, user_id=user_id))
