"""Typed dependencies of the routes (the fastapi full-stack template's `SessionDep` style).

Everything comes from `request.app.state`, set by `create_app`, so several apps (tests) never share
a database, a registry or a client by accident.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ingest_node.metrics import NodeMetrics
from services.payments import PaymentClient
from services.settings import Settings

ADMIN_ACTOR = "admin"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_metrics(request: Request) -> NodeMetrics:
    metrics: NodeMetrics = request.app.state.metrics
    return metrics


def get_payments(request: Request) -> PaymentClient:
    client: PaymentClient = request.app.state.payments
    return client


async def get_raw_body(request: Request) -> bytes:
    """The exact bytes received: webhook signatures are computed over them, not over parsed JSON."""
    return await request.body()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
MetricsDep = Annotated[NodeMetrics, Depends(get_metrics)]
PaymentsDep = Annotated[PaymentClient, Depends(get_payments)]
RawBodyDep = Annotated[bytes, Depends(get_raw_body)]

_bearer = HTTPBearer(auto_error=False)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Admin calls carry `Authorization: Bearer <EFIR_ADMIN_TOKEN>`; an empty token disables them."""
    expected = settings.admin_token.get_secret_value()
    if not expected:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "the admin API is disabled on this node (EFIR_ADMIN_TOKEN is empty)"
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin bearer token missing or wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return ADMIN_ACTOR


AdminDep = Annotated[str, Depends(require_admin)]
