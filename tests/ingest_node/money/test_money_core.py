"""Money core against a live node, the sandbox provider and the session broker: reversals of
subscription and gift charges, gifts to banned users, gift subscriptions to N random viewers, the
renewal schedule, and the split stamped on donation events."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from ingest_node.chat.models import ChatMessage, ChatRestriction, MessageStatus
from ingest_node.models import utcnow
from ingest_node.money import renewal_scheduler
from ingest_node.money.donation_rules import fingerprint
from services.payments import PaymentClient
from tests.ingest_node.live_node import WAIT_SECONDS, Node, donate, signed_webhook, wait_for_types
from tests.ingest_node.money.money_helpers import active_subscription, outbox_types, post, subscribe, wait_for

pytestmark = pytest.mark.db


def _user(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _outbox(node: Node, **match: str) -> list[dict[str, Any]]:
    """Outbox envelopes whose payload has every `match` field equal, in commit order."""
    found = []
    for raw in node.column("SELECT value FROM outbox ORDER BY id"):
        env = json.loads(raw)
        if all(env["payload"].get(k) == v for k, v in match.items()):
            found.append(env)
    return found


def _wait(check: Any) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _ban(node: Node, channel: str, user: str) -> None:
    with node.sessions() as session, session.begin():
        session.add(ChatRestriction(channel_id=channel, user_id=user, kind="ban", until=None, actor="mod"))


def _chat(node: Node, channel: str, *users: str, minutes_ago: int = 0) -> None:
    """Visible chat messages by `users` (what a chat post leaves in the chat's table)."""
    at = utcnow() - timedelta(minutes=minutes_ago)
    with node.sessions() as session, session.begin():
        for user in users:
            session.add(
                ChatMessage(
                    message_id=str(uuid.uuid4()),
                    channel_id=channel,
                    user_id=user,
                    display_name=user,
                    text="hi",
                    status=MessageStatus.VISIBLE,
                    created_at=at,
                )
            )


# ---- reversals of subscription and gift charges -------------------------------------------------------


def test_charged_back_subscription_ends_reverses_the_share_and_flags_the_payer(node: Node) -> None:
    channel, user = node.new_channel(), _user()
    created = subscribe(node, channel, user=user, payment_token="tok_chargeback").json()
    sid = created["subscription_id"]
    sub = wait_for(node, f"/api/v1/subscriptions/{sid}", "status", "expired")
    assert sub["status"] == "expired" and sub["auto_renew"] is False
    _wait(lambda: len(outbox_types(node, sid)) >= 3)
    assert outbox_types(node, sid) == [
        "subscription.created",
        "subscription.charged_back",
        "subscription.expired",
    ]
    by_type = {e["event_type"]: e for e in _outbox(node, subscription_id=sid)}
    credit, reversal = by_type["subscription.created"], by_type["subscription.charged_back"]
    payload = reversal["payload"]
    assert payload["amount_minor"] == credit["payload"]["amount_minor"] == 19_900
    assert payload["payment_id"] == credit["payload"]["payment_id"]
    # 70% to the streamer, the one rounding rule: the reversal takes back exactly the credit's split.
    assert (payload["streamer_share_minor"], payload["platform_fee_minor"]) == (13_930, 5_970)
    assert payload["charge_kind"] == "sub_create" and reversal["user_id"] == user
    charge_id = payload["charge_id"]
    audit = node.column(
        "SELECT action || ':' || coalesce(amount_before_minor, -1) || '>' "
        "|| coalesce(amount_after_minor, -1) FROM audit_log WHERE entity = :e ORDER BY id",
        e=f"charge:{charge_id}",
    )
    assert audit == [
        "charge.sub_create.created:-1>0",
        "charge.sub_create.succeeded:0>19900",
        "charge.sub_create.charged_back:19900>0",
        "payer.flagged:19900>0",
    ]
    assert node.column("SELECT kind FROM flagged_donors WHERE donation_id = :c", c=charge_id)[0] == "user"
    # The saved card is flagged too (by this chargeback, or already by an earlier one of the same card).
    card = fingerprint("tok_chargeback", node.settings)
    assert (
        node.scalar("SELECT count(*) FROM flagged_donors WHERE kind = 'card' AND fingerprint = :f", f=card)
        == 1
    )
    again = subscribe(node, node.new_channel(), user=user)
    assert again.status_code == 403 and "chargeback" in again.json()["detail"]


def test_refunded_gift_leaves_the_collection_with_a_reversal_but_no_flag(node: Node) -> None:
    channel, sender, receiver = node.new_channel(), _user("s"), _user("r")
    body = {
        "channel_id": channel,
        "item_id": "golden_sword",
        "quantity": 1,
        "sender_id": sender,
        "recipient_id": receiver,
        "payment_token": "tok_refund",
    }
    created = post(node, "/api/v1/gifts", body).json()
    gift = wait_for(node, f"/api/v1/gifts/{created['gift_id']}", "status", "refunded")
    assert gift["status"] == "refunded"
    _wait(lambda: len(outbox_types(node, created["gift_id"])) >= 2)
    assert outbox_types(node, created["gift_id"]) == ["gift.sent", "gift.refunded"]
    (refund,) = [e for e in _outbox(node, gift_id=created["gift_id"]) if e["event_type"] == "gift.refunded"]
    assert refund["payload"]["amount_minor"] == 99_900
    assert refund["payload"]["streamer_share_minor"] + refund["payload"]["platform_fee_minor"] == 99_900
    with node.client() as http:
        assert http.get(f"/api/v1/gifts/collection/{receiver}").json()["items"] == []
    charge_id = node.scalar("SELECT charge_id FROM money_charges WHERE gift_id = :g", g=created["gift_id"])
    assert node.scalar("SELECT count(*) FROM flagged_donors WHERE donation_id = :c", c=charge_id) == 0
    # A refund flags nobody: the sender may still send.
    assert post(node, "/api/v1/gifts", {**body, "payment_token": "tok_success"}).status_code == 201


def _charge_webhook(node: Node, charge_id: str, kind: str, **data: Any) -> dict[str, Any]:
    row = node.column(
        "SELECT reference || '|' || coalesce(provider_payment_id, '') || '|' || amount_minor "
        "FROM money_charges WHERE charge_id = :c",
        c=charge_id,
    )[0]
    reference, payment_id, amount = row.split("|")
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "type": kind,
        "created": int(time.time()),
        "data": {
            "payment_id": payment_id,
            "reference": reference,
            "amount_minor": int(amount),
            "currency": "RUB",
            "reason": "",
            **data,
        },
    }


def _send(node: Node, body: dict[str, Any]) -> Any:
    raw, headers = signed_webhook(node.settings, body)
    with node.client() as http:
        return http.post("/api/v1/payments/webhook", content=raw, headers=headers)


def test_replayed_reversal_webhook_reverses_once_and_bad_ones_change_nothing(node: Node) -> None:
    channel = node.new_channel()
    sub, _token = active_subscription(node, channel)
    sid = sub["subscription_id"]
    charge_id = node.scalar("SELECT charge_id FROM money_charges WHERE subscription_id = :s", s=sid)
    refund = _charge_webhook(node, charge_id, "payment.refunded", reason="requested by the subscriber")
    first, replay = _send(node, refund), _send(node, refund)
    assert first.status_code == 200 and first.json()["status"] == "applied"
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    # A second, different reversal of the same charge is an invalid transition: nothing changes.
    chargeback = _send(node, _charge_webhook(node, charge_id, "payment.charged_back"))
    assert chargeback.status_code == 409
    unknown = _charge_webhook(node, charge_id, "payment.refunded")
    unknown["data"]["reference"] = f"sub:{uuid.uuid4()}"
    assert _send(node, unknown).status_code == 404
    assert outbox_types(node, sid) == [
        "subscription.created",
        "subscription.refunded",
        "subscription.expired",
    ]
    assert node.scalar("SELECT status FROM subscriptions WHERE subscription_id = :s", s=sid) == "expired"
    assert node.scalar("SELECT count(*) FROM flagged_donors WHERE donation_id = :c", c=charge_id) == 0


# ---- gifts to banned users --------------------------------------------------------------------------


def test_a_gift_to_a_banned_user_is_refused_and_nothing_is_charged(node: Node) -> None:
    channel, banned = node.new_channel(), _user("banned")
    _ban(node, channel, banned)
    body = {
        "channel_id": channel,
        "item_id": "golden_sword",
        "sender_id": _user("s"),
        "recipient_id": banned,
        "payment_token": "tok_success",
    }
    answer = post(node, "/api/v1/gifts", body)
    assert answer.status_code == 409, answer.text
    assert "banned" in answer.json()["detail"] and banned in answer.json()["detail"]
    gift_sub = post(
        node,
        "/api/v1/subscriptions/gift",
        {
            "channel_id": channel,
            "recipient_id": banned,
            "gifter_id": _user("g"),
            "tier": "vip",
            "payment_token": "tok_success",
        },
    )
    assert gift_sub.status_code == 409 and "banned" in gift_sub.json()["detail"]
    assert node.scalar("SELECT count(*) FROM money_charges WHERE channel_id = :c", c=channel) == 0
    # The same user is welcome in a channel that did not ban them.
    assert post(node, "/api/v1/gifts", {**body, "channel_id": node.new_channel()}).status_code == 201


# ---- gift subscriptions to N random viewers --------------------------------------------------------


def _random_gift(node: Node, channel: str, gifter: str, count: Any, key: str | None = None) -> Any:
    body = {
        "channel_id": channel,
        "gifter_id": gifter,
        "tier": "supporter",
        "count": count,
        "payment_token": "tok_success",
    }
    return post(node, "/api/v1/subscriptions/gift/random", body, key=key)


def test_random_gift_subscriptions_reach_present_eligible_viewers_with_one_charge(node: Node) -> None:
    channel, gifter = node.new_channel(), _user("gifter")
    present = [_user("v") for _ in range(5)]
    banned, subscriber, stale = _user("banned"), _user("sub"), _user("stale")
    _chat(node, channel, gifter, banned, subscriber, *present)
    _chat(node, channel, stale, minutes_ago=node.settings.gift_subs_presence_minutes + 5)
    _ban(node, channel, banned)
    assert subscribe(node, channel, user=subscriber).status_code == 201
    key = f"key-{uuid.uuid4().hex}"
    answer = _random_gift(node, channel, gifter, 3, key)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    recipients = [s["subscriber_id"] for s in body["subscriptions"]]
    assert len(set(recipients)) == 3 and set(recipients) <= set(present)
    assert body["amount_minor"] == 3 * 19_900
    replay = _random_gift(node, channel, gifter, 3, key)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert [s["subscriber_id"] for s in replay.json()["subscriptions"]] == recipients
    for sub in body["subscriptions"]:
        done = wait_for(node, f"/api/v1/subscriptions/{sub['subscription_id']}", "status", "active")
        assert done["status"] == "active" and done["gifted_by"] == gifter and done["auto_renew"] is False
    charges = node.column("SELECT amount_minor FROM money_charges WHERE charge_id = :c", c=body["charge_id"])
    assert charges == [59_700]
    gifted = _wait(
        lambda: [e for e in _outbox(node, gifted_by=gifter) if e["event_type"] == "subscription.gifted"]
    )
    assert sorted(e["payload"]["subscriber_id"] for e in gifted) == sorted(recipients)
    assert sum(e["payload"]["amount_minor"] for e in gifted) == 59_700
    # Only two eligible viewers are left (the rest already hold a gift): four is refused, nothing charged.
    more = _random_gift(node, channel, gifter, 4)
    assert more.status_code == 409 and "only 2 eligible" in more.json()["detail"]
    assert node.scalar("SELECT count(*) FROM money_charges WHERE channel_id = :c", c=channel) == 2


@pytest.mark.parametrize("count", [0, -1, 51, 2.5, "3", True, 10**30])
def test_random_gift_count_out_of_range_is_refused(node: Node, count: Any) -> None:
    channel = node.new_channel()
    _chat(node, channel, *[_user("v") for _ in range(3)])
    answer = _random_gift(node, channel, _user("g"), count)
    assert answer.status_code == 422, answer.text
    assert node.scalar("SELECT count(*) FROM money_charges WHERE channel_id = :c", c=channel) == 0


def test_random_gift_to_an_unknown_channel_is_404(node: Node) -> None:
    assert _random_gift(node, "no-such-channel", _user("g"), 1).status_code == 404


# ---- renewal schedule ------------------------------------------------------------------------------


def test_due_subscription_renews_once_when_two_rounds_race(node: Node) -> None:
    channel = node.new_channel()
    sub, _token = active_subscription(node, channel)
    sid = sub["subscription_id"]
    when = datetime.fromisoformat(sub["period_end"]) + timedelta(seconds=1)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def round_() -> None:
        client = PaymentClient(node.settings.payments_url, node.settings.payments_api_key.get_secret_value())
        try:
            barrier.wait()
            renewal_scheduler.run_round(node.sessions, node.settings, client, now=when)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=round_) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    renewed = wait_for(node, f"/api/v1/subscriptions/{sid}", "streak_months", 2)
    assert renewed["streak_months"] == 2
    renewals = node.column(
        "SELECT amount_minor FROM money_charges WHERE subscription_id = :s AND kind = 'sub_renew'", s=sid
    )
    assert renewals == [19_900]
    time.sleep(0.5)  # a second settlement, were there one, would have landed by now
    assert outbox_types(node, sid).count("subscription.renewed") == 1


def test_the_node_runs_renewal_rounds_on_its_own(node: Node) -> None:
    scheduler = node.app.state.renewals
    assert node.settings.subscription_renewal_interval_seconds > 0
    assert _wait(lambda: scheduler.rounds >= 1)


# ---- the split on donation events ---------------------------------------------------------------------


def test_donation_events_carry_the_split_and_the_donor_fee(node: Node) -> None:
    channel = node.new_channel()
    created = donate(node, channel, amount_minor=100_001, token="tok_refund").json()
    events = wait_for_types(
        node.settings, created["donation_id"], {"donation.processed", "donation.refunded"}
    )
    by_type = {e.event_type: e.payload for e in events}
    for kind in ("donation.processed", "donation.refunded"):
        payload = by_type[kind]
        # 85% of 100,001 kopecks is 85,000.85, half-up to 85,001; the remainder is the platform's.
        assert (payload["streamer_share_minor"], payload["platform_fee_minor"]) == (85_001, 15_000)
        assert payload["donor_fee_minor"] == 0
    # The settled event carries the edge's keyed fingerprints (the fraud model's inputs), never raw values.
    processed = by_type["donation.processed"]
    stored = node.scalar(
        "SELECT ip_hash || ':' || card_hash FROM donation_edges WHERE donation_id = :d",
        d=created["donation_id"],
    )
    assert f"{processed['ip_hash']}:{processed['card_hash']}" == stored
    assert "127.0.0.1" not in str(processed) and "tok_refund" not in str(processed)
