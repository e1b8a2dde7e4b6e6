"""Payment webhooks: signatures, replays, the donation state machine, refunds and chargebacks."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.ingest_node.live_node import Node, donate, signed_webhook, wait_for_types, webhook_body

pytestmark = pytest.mark.db


def _settled(node: Node, token: str = "tok_success", wanted: str = "succeeded") -> tuple[dict[str, Any], str]:
    channel = node.new_channel()
    created = donate(node, channel, token=token).json()
    donation = node.wait_status(created["donation_id"], wanted)
    assert donation["status"] == wanted
    payment_id = node.scalar(
        "SELECT provider_payment_id FROM donations WHERE donation_id = :d", d=donation["donation_id"]
    )
    return donation, payment_id


def _post(node: Node, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    with node.client() as http:
        return http.post("/api/v1/payments/webhook", content=raw, headers=headers)


def _footprint(node: Node, donation_id: str) -> tuple[Any, ...]:
    """Everything a webhook may change about a donation."""
    return (
        node.scalar("SELECT status FROM donations WHERE donation_id = :d", d=donation_id),
        node.scalar("SELECT count(*) FROM audit_log WHERE entity = :e", e=f"donation:{donation_id}"),
        node.scalar("SELECT count(*) FROM outbox WHERE value LIKE :v", v=f"%{donation_id}%"),
        node.scalar("SELECT count(*) FROM webhook_events WHERE donation_id = :d", d=donation_id),
    )


def test_replayed_webhook_changes_nothing(node: Node) -> None:
    donation, payment_id = _settled(node)
    body = webhook_body(donation, payment_id, "payment.refunded", reason="customer asked")
    raw, headers = signed_webhook(node.settings, body)
    first = _post(node, raw, headers)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    after_first = _footprint(node, donation["donation_id"])
    assert after_first[0] == "refunded"
    replay = _post(node, *signed_webhook(node.settings, raw))
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert _footprint(node, donation["donation_id"]) == after_first


@pytest.mark.parametrize("how", ["forged", "missing", "garbled", "stale", "future", "tampered body"])
def test_unauthenticated_webhooks_are_401_and_change_nothing(node: Node, how: str) -> None:
    donation, payment_id = _settled(node)
    body = webhook_body(donation, payment_id, "payment.refunded")
    raw, headers = signed_webhook(node.settings, body)
    tolerance = node.settings.webhook_tolerance_seconds
    if how == "forged":
        raw, headers = signed_webhook(node.settings, body, secret="not-the-secret")
    elif how == "missing":
        headers.pop("Efir-Signature")
    elif how == "garbled":
        headers["Efir-Signature"] = "v1=deadbeef"
    elif how == "stale":
        raw, headers = signed_webhook(node.settings, body, ts=int(time.time()) - tolerance - 60)
    elif how == "future":
        raw, headers = signed_webhook(node.settings, body, ts=int(time.time()) + tolerance + 60)
    else:
        raw = raw.replace(b'"payment.refunded"', b'"payment.charged_back"')
    before = _footprint(node, donation["donation_id"])
    answer = _post(node, raw, headers)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("webhook refused")
    assert _footprint(node, donation["donation_id"]) == before


def test_malformed_webhook_is_422(node: Node) -> None:
    raw, headers = signed_webhook(node.settings, b'{"id": "evt_x", "type": "payment.exploded"}')
    answer = _post(node, raw, headers)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "malformed webhook body"
    raw, headers = signed_webhook(node.settings, b"{not json")
    assert _post(node, raw, headers).status_code == 422


def test_unknown_payment_is_404(node: Node) -> None:
    fake = {"donation_id": "01a00000-0000-7000-8000-000000000000", "amount_minor": 1000, "currency": "RUB"}
    raw, headers = signed_webhook(node.settings, webhook_body(fake, "pay_unknown", "payment.succeeded"))
    answer = _post(node, raw, headers)
    assert answer.status_code == 404
    assert "pay_unknown" in answer.json()["detail"]


def test_invalid_transition_is_409(node: Node) -> None:
    donation, payment_id = _settled(node, "tok_fail", "failed")
    before = _footprint(node, donation["donation_id"])
    raw, headers = signed_webhook(node.settings, webhook_body(donation, payment_id, "payment.succeeded"))
    answer = _post(node, raw, headers)
    assert answer.status_code == 409
    assert "failed donation" in answer.json()["detail"]
    assert _footprint(node, donation["donation_id"]) == before


def test_amount_mismatch_is_refused(node: Node) -> None:
    donation, payment_id = _settled(node)
    body = webhook_body(donation, payment_id, "payment.refunded", amount_minor=donation["amount_minor"] + 1)
    answer = _post(node, *signed_webhook(node.settings, body))
    assert answer.status_code == 422
    assert node.wait_status(donation["donation_id"], "succeeded")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("token", "status", "event_type"),
    [
        ("tok_refund", "refunded", "donation.refunded"),
        ("tok_chargeback", "charged_back", "donation.charged_back"),
    ],
)
def test_refund_and_chargeback_reverse_with_the_original_settlement(
    node: Node, token: str, status: str, event_type: str
) -> None:
    donation, _ = _settled(node, token, status)
    events = wait_for_types(node.settings, donation["donation_id"], {"donation.processed", event_type})
    by_type = {e.event_type: e for e in events}
    reversal, processed = by_type[event_type], by_type["donation.processed"]
    assert reversal.payload["settled_at"] == processed.payload["settled_at"]
    assert datetime.fromisoformat(reversal.payload["settled_at"]) == datetime.fromisoformat(
        donation["settled_at"]
    )
    assert reversal.payload["amount_minor"] == processed.payload["amount_minor"] == donation["amount_minor"]
    audit = node.column(
        "SELECT amount_after_minor FROM audit_log WHERE entity = :e ORDER BY id",
        e=f"donation:{donation['donation_id']}",
    )
    assert audit == [0, donation["amount_minor"], 0]


def test_operator_refund_through_the_sandbox(node: Node, node_settings: Settings) -> None:
    donation, payment_id = _settled(node)
    key = node_settings.payments_api_key.get_secret_value()
    with httpx.Client(
        base_url=node_settings.payments_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        assert http.post(f"/v1/payments/{payment_id}/refund").status_code == 200
        again = http.post(f"/v1/payments/{payment_id}/chargeback")
        assert again.status_code == 409
    assert node.wait_status(donation["donation_id"], "refunded")["status"] == "refunded"
    wait_for_types(node.settings, donation["donation_id"], {"donation.refunded"})


def test_audit_log_is_append_only(node: Node) -> None:
    import sqlalchemy as sa

    _settled(node)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), node.sessions() as session:
        session.execute(sa.text("UPDATE audit_log SET amount_after_minor = 0"))
        session.commit()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), node.sessions() as session:
        session.execute(sa.text("DELETE FROM audit_log"))
        session.commit()
