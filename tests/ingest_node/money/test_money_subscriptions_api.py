"""Subscriptions against a live node, the sandbox provider and the session broker."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from ingest_node.money.payments import renew_due
from services.payments import PaymentClient
from tests.ingest_node.live_node import Node
from tests.ingest_node.money.money_helpers import active_subscription, outbox_types, post, subscribe, wait_for

pytestmark = pytest.mark.db


def test_subscribe_pays_the_first_month_and_emits_created(node: Node) -> None:
    channel = node.new_channel()
    sub, _token = active_subscription(node, channel, "vip")
    assert sub["tier"] == "vip" and sub["streak_months"] == 1 and sub["badge"] == "badge-vip"
    start, end = datetime.fromisoformat(sub["period_start"]), datetime.fromisoformat(sub["period_end"])
    assert timedelta(days=28) <= end - start <= timedelta(days=31)
    assert outbox_types(node, sub["subscription_id"]) == ["subscription.created"]
    charged = node.scalar(
        "SELECT amount_minor FROM money_charges WHERE subscription_id = :s AND status = 'succeeded'",
        s=sub["subscription_id"],
    )
    assert charged == 49_900
    actions = node.column(
        "SELECT action FROM audit_log WHERE entity = :e ORDER BY id",
        e=f"subscription:{sub['subscription_id']}",
    )
    assert actions == ["subscription.requested", "subscription.created"]


def test_replayed_key_does_not_charge_twice_and_hides_the_token(node: Node) -> None:
    channel = node.new_channel()
    body = {
        "channel_id": channel,
        "subscriber_id": "replayer",
        "tier": "supporter",
        "payment_token": "tok_success",
    }
    key = f"key-{uuid.uuid4().hex}"
    first = post(node, "/api/v1/subscriptions", body, key=key)
    second = post(node, "/api/v1/subscriptions", body, key=key)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert "manage_token" in first.json() and "manage_token" not in second.json()
    assert second.json()["subscription_id"] == first.json()["subscription_id"]
    other = post(node, "/api/v1/subscriptions", {**body, "tier": "vip"}, key=key)
    assert other.status_code == 422
    assert node.scalar("SELECT count(*) FROM subscriptions WHERE channel_id = :c", c=channel) == 1


BAD: dict[str, dict[str, Any]] = {
    "unknown tier": {"tier": "gold"},
    "a price chosen by the client": {"amount_minor": 1},
    "fractional amount": {"amount_minor": 199.5},
    "negative amount": {"amount_minor": -19_900},
    "tier as a number": {"tier": 2},
    "empty subscriber": {"subscriber_id": ""},
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_subscription_requests_are_refused(node: Node, case: str) -> None:
    channel = node.new_channel()
    answer = subscribe(node, channel, **BAD[case])
    assert answer.status_code == 422, answer.text
    assert node.scalar("SELECT count(*) FROM subscriptions WHERE channel_id = :c", c=channel) == 0


def test_unknown_channel_missing_key_and_second_live_subscription(node: Node) -> None:
    assert subscribe(node, "no-such-channel").status_code == 404
    channel = node.new_channel()
    with node.client() as http:
        answer = http.post(
            "/api/v1/subscriptions",
            json={"channel_id": channel, "subscriber_id": "a", "tier": "vip", "payment_token": "tok_success"},
        )
    assert answer.status_code == 400 and "Idempotency-Key" in answer.json()["detail"]
    subscribe(node, channel, user="twice")
    again = subscribe(node, channel, user="twice")
    assert again.status_code == 409 and "already has a subscription" in again.json()["detail"]


def test_declined_first_payment_leaves_a_failed_subscription(node: Node) -> None:
    channel = node.new_channel()
    created = subscribe(node, channel, payment_token="tok_fail").json()
    sub = wait_for(node, f"/api/v1/subscriptions/{created['subscription_id']}", "status", "failed")
    assert sub["status"] == "failed"
    assert outbox_types(node, created["subscription_id"]) == []


def test_cancel_keeps_perks_to_the_period_end_and_twice_is_409(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel)
    path = f"/api/v1/subscriptions/{sub['subscription_id']}/cancel"
    assert post(node, path, {}, token="wrong-token").status_code == 403
    assert post(node, path, {}).status_code == 403
    first = post(node, path, {}, token=token)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "cancelled" and first.json()["auto_renew"] is False
    assert first.json()["period_end"] == sub["period_end"]
    second = post(node, path, {}, token=token)
    assert second.status_code == 409
    assert second.json()["detail"] == "cannot cancel a cancelled subscription"
    assert outbox_types(node, sub["subscription_id"]) == ["subscription.created", "subscription.cancelled"]


def test_pause_blocks_upgrade_and_resume_gives_the_time_back(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel)
    base = f"/api/v1/subscriptions/{sub['subscription_id']}"
    assert post(node, f"{base}/pause", {}, token=token).json()["status"] == "paused"
    upgrade = post(node, f"{base}/tier", {"tier": "champion"}, token=token)
    assert upgrade.status_code == 409
    assert upgrade.json()["detail"] == "cannot upgrade a paused subscription"
    assert (
        node.scalar("SELECT count(*) FROM money_charges WHERE subscription_id = :s", s=sub["subscription_id"])
        == 1
    )
    resumed = post(node, f"{base}/resume", {}, token=token).json()
    assert resumed["status"] == "active"
    assert datetime.fromisoformat(resumed["period_end"]) >= datetime.fromisoformat(sub["period_end"])
    assert post(node, f"{base}/resume", {}, token=token).status_code == 409


def test_upgrade_charges_the_prorated_difference_then_switches(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel, "supporter")
    answer = post(
        node, f"/api/v1/subscriptions/{sub['subscription_id']}/tier", {"tier": "champion"}, token=token
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["credit_minor"] + body["charged_minor"] == body["new_for_rest_minor"]
    # Just after the start nearly the whole period is left: the charge is close to the full difference.
    assert 0 < body["charged_minor"] <= 99_900 - 19_900
    done = wait_for(node, f"/api/v1/subscriptions/{sub['subscription_id']}", "tier", "champion")
    assert done["tier"] == "champion" and done["period_end"] == sub["period_end"]
    assert outbox_types(node, sub["subscription_id"])[-1] == "subscription.upgraded"
    charged = node.scalar(
        "SELECT amount_minor FROM money_charges WHERE subscription_id = :s AND kind = 'sub_upgrade'",
        s=sub["subscription_id"],
    )
    assert charged == body["charged_minor"]


def test_downgrade_is_scheduled_for_the_renewal_without_money(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel, "champion")
    path = f"/api/v1/subscriptions/{sub['subscription_id']}/tier"
    answer = post(node, path, {"tier": "vip"}, token=token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["tier"] == "champion" and answer.json()["pending_tier"] == "vip"
    assert answer.json()["charged_minor"] == 0
    assert post(node, path, {"tier": "champion"}, token=token).status_code == 422
    assert post(node, path, {"tier": "platinum"}, token=token).status_code == 422


def test_gift_subscription_is_a_month_that_does_not_renew(node: Node) -> None:
    channel = node.new_channel()
    body = {
        "channel_id": channel,
        "recipient_id": "lucky",
        "gifter_id": "generous",
        "tier": "vip",
        "payment_token": "tok_success",
    }
    assert post(node, "/api/v1/subscriptions/gift", {**body, "recipient_id": "generous"}).status_code == 422
    answer = post(node, "/api/v1/subscriptions/gift", body)
    assert answer.status_code == 201, answer.text
    sub = wait_for(node, f"/api/v1/subscriptions/{answer.json()['subscription_id']}", "status", "active")
    assert sub["gifted_by"] == "generous" and sub["auto_renew"] is False and sub["subscriber_id"] == "lucky"
    assert outbox_types(node, sub["subscription_id"]) == ["subscription.gifted"]


def test_renewal_job_notices_then_charges_once_per_period(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel, "champion")
    sid = sub["subscription_id"]
    # A downgrade scheduled now applies at the renewal.
    assert post(node, f"/api/v1/subscriptions/{sid}/tier", {"tier": "vip"}, token=token).status_code == 200
    end = datetime.fromisoformat(sub["period_end"])
    client = PaymentClient(node.settings.payments_url, node.settings.payments_api_key.get_secret_value())
    try:
        before = renew_due(node.sessions, node.settings, client, now=end - timedelta(days=1))
        again = renew_due(node.sessions, node.settings, client, now=end - timedelta(days=1))
        assert sid in before.notices and sid not in again.notices and sid not in before.charged
        due = renew_due(node.sessions, node.settings, client, now=end + timedelta(seconds=1))
        rerun = renew_due(node.sessions, node.settings, client, now=end + timedelta(seconds=1))
    finally:
        client.close()
    assert sid in due.charged and sid not in rerun.charged
    renewed = wait_for(node, f"/api/v1/subscriptions/{sid}", "streak_months", 2)
    assert renewed["streak_months"] == 2 and renewed["tier"] == "vip" and renewed["pending_tier"] is None
    assert datetime.fromisoformat(renewed["period_start"]) == end
    renewals = node.column(
        "SELECT amount_minor FROM money_charges WHERE subscription_id = :s AND kind = 'sub_renew'", s=sid
    )
    assert renewals == [49_900]
    assert outbox_types(node, sid) == [
        "subscription.created",
        "subscription.downgraded",
        "subscription.renewal_notice",
        "subscription.renewed",
    ]


def test_cancelled_subscription_expires_at_the_period_end(node: Node) -> None:
    channel = node.new_channel()
    sub, token = active_subscription(node, channel)
    sid = sub["subscription_id"]
    assert post(node, f"/api/v1/subscriptions/{sid}/cancel", {}, token=token).status_code == 200
    end = datetime.fromisoformat(sub["period_end"])
    client = PaymentClient(node.settings.payments_url, node.settings.payments_api_key.get_secret_value())
    try:
        report = renew_due(node.sessions, node.settings, client, now=end + timedelta(seconds=1))
    finally:
        client.close()
    assert sid in report.expired and sid not in report.charged
    with node.client() as http:
        assert http.get(f"/api/v1/subscriptions/{sid}").json()["status"] == "expired"
    assert outbox_types(node, sid)[-1] == "subscription.expired"


def test_renewal_run_endpoint_is_admin_only(node: Node) -> None:
    with node.client() as http:
        assert http.post("/api/v1/subscriptions/renewals/run").status_code == 401
