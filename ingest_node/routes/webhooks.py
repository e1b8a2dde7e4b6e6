"""Payment webhooks: only the Payment Service may call, proven by the HMAC signature over the raw body."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ingest_node import ledger
from ingest_node.deps import MetricsDep, RawBodyDep, SessionDep, SettingsDep
from ingest_node.money import charges as money_charges
from ingest_node.money import payments as money_payments
from services.payments import SIGNATURE_HEADER, SignatureError, WebhookEvent, verify

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


@router.post("/webhook")
def payment_webhook(
    raw: RawBodyDep,
    session: SessionDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> JSONResponse:
    try:
        verify(
            settings.webhook_secret.get_secret_value(),
            raw,
            signature,
            tolerance=settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        metrics.webhooks.labels(outcome="unauthorized").inc()
        log.warning("refused a payment webhook: %s", exc)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"webhook refused: {exc}") from None
    try:
        event = WebhookEvent.model_validate_json(raw)
    except ValidationError as exc:
        metrics.webhooks.labels(outcome="malformed").inc()
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        return JSONResponse({"detail": "malformed webhook body", "errors": errors}, status_code=422)
    if money_charges.owns(event.data.reference):  # a subscription or gift charge (`sub:` / `gift:`)
        result = money_payments.apply_webhook(session, settings, event)
    else:
        result = ledger.apply_webhook(session, settings, event)
    metrics.webhooks.labels(outcome=result.outcome).inc()
    if result.http_status >= 400:
        log.warning("webhook %s (%s) not applied: %s", event.id, event.type, result.detail)
        raise HTTPException(result.http_status, result.detail)
    return JSONResponse({"status": result.outcome, "detail": result.detail})
