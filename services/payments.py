"""The Payment Service: its wire models, the webhook signature scheme and the node's HTTP client.

One module for both sides of the contract in docs/contracts.md, so the node (which verifies webhooks)
and the sandbox provider (which signs them) cannot drift apart. The signature is Stripe's recipe:
HMAC-SHA256 over "<t>.<raw body>", sent as `Efir-Signature: t=<unix seconds>,v1=<hex>`, compared in
constant time, with a timestamp tolerance so a captured webhook cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.money import Currency

SIGNATURE_HEADER = "Efir-Signature"
WebhookType = Literal["payment.succeeded", "payment.failed", "payment.refunded", "payment.charged_back"]


class SignatureError(ValueError):
    """A webhook's signature is missing, malformed, wrong or outside the time tolerance."""


def _digest(secret: str, body: bytes, ts: int) -> str:
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, ts: int) -> str:
    """The `Efir-Signature` header value for `body` sent at unix time `ts`."""
    return f"t={ts},v1={_digest(secret, body, ts)}"


def verify(secret: str, body: bytes, header: str | None, *, tolerance: int, now: float | None = None) -> int:
    """Check a signature header against the raw body; returns its timestamp or raises SignatureError."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed {SIGNATURE_HEADER} header")
        parts.setdefault(name, []).append(value)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} header has no valid timestamp") from None
    candidates = parts.get("v1", [])
    if not candidates:
        raise SignatureError(f"{SIGNATURE_HEADER} header has no v1 signature")
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise SignatureError(f"webhook timestamp is outside the tolerance of {tolerance} s")
    expected = _digest(secret, body, ts)
    # Check every candidate (key rotation sends several) without stopping early.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise SignatureError("webhook signature does not match")
    return ts


class PaymentRequest(BaseModel):
    """Body of `POST /v1/payments`; `reference` is the donation id, also the Idempotency-Key."""

    model_config = ConfigDict(extra="forbid", strict=True)
    reference: str = Field(min_length=1, max_length=128)
    amount_minor: int = Field(gt=0)
    currency: Currency
    description: str = Field("", max_length=500)
    payment_token: str = Field(min_length=1, max_length=128)
    callback_url: str = Field(min_length=1, max_length=2000)


class PaymentCreated(BaseModel):
    """The provider's answer to a new payment: settlement follows by webhook."""

    payment_id: str
    status: Literal["pending"]


class WebhookData(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    payment_id: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    amount_minor: int
    currency: Currency
    reason: str = ""


class WebhookEvent(BaseModel):
    """What the provider POSTs to the callback url; `id` is unique per event, the same on retries."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=128)
    type: WebhookType
    created: int
    data: WebhookData


class PaymentServiceError(RuntimeError):
    """The Payment Service could not be reached or answered with a server error."""


class PaymentRefused(RuntimeError):
    """The Payment Service answered, and refused the payment (4xx)."""


class PaymentClient:
    """The node's client of the Payment Service; the api key travels only in the Authorization header."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}
        )

    def create_payment(self, request: PaymentRequest) -> PaymentCreated:
        """Create a payment; safe to retry because the reference is sent as the Idempotency-Key."""
        try:
            response = self._http.post(
                "/v1/payments",
                content=request.model_dump_json(),
                headers={"Idempotency-Key": request.reference, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise PaymentServiceError(f"payment service unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise PaymentServiceError(f"payment service answered {response.status_code}")
        if response.status_code >= 400:
            raise PaymentRefused(
                f"payment service refused the payment ({response.status_code}): {_detail(response)}"
            )
        try:
            return PaymentCreated.model_validate_json(response.content)
        except ValueError as exc:
            raise PaymentServiceError("payment service sent an unreadable answer") from exc

    def refund(self, payment_id: str) -> None:
        """Ask the provider to refund a settled payment in full; the `payment.refunded` webhook follows.

        A payment that is no longer refundable (already refunded, charged back) raises PaymentRefused."""
        try:
            response = self._http.post(f"/v1/payments/{payment_id}/refund")
        except httpx.HTTPError as exc:
            raise PaymentServiceError(f"payment service unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise PaymentServiceError(f"payment service answered {response.status_code}")
        if response.status_code >= 400:
            raise PaymentRefused(
                f"payment service refused the refund ({response.status_code}): {_detail(response)}"
            )

    def close(self) -> None:
        self._http.close()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        detail = ""
    return str(detail)[:300]
