"""Sponsored content: a brand pays the platform an invoice for an integration on a channel (a bank
transfer, B2B), and finance records the payment here; 90% goes to the streamer (`services.revenue`).

No Payment Service is involved: the money has already arrived when the row is written, so a
sponsorship is born `paid`, with `sponsorship.paid` in the same transaction, and can only move once,
to `refunded` (`sponsorship.refunded`, repeating the original `settled_at` and amount so the revenue
mart takes back exactly what it credited). Every function adds to the caller's transaction: the row,
its audit entry and its outbox event commit together. Migration: `0004_sponsorships`.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest_node.audit import audit
from ingest_node.models import Base, Channel, UTCDateTime, utcnow
from ingest_node.money import charges
from services import events
from services.ids import new_id
from services.money import Currency
from services.revenue import RevenueSource, split_for
from services.settings import Settings

# 100,000,000.00 of the invoice's currency: far above any real integration deal, low enough that a
# mistyped amount (an extra zero or three) is refused instead of paying a streamer a fortune.
MAX_AMOUNT_MINOR = 10_000_000_000


class SponsorshipStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


class Sponsorship(Base):
    __tablename__ = "sponsorships"
    __table_args__ = (
        sa.UniqueConstraint("channel_id", "payment_reference", name="uq_sponsorships_reference"),
    )
    sponsorship_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    channel_id: Mapped[str] = mapped_column(sa.ForeignKey("channels.channel_id"), index=True)
    sponsor_name: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.String(200))
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    payment_reference: Mapped[str] = mapped_column(sa.String(128))  # the invoice or bank reference
    status: Mapped[str] = mapped_column(sa.String(16))
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the bank credited the payment
    created_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_by: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    refund_reason: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    # The Idempotency-Key of the request that recorded it (and of the refund), the hash of that
    # request's body and the answer it got, so a retry replays the answer instead of writing twice.
    idempotency_key: Mapped[str] = mapped_column(sa.String(140), unique=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    refund_idempotency_key: Mapped[str | None] = mapped_column(sa.String(140), unique=True, nullable=True)
    refund_request_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    refund_response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class SponsorshipError(Exception):
    """A request the rules refuse; the message says why, in words an operator can act on."""


class InvalidSponsorship(SponsorshipError, ValueError):
    """An amount or a date no bank statement can hold."""


class UnknownChannel(SponsorshipError, LookupError):
    pass


class UnknownSponsorship(SponsorshipError, LookupError):
    pass


class DuplicateReference(SponsorshipError):
    """The channel already has a sponsorship with this invoice or bank reference."""


class AlreadyRefunded(SponsorshipError):
    pass


def by_key(session: Session, key: str) -> Sponsorship | None:
    return session.execute(
        sa.select(Sponsorship).where(Sponsorship.idempotency_key == key),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()


def by_refund_key(session: Session, key: str) -> Sponsorship | None:
    return session.execute(
        sa.select(Sponsorship).where(Sponsorship.refund_idempotency_key == key),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()


def by_reference(session: Session, channel_id: str, reference: str) -> Sponsorship | None:
    return session.execute(
        sa.select(Sponsorship).where(
            Sponsorship.channel_id == channel_id, Sponsorship.payment_reference == reference
        )
    ).scalar_one_or_none()


def for_channel(session: Session, channel_id: str) -> list[Sponsorship]:
    """The channel's sponsorships, latest settlement first."""
    if session.get(Channel, channel_id) is None:
        raise UnknownChannel(f"unknown channel {channel_id!r}")
    rows = session.execute(
        sa.select(Sponsorship)
        .where(Sponsorship.channel_id == channel_id)
        .order_by(Sponsorship.settled_at.desc(), Sponsorship.sponsorship_id.desc())
    ).scalars()
    return list(rows)


def view(row: Sponsorship) -> dict[str, Any]:
    """The JSON answer for a sponsorship, with the split the streamer and the platform get (or lost)."""
    split = split_for(RevenueSource.SPONSORED, row.amount_minor)
    return {
        "sponsorship_id": row.sponsorship_id,
        "channel_id": row.channel_id,
        "sponsor_name": row.sponsor_name,
        "title": row.title,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "payment_reference": row.payment_reference,
        "status": row.status,
        "settled_at": row.settled_at.isoformat(),
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "refunded_at": row.refunded_at.isoformat() if row.refunded_at is not None else None,
        "refunded_by": row.refunded_by,
        "refund_reason": row.refund_reason,
        "streamer_share_minor": split.streamer_minor,
        "platform_fee_minor": split.platform_minor,
    }


def check_amount(amount_minor: int) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidSponsorship("amount_minor must be an integer number of minor units")
    if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidSponsorship(f"amount_minor must be from 1 to {MAX_AMOUNT_MINOR} minor units")


def record(
    session: Session,
    settings: Settings,
    *,
    channel_id: str,
    sponsor_name: str,
    title: str,
    amount_minor: int,
    currency: Currency,
    payment_reference: str,
    settled_at: datetime | None,
    actor: str,
    created_by: str,
    key: str,
    digest: str,
) -> Sponsorship:
    """Write a paid sponsorship, its audit entry and `sponsorship.paid` (not yet committed)."""
    check_amount(amount_minor)
    now = utcnow()
    settled = now if settled_at is None else settled_at
    if settled.tzinfo is None:
        raise InvalidSponsorship("settled_at must carry a time zone (e.g. 2026-11-30T12:00:00Z)")
    if settled > now:
        raise InvalidSponsorship(f"settled_at {settled.isoformat()} is in the future")
    if session.get(Channel, channel_id) is None:
        raise UnknownChannel(f"unknown channel {channel_id!r}")
    if by_reference(session, channel_id, payment_reference) is not None:
        raise DuplicateReference(
            f"channel {channel_id!r} already has a sponsorship with payment reference {payment_reference!r}"
        )
    row = Sponsorship(
        sponsorship_id=new_id(),
        channel_id=channel_id,
        sponsor_name=sponsor_name,
        title=title,
        amount_minor=amount_minor,
        currency=currency.value,
        payment_reference=payment_reference,
        status=SponsorshipStatus.PAID,
        settled_at=settled,
        created_by=created_by,
        created_at=now,
        idempotency_key=key,
        request_hash=digest,
    )
    session.add(row)
    session.flush()  # a concurrent twin (same key or reference) fails here, before the event is queued
    audit(
        session,
        actor=actor,
        action="sponsorship.paid",
        entity=f"sponsorship:{row.sponsorship_id}",
        currency=row.currency,
        amount_before=0,
        amount_after=amount_minor,
        status_after=SponsorshipStatus.PAID,
    )
    charges.emit(
        session, settings, _payload(events.SponsorshipPaid, row, ""), channel_id=channel_id, user_id=None
    )
    row.response_body = json.dumps(view(row))
    return row


def refund(
    session: Session,
    settings: Settings,
    sponsorship_id: str,
    *,
    reason: str,
    actor: str,
    refunded_by: str,
    key: str,
    digest: str,
) -> Sponsorship:
    """Mark a paid sponsorship refunded and queue `sponsorship.refunded` (not yet committed).

    The move is one conditional UPDATE (`WHERE status = 'paid'`), so of two refunds racing on any
    database exactly one wins and the other gets AlreadyRefunded: the credit is never taken back twice.
    """
    row = session.get(Sponsorship, sponsorship_id)
    if row is None:
        raise UnknownSponsorship(f"sponsorship {sponsorship_id!r} does not exist")
    now = utcnow()
    moved = session.execute(
        sa.update(Sponsorship)
        .where(Sponsorship.sponsorship_id == sponsorship_id, Sponsorship.status == SponsorshipStatus.PAID)
        .values(
            status=SponsorshipStatus.REFUNDED,
            refunded_at=now,
            refunded_by=refunded_by,
            refund_reason=reason,
            refund_idempotency_key=key,
            refund_request_hash=digest,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    if cast("sa.CursorResult[Any]", moved).rowcount != 1:
        when = row.refunded_at.isoformat() if row.refunded_at is not None else "earlier"
        raise AlreadyRefunded(f"sponsorship {sponsorship_id!r} was already refunded at {when}")
    audit(
        session,
        actor=actor,
        action="sponsorship.refunded",
        entity=f"sponsorship:{sponsorship_id}",
        currency=row.currency,
        amount_before=row.amount_minor,
        amount_after=0,
        status_before=SponsorshipStatus.PAID,
        status_after=SponsorshipStatus.REFUNDED,
    )
    payload = _payload(events.SponsorshipRefunded, row, reason)
    charges.emit(session, settings, payload, channel_id=row.channel_id, user_id=None)
    row.refund_response_body = json.dumps(view(row))
    return row


def _payload(
    cls: type[events.SponsorshipPaid] | type[events.SponsorshipRefunded], row: Sponsorship, reason: str
) -> events.Payload:
    """The event of a payment or its reversal: the same reference, amount, settlement time and split,
    so a refund undoes the credit exactly (at the original settlement's FX rate)."""
    split = split_for(RevenueSource.SPONSORED, row.amount_minor)
    return cls(
        sponsorship_id=row.sponsorship_id,
        sponsor_name=row.sponsor_name,
        title=row.title,
        payment_id=row.payment_reference,
        amount_minor=row.amount_minor,
        currency=Currency(row.currency),
        settled_at=row.settled_at,
        reason=reason[:300],
        streamer_share_minor=split.streamer_minor,
        platform_fee_minor=split.platform_minor,
    )
