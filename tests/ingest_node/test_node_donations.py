"""The donation money path against a live node, the sandbox provider and the session broker."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import Node, donate, running_node, wait_for_types

pytestmark = pytest.mark.db


def test_happy_path_settles_and_publishes_donation_processed(node: Node) -> None:
    channel = node.new_channel()
    answer = donate(node, channel, amount_minor=250_000, currency="USD")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == {"donation_id", "status", "channel_id", "amount_minor", "currency", "created_at"}
    assert (created["status"], created["channel_id"], created["amount_minor"], created["currency"]) == (
        "pending",
        channel,
        250_000,
        "USD",
    )
    done = node.wait_status(created["donation_id"], "succeeded")
    assert done["status"] == "succeeded"
    events = wait_for_types(node.settings, created["donation_id"], {"donation.created", "donation.processed"})
    by_type = {e.event_type: e for e in events}
    processed = by_type["donation.processed"]
    assert processed.channel_id == channel
    assert processed.node_id == node.settings.node_id
    assert processed.payload["amount_minor"] == 250_000 and processed.payload["currency"] == "USD"
    assert processed.payload["payment_id"].startswith("pay_")
    assert datetime.fromisoformat(processed.payload["settled_at"]) == datetime.fromisoformat(
        done["settled_at"]
    )
    assert by_type["donation.created"].payload["message"] == "gg"
    # Audit trail: created, then succeeded, append-only.
    actions = node.column(
        "SELECT action FROM audit_log WHERE entity = :e ORDER BY id", e=f"donation:{created['donation_id']}"
    )
    assert actions == ["donation.created", "donation.succeeded"]


def test_declined_payment_fails_with_donation_failed(node: Node) -> None:
    channel = node.new_channel()
    created = donate(node, channel, token="tok_fail").json()
    done = node.wait_status(created["donation_id"], "failed")
    assert done["status"] == "failed" and "declined" in done["failure_reason"]
    events = wait_for_types(node.settings, created["donation_id"], {"donation.failed"})
    assert any(e.event_type == "donation.failed" and "declined" in e.payload["reason"] for e in events)


def _count(node: Node, channel: str) -> int:
    return int(node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel))


def test_same_key_same_body_replays_the_stored_answer(node: Node) -> None:
    channel = node.new_channel()
    key = f"key-{uuid.uuid4().hex}"
    first = donate(node, channel, key=key)
    second = donate(node, channel, key=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(node, channel) == 1


def test_same_key_other_body_is_refused(node: Node) -> None:
    channel = node.new_channel()
    key = f"key-{uuid.uuid4().hex}"
    assert donate(node, channel, key=key).status_code == 201
    other = donate(node, channel, key=key, amount_minor=999_900)
    assert other.status_code == 422
    assert "different request body" in other.json()["detail"]
    assert _count(node, channel) == 1


def test_concurrent_submits_with_one_key_make_one_donation(node: Node) -> None:
    channel = node.new_channel()
    key = f"key-{uuid.uuid4().hex}"
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        barrier.wait()
        answers.append(donate(node, channel, key=key))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _count(node, channel) == 1
    assert {a.status_code for a in answers} <= {201, 409}
    fresh = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
    assert len(fresh) == 1
    ids = {a.json()["donation_id"] for a in answers if a.status_code == 201}
    assert len(ids) == 1


BAD_BODIES: dict[str, dict[str, Any]] = {
    "unknown currency": {"currency": "GBP"},
    "below the minimum": {"amount_minor": 999},
    "above the maximum": {"amount_minor": 5_000_001},
    "negative": {"amount_minor": -1000},
    "zero": {"amount_minor": 0},
    "float": {"amount_minor": 1500.0},
    "fractional float": {"amount_minor": 1500.5},
    "bool": {"amount_minor": True},
    "numeric string": {"amount_minor": "1500"},
    "message too long": {"message": "x" * 301},
    "no payment token": {"payment_token": None},
    "unknown field": {"tip": 5},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_is_refused_and_writes_nothing(node: Node, case: str) -> None:
    channel = node.new_channel()
    key = f"key-{uuid.uuid4().hex}"
    answer = donate(node, channel, key=key, **BAD_BODIES[case])
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    assert _count(node, channel) == 0
    assert node.scalar("SELECT count(*) FROM idempotency_keys WHERE key = :k", k=key) == 0


def test_unknown_channel_is_404_with_a_clear_message(node: Node) -> None:
    key = f"key-{uuid.uuid4().hex}"
    answer = donate(node, "no-such-channel", key=key)
    assert answer.status_code == 404
    assert "no-such-channel" in answer.json()["detail"]
    assert node.scalar("SELECT count(*) FROM idempotency_keys WHERE key = :k", k=key) == 0


def test_malformed_json_is_422(node: Node) -> None:
    channel = node.new_channel()
    with node.client() as http:
        answer = http.post(
            "/api/v1/donations",
            content=b'{"channel_id": "' + channel.encode() + b'", "amount_minor": 1500',
            headers={"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
        )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"
    assert _count(node, channel) == 0


@pytest.mark.parametrize("key", [None, "short", "has a space in it", "x" * 129])
def test_missing_or_bad_idempotency_key_is_400(node: Node, key: str | None) -> None:
    channel = node.new_channel()
    body = {"channel_id": channel, "amount_minor": 150_000, "currency": "RUB", "payment_token": "tok_success"}
    headers = {} if key is None else {"Idempotency-Key": key}
    with node.client() as http:
        answer = http.post("/api/v1/donations", json=body, headers=headers)
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]
    assert _count(node, channel) == 0


def test_unknown_donation_is_404(node: Node) -> None:
    with node.client() as http:
        answer = http.get(f"/api/v1/donations/{uuid.uuid4()}")
    assert answer.status_code == 404


def test_provider_down_is_502_and_loses_nothing(node_settings: Settings, fresh_db: str) -> None:
    settings = node_settings.model_copy(
        update={
            "database_url": fresh_db,
            "node_port": free_port(),
            "payments_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "node_id": "node-without-provider",
        }
    )
    with running_node(settings) as lonely:
        channel = lonely.new_channel()
        key = f"key-{uuid.uuid4().hex}"
        answer = donate(lonely, channel, key=key)
        assert answer.status_code == 502
        body = answer.json()
        assert "payment service is unavailable" in body["detail"]
        donation = lonely.wait_status(body["donation_id"], "failed")
        assert donation["status"] == "failed"
        # The acknowledged attempt is kept, and the key answers the same again.
        again = donate(lonely, channel, key=key)
        assert again.status_code == 502 and again.headers["Idempotent-Replayed"] == "true"
        assert _count(lonely, channel) == 1
        events = wait_for_types(settings, body["donation_id"], {"donation.created", "donation.failed"})
        assert {e.node_id for e in events} == {"node-without-provider"}


def test_refused_payment_token_is_402(node: Node) -> None:
    channel = node.new_channel()
    answer = donate(node, channel, token="tok_stolen")
    assert answer.status_code == 402
    assert "unknown sandbox payment token" in answer.json()["detail"]
    assert node.wait_status(answer.json()["donation_id"], "failed")["status"] == "failed"


def test_sandbox_refuses_a_wrong_api_key(node: Node, node_settings: Settings) -> None:
    with httpx.Client(base_url=node_settings.payments_url) as http:
        answer = http.post("/v1/payments", json={}, headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
