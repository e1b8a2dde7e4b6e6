"""The append-only audit log of financial operations: one row per change, written in its transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ingest_node.models import AuditEntry


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    currency: str | None = None,
    amount_before: int | None = None,
    amount_after: int | None = None,
    status_before: str | None = None,
    status_after: str | None = None,
) -> None:
    """Add an audit row to the caller's transaction, so the change and its record commit together."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            entity=entity,
            currency=currency,
            amount_before_minor=amount_before,
            amount_after_minor=amount_after,
            status_before=status_before,
            status_after=status_after,
        )
    )
