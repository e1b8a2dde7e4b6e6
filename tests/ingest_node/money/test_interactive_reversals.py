"""Refunds and chargebacks of boosts and requests against a live node and the sandbox provider: each
settled payment taken back emits one reversal of its credit (original settlement time, the donations'
split), a chargeback flags the payer like a subscription's or gift's does, and a flagged payer's next
boost or request is refused before anything is charged."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.ingest_node.chat.chat_client import Client
from tests.ingest_node.live_node import WAIT_SECONDS, Node, signed_webhook
from tests.ingest_node.money.interactive_helpers import (
    call,
    channel_with_owner,
    open_queue,
    outbox_events,
    queued_request,
    request_body,
    wait_json,
)
from tests.ingest_node.money.money_helpers import post

pytestmark = pytest.mark.db

REVERSAL_FIELDS = ("amount_minor", "currency", "payment_id", "settled_at")


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _boost(node: Node, channel: str, **fields: Any) -> str:
    body = {
        "channel_id": channel,
        "amount_minor": 30_000,
        "currency": "RUB",
        "message": "Привет!",
        "display_name": "Казанец",
        "payment_token": "tok_success",
        **fields,
    }
    answer = post(node, "/api/v1/boosts", body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["boost_id"])


def _charge_of(node: Node, table: str, column: str, entity_id: str) -> str:
    return str(node.scalar(f"SELECT charge_id FROM {table} WHERE {column} = :e", e=entity_id))


def _webhook(node: Node, charge_id: str, kind: str, reason: str = "") -> dict[str, Any]:
    """A provider webhook about the charge as the Payment Service would send it (signed by `_send`)."""
    reference = node.scalar("SELECT reference FROM money_charges WHERE charge_id = :c", c=charge_id)
    payment_id = node.scalar(
        "SELECT provider_payment_id FROM money_charges WHERE charge_id = :c", c=charge_id
    )
    amount = node.scalar("SELECT amount_minor FROM money_charges WHERE charge_id = :c", c=charge_id)
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "type": kind,
        "created": int(time.time()),
        "data": {
            "payment_id": payment_id,
            "reference": reference,
            "amount_minor": int(amount),
            "currency": "RUB",
            "reason": reason,
        },
    }


def _send(node: Node, body: dict[str, Any]) -> Any:
    raw, headers = signed_webhook(node.settings, body)
    with node.client() as http:
        return http.post("/api/v1/payments/webhook", content=raw, headers=headers)


def _audit(node: Node, charge_id: str) -> list[str]:
    return node.column(
        "SELECT action || ':' || coalesce(amount_before_minor, -1) || '>' "
        "|| coalesce(amount_after_minor, -1) FROM audit_log WHERE entity = :e ORDER BY id",
        e=f"charge:{charge_id}",
    )


def _flags(node: Node, charge_id: str) -> list[str]:
    return node.column("SELECT kind FROM flagged_donors WHERE donation_id = :c", c=charge_id)


def _only(node: Node, channel: str, event_type: str) -> dict[str, Any]:
    found = outbox_events(node, channel, event_type)
    assert [e["event_type"] for e in found] == [event_type], found
    return found[0]


def _same_settlement(reversal: dict[str, Any], credit: dict[str, Any]) -> None:
    """The reversal repeats its credit's money and ORIGINAL settlement time, at the donations' 85%."""
    for field in REVERSAL_FIELDS:
        assert reversal["payload"][field] == credit["payload"][field], field
    amount = reversal["payload"]["amount_minor"]
    share = {30_000: (25_500, 4_500), 10_000: (8_500, 1_500)}[amount]
    assert (reversal["payload"]["streamer_share_minor"], reversal["payload"]["platform_fee_minor"]) == share


# ---- boosts ------------------------------------------------------------------------------------------


def test_a_refunded_boost_emits_one_reversal_and_flags_nobody(node: Node) -> None:
    channel, payer = node.new_channel(), _user("b")
    boost_id = _boost(node, channel, user_id=payer, payment_token="tok_refund")
    body = wait_json(node, f"/api/v1/boosts/{boost_id}", lambda b: b["status"] == "refunded")
    assert body["status"] == "refunded"
    credit = _only(node, channel, "boost.pinned")
    reversal = _only(node, channel, "boost.refunded")
    assert reversal["user_id"] == payer
    payload = reversal["payload"]
    assert (payload["boost_id"], payload["payer_id"], payload["charge_id"]) == (
        boost_id,
        payer,
        credit["payload"]["charge_id"],
    )
    assert payload["reason"] == "refunded (sandbox tok_refund)"
    _same_settlement(reversal, credit)
    charge_id = payload["charge_id"]
    assert _flags(node, charge_id) == []
    assert "payer.flagged:30000>0" not in _audit(node, charge_id)
    # A refund flags nobody: the payer may boost again.
    assert post(node, "/api/v1/boosts", {**_boost_body(channel), "user_id": payer}).status_code == 201


def _boost_body(channel: str) -> dict[str, Any]:
    return {
        "channel_id": channel,
        "amount_minor": 30_000,
        "currency": "RUB",
        "message": "ещё раз",
        "payment_token": "tok_success",
    }


def test_a_charged_back_boost_flags_the_payer_whose_next_boost_and_request_are_refused(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    payer = _user("cb")
    boost_id = _boost(node, channel, user_id=payer, payment_token="tok_chargeback")
    body = wait_json(node, f"/api/v1/boosts/{boost_id}", lambda b: b["status"] == "charged_back")
    assert body["status"] == "charged_back"
    credit = _only(node, channel, "boost.pinned")
    reversal = _only(node, channel, "boost.charged_back")
    assert (reversal["payload"]["boost_id"], reversal["payload"]["payer_id"]) == (boost_id, payer)
    _same_settlement(reversal, credit)
    charge_id = _charge_of(node, "boosted_messages", "boost_id", boost_id)
    assert _audit(node, charge_id) == [
        "charge.boost.created:-1>0",
        "charge.boost.succeeded:0>30000",
        "charge.boost.charged_back:30000>0",
        "payer.flagged:30000>0",
        "chat.unpinned:30000>0",
    ]
    assert _flags(node, charge_id) == ["user"]

    again = post(node, "/api/v1/boosts", {**_boost_body(channel), "user_id": payer})
    assert again.status_code == 403 and "chargeback" in again.json()["detail"]
    request = post(node, "/api/v1/requests", request_body(channel, requester_id=payer))
    assert request.status_code == 403 and "chargeback" in request.json()["detail"]
    assert node.scalar("SELECT count(*) FROM boosted_messages WHERE user_id = :u", u=payer) == 1
    assert node.scalar("SELECT count(*) FROM media_requests WHERE requester_id = :u", u=payer) == 0
    # Only that payer: anyone else still boosts and requests.
    assert post(node, "/api/v1/boosts", {**_boost_body(channel), "user_id": _user("ok")}).status_code == 201
    assert post(node, "/api/v1/requests", request_body(channel, requester_id=_user("ok"))).status_code == 201


def test_a_replayed_boost_reversal_webhook_emits_nothing_new(node: Node) -> None:
    channel, payer = node.new_channel(), _user("rp")
    boost_id = _boost(node, channel, user_id=payer)
    assert (
        wait_json(node, f"/api/v1/boosts/{boost_id}", lambda b: b["status"] == "pinned")["status"] == "pinned"
    )
    charge_id = _charge_of(node, "boosted_messages", "boost_id", boost_id)
    chargeback = _webhook(node, charge_id, "payment.charged_back", reason="fraudulent")
    first, replay = _send(node, chargeback), _send(node, chargeback)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    # Another reversal of the same (already reversed) charge is an invalid transition.
    assert _send(node, _webhook(node, charge_id, "payment.refunded")).status_code == 409
    types = [e["event_type"] for e in outbox_events(node, channel, "boost.")]
    assert types == ["boost.pinned", "boost.charged_back"]
    assert _only(node, channel, "boost.charged_back")["payload"]["reason"] == "fraudulent"
    assert _flags(node, charge_id) == ["user"]
    assert _audit(node, charge_id).count("payer.flagged:30000>0") == 1


@pytest.mark.parametrize(
    ("webhook", "status"), [("payment.charged_back", "charged_back"), ("payment.refunded", "refunded")]
)
def test_a_reversed_boost_is_unpinned_for_viewers_at_once(node: Node, webhook: str, status: str) -> None:
    """The pin comes down when the money is taken back, not when its paid time runs out: watchers get
    `unpinned` while the pin would still be showing, joiners and the pins list no longer see it, and the
    unpin is an event and an audit row on the charge, once."""
    assert node.app.state.chat_fanout.ready.wait(WAIT_SECONDS)
    channel, payer = node.new_channel(), _user("up")
    with Client(node, channel) as watcher:
        assert watcher.wait(lambda f: f["type"] == "pins")["pins"] == []
        boost_id = _boost(node, channel, user_id=payer)
        pin = watcher.wait(lambda f: f["type"] == "pinned")["pin"]
        assert pin["text"] == "Привет!"
        charge_id = _charge_of(node, "boosted_messages", "boost_id", boost_id)
        reversal = _webhook(node, charge_id, webhook, reason="disputed")
        assert _send(node, reversal).json()["status"] == "applied"
        assert watcher.wait(lambda f: f["type"] == "unpinned")["id"] == pin["id"]
        assert datetime.now(UTC) < datetime.fromisoformat(pin["expires_at"])  # early, not the expiry
        assert _send(node, reversal).json()["status"] == "duplicate"
        with Client(node, channel) as late:
            assert late.wait(lambda f: f["type"] == "pins")["pins"] == []
        watcher.ping()
        assert not [f for f in watcher.frames if f["type"] in ("pinned", "unpinned")]  # sent once
    assert wait_json(node, f"/api/v1/boosts/{boost_id}", lambda b: True)["status"] == status
    with node.client() as http:
        assert http.get(f"/api/v1/chat/{channel}/pins").json()["pins"] == []
    unpinned = _only(node, channel, "chat.unpinned")
    assert unpinned["payload"] == {
        "pin_id": pin["id"],
        "source_event_id": f"boost:{charge_id}",
        "reason": f"boost.{status}",
    }
    trail = _audit(node, charge_id)
    assert trail[-1] == "chat.unpinned:30000>0" and trail.count("chat.unpinned:30000>0") == 1
    assert f"charge.boost.{status}:30000>0" in trail


# ---- requests ----------------------------------------------------------------------------------------


def test_a_refunded_queued_request_leaves_the_queue_with_one_reversal(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    payer = _user("rq")
    answer = post(
        node, "/api/v1/requests", request_body(channel, requester_id=payer, payment_token="tok_refund")
    )
    assert answer.status_code == 201, answer.text
    request_id = answer.json()["request_id"]
    body = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["status"] == "reversed")
    assert body["status"] == "reversed"
    credit = _only(node, channel, "request.submitted")
    reversal = _only(node, channel, "request.refunded")
    assert reversal["user_id"] == payer
    assert (reversal["payload"]["request_id"], reversal["payload"]["payer_id"]) == (request_id, payer)
    assert reversal["payload"]["charge_id"] == credit["payload"]["charge_id"]
    _same_settlement(reversal, credit)
    assert _flags(node, reversal["payload"]["charge_id"]) == []
    with node.client() as http:
        assert http.get(f"/api/v1/channels/{channel}/requests").json()["queue"] == []


def test_a_charged_back_queued_request_flags_the_requester(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    payer = _user("rc")
    answer = post(
        node, "/api/v1/requests", request_body(channel, requester_id=payer, payment_token="tok_chargeback")
    )
    request_id = answer.json()["request_id"]
    body = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["status"] == "reversed")
    assert body["status"] == "reversed"
    credit = _only(node, channel, "request.submitted")
    reversal = _only(node, channel, "request.charged_back")
    assert reversal["payload"]["request_id"] == request_id
    _same_settlement(reversal, credit)
    charge_id = _charge_of(node, "media_requests", "request_id", request_id)
    assert _audit(node, charge_id)[-2:] == ["charge.request.charged_back:10000>0", "payer.flagged:10000>0"]
    assert _flags(node, charge_id) == ["user"]
    refused = post(node, "/api/v1/requests", request_body(channel, requester_id=payer))
    assert refused.status_code == 403
    boost = post(node, "/api/v1/boosts", {**_boost_body(channel), "user_id": payer})
    assert boost.status_code == 403


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [("payment.refunded", "request.refunded"), ("payment.charged_back", "request.charged_back")],
)
def test_a_played_request_taken_back_stays_played_and_reverses_once(
    node: Node, kind: str, event_type: str
) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    payer = _user("pl")
    request_id = queued_request(node, channel, requester_id=payer)
    played = call(node, "POST", f"/api/v1/channels/{channel}/requests/{request_id}/play", owner)
    assert played.status_code == 200, played.text
    charge_id = _charge_of(node, "media_requests", "request_id", request_id)
    webhook = _webhook(node, charge_id, kind)
    first, replay = _send(node, webhook), _send(node, webhook)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    with node.client() as http:
        assert http.get(f"/api/v1/requests/{request_id}").json()["status"] == "played"
    types = [e["event_type"] for e in outbox_events(node, channel, "request.")]
    assert types == ["request.submitted", "request.played", event_type]
    reversal = _only(node, channel, event_type)
    _same_settlement(reversal, _only(node, channel, "request.submitted"))
    assert reversal["payload"]["reason"] == ("charged back" if "charged" in kind else "refunded")
    assert _flags(node, charge_id) == (["user"] if "charged" in kind else [])


def test_a_skip_with_refund_results_in_one_refund_event_when_the_provider_confirms(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    payer = _user("sk")
    request_id = queued_request(node, channel, requester_id=payer)
    skipped = call(
        node, "POST", f"/api/v1/channels/{channel}/requests/{request_id}/skip", owner, json={"refund": True}
    )
    assert skipped.status_code == 200 and skipped.json()["refund"] == "requested", skipped.text
    body = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["refund"] == "refunded")
    assert body["refund"] == "refunded" and body["status"] == "skipped"
    types = [e["event_type"] for e in outbox_events(node, channel, "request.")]
    assert types == ["request.submitted", "request.skipped", "request.refunded"]
    assert _only(node, channel, "request.skipped")["payload"]["refund"] is True
    reversal = _only(node, channel, "request.refunded")
    assert (reversal["payload"]["request_id"], reversal["payload"]["payer_id"]) == (request_id, payer)
    _same_settlement(reversal, _only(node, channel, "request.submitted"))
    # A second refund webhook (another id) for the same payment changes nothing.
    charge_id = _charge_of(node, "media_requests", "request_id", request_id)
    assert _send(node, _webhook(node, charge_id, "payment.refunded")).status_code == 409
    assert len(outbox_events(node, channel, "request.refunded")) == 1
    assert _flags(node, charge_id) == []


def test_a_skip_refund_whose_webhook_lands_before_the_skip_ends_skipped_with_one_refund(node: Node) -> None:
    """The provider's refund webhook can be handled between the skip's refund call and its last
    transaction (CI saw it: a 409 although the money went back). The skip marks the refund requested
    first, so the webhook leaves the request queued for the skip to end, not reversed."""
    from ingest_node.money import interactive
    from ingest_node.money.interactive_models import RequestStatus

    channel, owner, _ = channel_with_owner(node)
    open_queue(node, channel, owner)
    request_id = queued_request(node, channel, title="raced")
    with node.sessions() as session, session.begin():  # the skip's first transaction
        interactive.locked_request(session, channel, request_id).refund = "requested"
    charge_id = _charge_of(node, "media_requests", "request_id", request_id)
    assert (
        _send(node, _webhook(node, charge_id, "payment.refunded", "skipped by the streamer")).status_code
        == 200
    )
    raced = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["refund"] == "refunded")
    assert (raced["status"], raced["refund"]) == ("queued", "refunded")  # not "reversed"
    with node.sessions() as session, session.begin():  # the skip's last transaction
        found = interactive.locked_request(session, channel, request_id)
        interactive.finish(session, node.settings, found, RequestStatus.SKIPPED, actor=owner, refund=True)
    done = wait_json(node, f"/api/v1/requests/{request_id}", lambda b: b["status"] == "skipped")
    assert (done["status"], done["refund"]) == ("skipped", "refunded")
    assert [e["payload"]["request_id"] for e in outbox_events(node, channel, "request.refunded")] == [
        request_id
    ]
    skipped = outbox_events(node, channel, "request.skipped")
    assert [(e["payload"]["request_id"], e["payload"]["refund"]) for e in skipped] == [(request_id, True)]
