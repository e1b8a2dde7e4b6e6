"""One dispatcher for the Payment Service's webhooks, whatever the payment paid for.

A webhook is applied the same way for a donation and for a subscription or gift charge: ignore a webhook
id already processed, find the payment's row (locked), refuse a payment id, amount or currency that is
not the row's, look the transition up in the one table below, apply it, remember the webhook id, all in
one transaction. What differs per kind (where rows and processed webhook ids live, how a transition
changes the row and what it emits) is a `PaymentKind`: `ledger.DONATIONS` and `money.payments.CHARGES`.
The webhook route picks the kind by the reference's prefix (`sub:`/`gift:` for charges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.payments import WebhookData, WebhookEvent
from services.settings import Settings

#: The provider's state machine of a payment, shared by every kind: (status, webhook type) → new status.
PAYMENT_TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "payment.succeeded"): "succeeded",
    ("pending", "payment.failed"): "failed",
    ("succeeded", "payment.refunded"): "refunded",
    ("succeeded", "payment.charged_back"): "charged_back",
}


@dataclass(frozen=True)
class WebhookOutcome:
    outcome: str  # applied | duplicate | unknown_payment | mismatch | invalid_transition
    http_status: int
    detail: str


@dataclass(frozen=True)
class Found:
    """The payment's row as the webhook checks see it."""

    row: Any
    entity_id: str
    status: str
    payment_id: str | None
    charged_minor: int  # what the provider was asked to charge
    currency: str


class PaymentKind(Protocol):
    noun: str  # "donation", "charge": named in every answer

    def seen(self, session: Session, webhook_id: str) -> bool: ...

    def find(self, session: Session, data: WebhookData) -> Found | None:
        """The row the webhook is about, locked for update, or None."""

    def transition(
        self, session: Session, settings: Settings, found: Found, target: str, event: WebhookEvent
    ) -> None:
        """Move the row to `target` with its audit rows and events, and remember the webhook id."""


DUPLICATE = WebhookOutcome("duplicate", 200, "webhook already processed")


def apply_webhook(
    session: Session, settings: Settings, kind: PaymentKind, event: WebhookEvent
) -> WebhookOutcome:
    """Apply one provider webhook: state change, webhook id, audit and outbox rows commit together."""
    try:
        return _apply(session, settings, kind, event)
    except IntegrityError:
        # The same webhook id was committed concurrently (a provider retry racing the original).
        session.rollback()
        with session.begin():
            if kind.seen(session, event.id):
                return DUPLICATE
        raise


def _apply(session: Session, settings: Settings, kind: PaymentKind, event: WebhookEvent) -> WebhookOutcome:
    noun = kind.noun
    with session.begin():
        if kind.seen(session, event.id):
            return DUPLICATE
        data = event.data
        found = kind.find(session, data)
        if found is None:
            return WebhookOutcome("unknown_payment", 404, f"no {noun} for payment {data.payment_id}")
        if found.payment_id not in (None, data.payment_id):
            return WebhookOutcome("mismatch", 422, f"payment id does not belong to this {noun}")
        if (data.amount_minor, data.currency.value) != (found.charged_minor, found.currency):
            return WebhookOutcome("mismatch", 422, f"amount or currency differs from the {noun}")
        target = PAYMENT_TRANSITIONS.get((found.status, event.type))
        if target is None:
            return WebhookOutcome(
                "invalid_transition", 409, f"cannot apply {event.type} to a {found.status} {noun}"
            )
        kind.transition(session, settings, found, target, event)
    return WebhookOutcome("applied", 200, f"{noun} {found.entity_id} is {target}")
