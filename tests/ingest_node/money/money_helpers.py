"""Helpers of the money tests: subscribe, gift, wait for a state, read a subscription's events."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.ingest_node.live_node import WAIT_SECONDS, Node


def post(
    node: Node, path: str, body: dict[str, Any], *, key: str | None = None, token: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with node.client() as http:
        return http.post(path, json=body, headers=headers)


def subscribe(
    node: Node, channel: str, *, tier: str = "supporter", user: str | None = None, **extra: Any
) -> httpx.Response:
    body = {
        "channel_id": channel,
        "subscriber_id": user or f"u-{uuid.uuid4().hex[:10]}",
        "tier": tier,
        "payment_token": "tok_success",
        **extra,
    }
    return post(node, "/api/v1/subscriptions", body)


def wait_for(node: Node, path: str, field: str, wanted: Any) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    with node.client() as http:
        while True:
            body: dict[str, Any] = http.get(path).json()
            if body.get(field) == wanted or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def active_subscription(node: Node, channel: str, tier: str = "supporter") -> tuple[dict[str, Any], str]:
    answer = subscribe(node, channel, tier=tier)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    sub = wait_for(node, f"/api/v1/subscriptions/{created['subscription_id']}", "status", "active")
    assert sub["status"] == "active", sub
    return sub, created["manage_token"]


def outbox_types(node: Node, entity_id: str) -> list[str]:
    """Event types in the node's outbox whose payload names `entity_id`, in commit order."""
    import json

    rows = node.column("SELECT value FROM outbox ORDER BY id")
    found = []
    for raw in rows:
        env = json.loads(raw)
        if entity_id in (env["payload"].get("subscription_id"), env["payload"].get("gift_id")):
            found.append(env["event_type"])
    return found
