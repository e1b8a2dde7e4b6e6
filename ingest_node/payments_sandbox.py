"""The sandbox Payment Service: the test double for the platform's Payment Service (docs/contracts.md).

It behaves like a card provider's test mode, so the node's money path runs end to end without a real
provider: payments are created idempotently (by `Idempotency-Key`), settle asynchronously after
`EFIR_SANDBOX_SETTLE_SECONDS`, and are reported by signed webhooks (`services.payments.sign`) that are
retried with backoff while the node is down. Test tokens decide the outcome, like test card numbers:
`tok_success`, `tok_fail` (declined), `tok_refund` (succeeds, then refunded), `tok_chargeback` (succeeds,
then charged back). Operators refund or charge back a settled payment by hand through
`POST /v1/payments/{payment_id}/refund|chargeback`. State lives in memory; a restart forgets it.

`python -m ingest_node.payments_sandbox` serves it on `EFIR_PAYMENTS_PORT`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from services.ids import new_id
from services.payments import SIGNATURE_HEADER, PaymentRequest, WebhookType, sign
from services.settings import Settings, get_settings

log = logging.getLogger(__name__)

TOKENS = ("tok_success", "tok_fail", "tok_refund", "tok_chargeback")
MAX_DELIVERY_ATTEMPTS = 12
MAX_RETRY_DELAY_SECONDS = 5.0
_bearer = HTTPBearer(auto_error=False)


@dataclass
class SandboxPayment:
    payment_id: str
    request: PaymentRequest
    request_json: str
    status: str = "pending"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    delivered: list[str] = field(default_factory=list)  # webhook types the node acknowledged


class Sandbox:
    """In-memory provider state and the webhook sender."""

    def __init__(self, settings: Settings, retry_base_seconds: float) -> None:
        self.settings = settings
        self.retry_base = retry_base_seconds
        self.payments: dict[str, SandboxPayment] = {}
        self.by_key: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.http: httpx.AsyncClient | None = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self, payment: SandboxPayment) -> None:
        """What the provider does after a payment is created: decide, report, maybe reverse later."""
        await asyncio.sleep(self.settings.sandbox_settle_seconds)
        token = payment.request.payment_token
        if token == "tok_fail":
            await self.report(payment, "failed", "payment.failed", "card declined (sandbox tok_fail)")
            return
        await self.report(payment, "succeeded", "payment.succeeded", "")
        if token in ("tok_refund", "tok_chargeback"):
            await asyncio.sleep(self.settings.sandbox_settle_seconds)
            if payment.status != "succeeded":  # an operator reversed it meanwhile
                return
            if token == "tok_refund":
                await self.report(payment, "refunded", "payment.refunded", "refunded (sandbox tok_refund)")
            else:
                await self.report(
                    payment, "charged_back", "payment.charged_back", "disputed (sandbox tok_chargeback)"
                )

    async def report(self, payment: SandboxPayment, new_status: str, kind: WebhookType, reason: str) -> None:
        """Change state, then deliver its webhook; the per-payment lock keeps deliveries in order."""
        payment.status = new_status
        async with payment.lock:
            await self.deliver(payment, kind, reason)

    async def deliver(self, payment: SandboxPayment, kind: WebhookType, reason: str) -> None:
        request = payment.request
        body = json.dumps(
            {
                "id": f"evt_{new_id()}",
                "type": kind,
                "created": int(time.time()),
                "data": {
                    "payment_id": payment.payment_id,
                    "reference": request.reference,
                    "amount_minor": request.amount_minor,
                    "currency": request.currency.value,
                    "reason": reason,
                },
            }
        ).encode()
        secret = self.settings.webhook_secret.get_secret_value()
        assert self.http is not None
        for attempt in range(MAX_DELIVERY_ATTEMPTS):
            # Signed at each attempt: a retry after a long outage must not look like a stale replay.
            headers = {
                SIGNATURE_HEADER: sign(secret, body, int(time.time())),
                "Content-Type": "application/json",
            }
            try:
                answer = await self.http.post(request.callback_url, content=body, headers=headers)
                if answer.status_code < 500:
                    if answer.status_code >= 400:
                        log.warning(
                            "webhook %s for %s refused: %s", kind, payment.payment_id, answer.status_code
                        )
                    else:
                        payment.delivered.append(kind)
                    return
                log.info("webhook %s for %s: node answered %s", kind, payment.payment_id, answer.status_code)
            except httpx.HTTPError as exc:
                log.info(
                    "webhook %s for %s: node unreachable (%s)", kind, payment.payment_id, type(exc).__name__
                )
            await asyncio.sleep(min(self.retry_base * 2**attempt, MAX_RETRY_DELAY_SECONDS))
        log.error("gave up delivering webhook %s for %s", kind, payment.payment_id)


def create_app(settings: Settings | None = None, *, retry_base_seconds: float = 0.1) -> FastAPI:
    settings = settings or get_settings()
    sandbox = Sandbox(settings, retry_base_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sandbox.http = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            for task in list(sandbox.tasks):
                task.cancel()
            await asyncio.gather(*sandbox.tasks, return_exceptions=True)
            await sandbox.http.aclose()

    def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        """Only holders of the API key may call (the node, or an operator)."""
        given = credentials.credentials if credentials is not None else ""
        expected = settings.payments_api_key.get_secret_value()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
            )

    app = FastAPI(title="Efir sandbox Payment Service", lifespan=lifespan, dependencies=[Depends(caller)])
    app.state.sandbox = sandbox

    @app.post("/v1/payments", status_code=status.HTTP_201_CREATED)
    async def create_payment(
        request: Request, idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
    ) -> JSONResponse:
        if not idempotency_key:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the Idempotency-Key header is required")
        raw = await request.body()
        try:
            body = PaymentRequest.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            return JSONResponse({"detail": "malformed payment request", "errors": errors}, status_code=422)
        if body.payment_token not in TOKENS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"unknown sandbox payment token; use one of {', '.join(TOKENS)}",
            )
        canonical = body.model_dump_json()
        known = sandbox.by_key.get(idempotency_key)
        if known is not None:
            payment = sandbox.payments[known]
            if payment.request_json != canonical:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, "Idempotency-Key reused with a different request"
                )
            return JSONResponse(
                {"payment_id": payment.payment_id, "status": "pending"},
                status_code=201,
                headers={"Idempotent-Replayed": "true"},
            )
        payment = SandboxPayment(payment_id=f"pay_{new_id()}", request=body, request_json=canonical)
        sandbox.payments[payment.payment_id] = payment
        sandbox.by_key[idempotency_key] = payment.payment_id
        sandbox.spawn(sandbox.settle(payment))
        return JSONResponse({"payment_id": payment.payment_id, "status": "pending"}, status_code=201)

    @app.get("/v1/payments/{payment_id}")
    async def get_payment(payment_id: str) -> dict[str, Any]:
        payment = _find(sandbox, payment_id)
        return {
            "payment_id": payment.payment_id,
            "status": payment.status,
            "reference": payment.request.reference,
            "webhooks_delivered": payment.delivered,
        }

    async def reverse(payment_id: str, new_status: str, kind: WebhookType) -> dict[str, str]:
        payment = _find(sandbox, payment_id)
        if payment.status != "succeeded":
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"only a succeeded payment can be reversed; this one is {payment.status}",
            )
        payment.status = new_status  # claimed now, so a second call is refused
        sandbox.spawn(sandbox.report(payment, new_status, kind, f"{new_status} by the operator"))
        return {"payment_id": payment_id, "status": new_status}

    @app.post("/v1/payments/{payment_id}/refund")
    async def refund(payment_id: str) -> dict[str, str]:
        return await reverse(payment_id, "refunded", "payment.refunded")

    @app.post("/v1/payments/{payment_id}/chargeback")
    async def chargeback(payment_id: str) -> dict[str, str]:
        return await reverse(payment_id, "charged_back", "payment.charged_back")

    return app


def _find(sandbox: Sandbox, payment_id: str) -> SandboxPayment:
    payment = sandbox.payments.get(payment_id)
    if payment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"payment {payment_id!r} does not exist")
    return payment


def main() -> None:
    import uvicorn

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.node_host,
        port=settings.payments_port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
