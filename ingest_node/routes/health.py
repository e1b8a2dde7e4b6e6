"""Liveness, readiness and metrics: open to anyone who can reach the port (no secrets in them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ingest_node.db import at_head
from ingest_node.deps import MetricsDep, SettingsDep
from services import bus

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process lives (a load balancer's liveness probe)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    """Ready when the broker answers and the database carries the latest migration."""
    checks = {"broker": bus.broker_reachable(settings), "database": at_head(request.app.state.engine)}
    return JSONResponse(checks, status_code=200 if all(checks.values()) else 503)


@router.get("/metrics")
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
