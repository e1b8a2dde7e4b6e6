"""Sponsorships against a live node: finance records a sponsor's paid invoice (admin API and `efir
sponsorships`), the outbox carries `sponsorship.paid` with the 90% split, a refund reverses it exactly,
writes are idempotent and audit-logged, and bad input is refused with a reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ingest_node.money.sponsorships import MAX_AMOUNT_MINOR
from services.cli import main as efir
from tests.ingest_node.live_node import Node, read_events

pytestmark = pytest.mark.db

SETTLED = "2026-11-20T09:30:00+00:00"


def body(**fields: Any) -> dict[str, Any]:
    return {
        "sponsor_name": "ООО Бренд",
        "title": "Интеграция в стриме 20 ноября",
        "amount_minor": 12_345,  # 90% = 11,110.5 -> 11,111 half-up; the platform keeps 1,234
        "currency": "RUB",
        "payment_reference": f"INV-{uuid.uuid4().hex[:10]}",
        "settled_at": SETTLED,
        **fields,
    }


def record(node: Node, channel: str, payload: dict[str, Any], *, key: str | None = None) -> httpx.Response:
    with node.admin() as http:
        return http.post(
            f"/api/v1/channels/{channel}/sponsorships",
            json=payload,
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
        )


def refund(node: Node, sponsorship_id: str, reason: str, *, key: str | None = None) -> httpx.Response:
    with node.admin() as http:
        return http.post(
            f"/api/v1/sponsorships/{sponsorship_id}/refund",
            json={"reason": reason},
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
        )


def outbox_events(node: Node, sponsorship_id: str) -> list[dict[str, Any]]:
    """The envelopes in the node's outbox about this sponsorship, in commit order."""
    envelopes = [json.loads(raw) for raw in node.column("SELECT value FROM outbox ORDER BY id")]
    return [e for e in envelopes if e["payload"].get("sponsorship_id") == sponsorship_id]


def audit_rows(node: Node, sponsorship_id: str) -> list[tuple[Any, ...]]:
    with node.sessions() as session:
        rows = session.execute(
            sa.text(
                "SELECT actor, action, currency, amount_before_minor, amount_after_minor, status_before, "
                "status_after FROM audit_log WHERE entity = :e ORDER BY id"
            ),
            {"e": f"sponsorship:{sponsorship_id}"},
        )
        return [tuple(r) for r in rows]


def test_recording_a_payment_emits_sponsorship_paid_with_the_exact_split(node: Node) -> None:
    channel = node.new_channel()
    sent = body(recorded_by="Мария из финансов")
    answer = record(node, channel, sent)
    assert answer.status_code == 201, answer.text
    row = answer.json()
    assert row["status"] == "paid" and row["channel_id"] == channel
    assert (row["amount_minor"], row["streamer_share_minor"], row["platform_fee_minor"]) == (
        12_345,
        11_111,
        1_234,
    )
    assert datetime.fromisoformat(row["settled_at"]) == datetime.fromisoformat(SETTLED)
    assert row["created_by"] == "Мария из финансов"

    [event] = outbox_events(node, row["sponsorship_id"])
    assert event["event_type"] == "sponsorship.paid" and event["channel_id"] == channel
    payload = event["payload"]
    assert payload["payment_id"] == sent["payment_reference"]
    assert (payload["amount_minor"], payload["currency"]) == (12_345, "RUB")
    assert (payload["streamer_share_minor"], payload["platform_fee_minor"]) == (11_111, 1_234)
    assert datetime.fromisoformat(payload["settled_at"]) == datetime.fromisoformat(SETTLED)
    assert (payload["sponsor_name"], payload["title"]) == (sent["sponsor_name"], sent["title"])
    assert audit_rows(node, row["sponsorship_id"]) == [
        ("admin:Мария из финансов", "sponsorship.paid", "RUB", 0, 12_345, None, "paid")
    ]

    # The relay publishes it on the `sponsorships` topic of the real broker.
    def arrived(events: list[Any]) -> bool:
        return any(e.payload.get("sponsorship_id") == row["sponsorship_id"] for e in events)

    published = read_events(node.settings, arrived, topic="sponsorships")
    assert [e.event_type for e in published if e.payload.get("sponsorship_id") == row["sponsorship_id"]] == [
        "sponsorship.paid"
    ]

    with node.admin() as http:
        listed = http.get(f"/api/v1/channels/{channel}/sponsorships").json()
        one = http.get(f"/api/v1/sponsorships/{row['sponsorship_id']}").json()
    assert listed == [row] and one == row


def test_same_key_replays_and_another_body_under_it_is_refused(node: Node) -> None:
    channel = node.new_channel()
    key = f"sp-{uuid.uuid4().hex}"
    sent = body()
    first = record(node, channel, sent, key=key)
    again = record(node, channel, sent, key=key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"

    reused = record(node, channel, {**sent, "amount_minor": 99_999}, key=key)
    assert reused.status_code == 422 and "different request body" in reused.json()["detail"]
    elsewhere = record(node, node.new_channel(), sent, key=key)  # the path is part of the request
    assert elsewhere.status_code == 422

    with node.admin() as http:
        missing = http.post(f"/api/v1/channels/{channel}/sponsorships", json=body())
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
    assert node.scalar("SELECT count(*) FROM sponsorships WHERE channel_id = :c", c=channel) == 1
    assert len(outbox_events(node, first.json()["sponsorship_id"])) == 1


def test_a_reference_is_recorded_once_per_channel(node: Node) -> None:
    channel = node.new_channel()
    sent = body()
    assert record(node, channel, sent).status_code == 201
    duplicate = record(node, channel, {**sent, "title": "a second try"})
    assert duplicate.status_code == 409
    assert sent["payment_reference"] in duplicate.json()["detail"]
    # Another channel may have an invoice with the same number.
    assert record(node, node.new_channel(), sent).status_code == 201


def test_refund_reverses_with_the_original_settlement_and_amount_once(node: Node) -> None:
    channel = node.new_channel()
    paid = record(node, channel, body(currency="USD", amount_minor=50_001)).json()
    key = f"rf-{uuid.uuid4().hex}"
    answer = refund(node, paid["sponsorship_id"], "the integration did not air", key=key)
    assert answer.status_code == 200, answer.text
    refunded = answer.json()
    assert refunded["status"] == "refunded" and refunded["refund_reason"] == "the integration did not air"
    assert refunded["refunded_at"] is not None and refunded["refunded_by"] == "admin"

    paid_event, refund_event = outbox_events(node, paid["sponsorship_id"])
    assert refund_event["event_type"] == "sponsorship.refunded"
    undo, original = refund_event["payload"], paid_event["payload"]
    for field in ("payment_id", "amount_minor", "currency", "settled_at", "streamer_share_minor"):
        assert undo[field] == original[field], field
    assert (undo["amount_minor"], undo["streamer_share_minor"], undo["platform_fee_minor"]) == (
        50_001,
        45_001,
        5_000,
    )
    assert undo["reason"] == "the integration did not air"
    assert audit_rows(node, paid["sponsorship_id"])[-1] == (
        "admin",
        "sponsorship.refunded",
        "USD",
        50_001,
        0,
        "paid",
        "refunded",
    )

    replayed = refund(node, paid["sponsorship_id"], "the integration did not air", key=key)
    assert replayed.status_code == 200 and replayed.json() == refunded
    assert replayed.headers["Idempotent-Replayed"] == "true"
    twice = refund(node, paid["sponsorship_id"], "again")
    assert twice.status_code == 409 and "already refunded" in twice.json()["detail"]
    assert len(outbox_events(node, paid["sponsorship_id"])) == 2
    assert refund(node, "no-such-sponsorship", "why").status_code == 404


def test_only_the_admin_may_call(node: Node) -> None:
    channel = node.new_channel()
    sponsorship_id = record(node, channel, body()).json()["sponsorship_id"]
    calls = [
        ("POST", f"/api/v1/channels/{channel}/sponsorships", body()),
        ("POST", f"/api/v1/sponsorships/{sponsorship_id}/refund", {"reason": "x"}),
        ("GET", f"/api/v1/channels/{channel}/sponsorships", None),
        ("GET", f"/api/v1/sponsorships/{sponsorship_id}", None),
    ]
    for headers in ({}, {"Authorization": "Bearer not-the-admin-token"}):
        with node.client(headers={"Idempotency-Key": uuid.uuid4().hex, **headers}) as http:
            for method, path, payload in calls:
                answer = http.request(method, path, json=payload)
                assert answer.status_code == 401, (method, path, answer.text)
    assert (
        node.scalar("SELECT status FROM sponsorships WHERE sponsorship_id = :s", s=sponsorship_id) == "paid"
    )
    assert node.scalar("SELECT count(*) FROM sponsorships WHERE channel_id = :c", c=channel) == 1


FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "zero": ({"amount_minor": 0}, "greater than 0"),
    "negative": ({"amount_minor": -100}, "greater than 0"),
    "fractional": ({"amount_minor": 100.5}, "valid integer"),
    "numeric string": ({"amount_minor": "100"}, "valid integer"),
    "bool": ({"amount_minor": True}, "valid integer"),
    "above the cap": ({"amount_minor": MAX_AMOUNT_MINOR + 1}, "less than or equal"),
    "unknown currency": ({"currency": "GBP"}, "RUB"),
    "future settlement": ({"settled_at": FUTURE}, "in the future"),
    "settlement without zone": ({"settled_at": "2026-11-20T09:30:00"}, "timezone"),
    "blank sponsor": ({"sponsor_name": "   "}, "blank"),
    "control characters": ({"title": "a\x00b"}, "control characters"),
    "unknown field": ({"streamer_share_minor": 1}, "Extra inputs"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_refused_with_a_reason(node: Node, case: str) -> None:
    channel = node.new_channel()
    fields, reason = BAD[case]
    answer = record(node, channel, body(**fields))
    assert answer.status_code == 422, answer.text
    assert reason in json.dumps(answer.json()["detail"]), answer.text
    assert node.scalar("SELECT count(*) FROM sponsorships WHERE channel_id = :c", c=channel) == 0


def test_the_cap_itself_is_allowed_and_unknown_channels_are_404(node: Node) -> None:
    channel = node.new_channel()
    assert record(node, channel, body(amount_minor=MAX_AMOUNT_MINOR)).status_code == 201
    missing = record(node, "no-such-channel", body())
    assert missing.status_code == 404 and "no-such-channel" in missing.json()["detail"]
    with node.admin() as http:
        assert http.get("/api/v1/channels/no-such-channel/sponsorships").status_code == 404


def test_efir_sponsorships_cli_records_lists_and_refunds(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("EFIR_ADMIN_TOKEN", node.settings.admin_token.get_secret_value())
    channel = node.new_channel()
    reference = f"INV-{uuid.uuid4().hex[:8]}"

    def record_args(amount: str) -> list[str]:
        return [
            *("sponsorships", "record", channel, "--sponsor", "Brand LLC", "--title", "Intro spot"),
            *("--amount", amount, "--currency", "RUB", "--reference", reference, "--by", "alice"),
            *("--node-url", node.url),
        ]

    fractional = runner.invoke(efir, record_args("1.005"))
    assert fractional.exit_code == 2 and "fraction of a minor unit" in fractional.output

    args = record_args("150000.00")
    recorded = runner.invoke(efir, args)
    assert recorded.exit_code == 0, recorded.output
    lines = dict(line.split(":", 1) for line in recorded.output.splitlines() if ":" in line)
    sponsorship_id = lines["Sponsorship"].strip()
    assert lines["Amount"].strip() == "150 000.00 RUB" and lines["To streamer"].strip() == "135 000.00 RUB"
    assert node.scalar(
        "SELECT amount_minor FROM sponsorships WHERE sponsorship_id = :s", s=sponsorship_id
    ) == (15_000_000)
    assert (
        node.scalar("SELECT created_by FROM sponsorships WHERE sponsorship_id = :s", s=sponsorship_id)
        == "alice"
    )

    rerun = runner.invoke(efir, args)  # the same command again: replayed, not recorded twice
    assert rerun.exit_code == 0 and "Already recorded" in rerun.output
    assert node.scalar("SELECT count(*) FROM sponsorships WHERE channel_id = :c", c=channel) == 1

    listed = runner.invoke(efir, ["sponsorships", "list", channel, "--node-url", node.url])
    assert listed.exit_code == 0 and sponsorship_id in listed.output and reference in listed.output

    refund_args = [
        "sponsorships",
        "refund",
        sponsorship_id,
        "--reason",
        "did not air",
        "--node-url",
        node.url,
    ]
    refunded = runner.invoke(efir, refund_args)
    assert refunded.exit_code == 0, refunded.output
    assert "refunded" in refunded.output
    refund_args[4] = "second thoughts"  # another command, so another key: refused as already refunded
    again = runner.invoke(efir, refund_args)
    assert again.exit_code == 1 and "409" in again.output and "already refunded" in again.output
    assert [e["event_type"] for e in outbox_events(node, sponsorship_id)] == [
        "sponsorship.paid",
        "sponsorship.refunded",
    ]
