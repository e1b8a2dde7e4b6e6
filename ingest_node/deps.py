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

from ingest_node.chat.models import ChatRole
from ingest_node.metrics import NodeMetrics
from ingest_node.models import Channel
from services.chat.roles import Role
from services.chat.tokens import TokenError
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


def require_streamer(
    channel_id: str,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The channel's streamer, for routes under `/channels/{channel_id}/...`.

    A chat token (`Authorization: Bearer`) of the user whose role in the channel is `owner`, or the
    admin token. Returns the actor for the audit log: `admin` or `user:<id>`. Another valid chat token
    is 403, a missing or bad token 401, an unknown channel 404.
    """
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "a bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    given = credentials.credentials
    admin = settings.admin_token.get_secret_value()
    if admin and hmac.compare_digest(given.encode(), admin.encode()):
        actor = ADMIN_ACTOR
    else:
        try:
            claims = request.app.state.chat_tokens.verify(given)
        except TokenError as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, exc.reason, {"WWW-Authenticate": "Bearer"}
            ) from None
        role = session.get(ChatRole, (channel_id, claims.user_id))
        if session.get(Channel, channel_id) is not None and (role is None or role.role != Role.OWNER):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only the channel's owner may do this")
        actor = f"user:{claims.user_id}"
    if session.get(Channel, channel_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"channel {channel_id!r} does not exist")
    session.rollback()  # the route opens its own transaction
    return actor


StreamerDep = Annotated[str, Depends(require_streamer)]
