"""Helpers of the interactive-donation tests: a channel with an owner token, paid requests, waits."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from tests.ingest_node.live_node import WAIT_SECONDS, Node, donate
from tests.ingest_node.money.money_helpers import post


def chat_token(node: Node, user_id: str) -> str:
    with node.admin() as http:
        answer = http.post("/api/v1/chat/tokens", json={"user_id": user_id, "display_name": user_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def channel_with_owner(node: Node) -> tuple[str, str, str]:
    """A new channel, its owner's chat token and a plain viewer's chat token."""
    channel = node.new_channel()
    owner = f"own-{uuid.uuid4().hex[:8]}"
    with node.admin() as http:
        answer = http.put(f"/api/v1/chat/{channel}/roles/{owner}", json={"role": "owner"})
    assert answer.status_code == 200, answer.text
    return channel, chat_token(node, owner), chat_token(node, f"v-{uuid.uuid4().hex[:8]}")


def call(node: Node, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with node.client() as http:
        return http.request(method, path, headers=headers, **kw)


def open_queue(node: Node, channel: str, owner: str, **fields: Any) -> None:
    body = {"open": True, "currency": "RUB", "min_amount_minor": 5000, **fields}
    answer = call(node, "PUT", f"/api/v1/channels/{channel}/requests/settings", owner, json=body)
    assert answer.status_code == 200, answer.text


def request_body(channel: str, **fields: Any) -> dict[str, Any]:
    return {
        "channel_id": channel,
        "kind": "music",
        "title": "Кино — Группа крови",
        "requester_name": "fan",
        "amount_minor": 10_000,
        "currency": "RUB",
        "payment_token": "tok_success",
        **fields,
    }


def wait_json(node: Node, path: str, done: Any) -> dict[str, Any]:
    """GET `path` until `done(body)` holds (or the generous wait runs out; the caller asserts)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with node.client() as http:
        while True:
            body: dict[str, Any] = http.get(path).json()
            if done(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)


def queued_request(node: Node, channel: str, **fields: Any) -> str:
    answer = post(node, "/api/v1/requests", request_body(channel, **fields))
    assert answer.status_code == 201, answer.text
    request_id = str(answer.json()["request_id"])
    body = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["status"] == "queued")
    assert body["status"] == "queued", body
    return request_id


def settled_donation(node: Node, channel: str, **fields: Any) -> str:
    answer = donate(node, channel, **fields)
    assert answer.status_code == 201, answer.text
    donation_id = str(answer.json()["donation_id"])
    assert node.wait_status(donation_id, "succeeded")["status"] == "succeeded"
    return donation_id


def outbox_events(node: Node, channel: str, prefix: str) -> list[dict[str, Any]]:
    """The channel's outbox envelopes whose type starts with `prefix`, in commit order."""
    rows = node.column("SELECT value FROM outbox WHERE key = :c ORDER BY id", c=channel)
    envelopes = [json.loads(r) for r in rows]
    return [e for e in envelopes if e["event_type"].startswith(prefix)]
