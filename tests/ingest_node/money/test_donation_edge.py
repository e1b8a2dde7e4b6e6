"""Per-channel donation rules, the donor's fee, message moderation, the review queue and edge fraud rules,
against a live node of its own (fresh database, strict edge settings) and the session's sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from ingest_node.money.donation_rules import donor_fee, quote
from ingest_node.money.edge_guard import RateLimiter, TokenBucket, VelocityRule, velocity_rules
from services.revenue import RevenueSource, split_for
from services.settings import Settings
from tests.conftest import free_port, fresh_database_url
from tests.ingest_node.live_node import Node, ServerThread, running_node, wait_for_types

BLOCKED_IP = "203.0.113.66"


@pytest.fixture(scope="module")
def edge_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    for url in fresh_database_url(tmp_path_factory.mktemp("edge")):
        port = free_port()
        settings = node_settings.model_copy(
            update={
                "node_id": "edge-node",
                "node_port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "database_url": url,
                "donation_edge_exempt_ips": [],
                "donation_ip_burst": 4,
                "donation_ip_per_minute": 0.5,
                "donation_donor_burst": 50,
                "donation_velocity_max_small": 3,
                "donation_velocity_small_minor": 5000,
                "donation_blocked_ips": [BLOCKED_IP],
                "donation_blocked_tokens": ["tok_stolen"],
            }
        )
        with running_node(settings) as started:
            yield started


def _ip() -> str:
    """A fresh client address per test (sent through the trusted loopback proxy)."""
    n = uuid.uuid4().int
    return f"198.51.{n % 250}.{(n >> 8) % 250 + 1}"


def give(node: Node, channel: str, *, ip: str, device: str | None = None, **fields: Any) -> httpx.Response:
    body = {
        "channel_id": channel,
        "amount_minor": 150_000,
        "currency": "RUB",
        "message": "gg",
        "donor_name": "viewer",
        "payment_token": "tok_success",
        **fields,
    }
    headers = {"Idempotency-Key": uuid.uuid4().hex, "X-Forwarded-For": ip}
    if device:
        headers["X-Device-Id"] = device
    with node.client() as http:
        return http.post("/api/v1/donations", json=body, headers=headers)


def set_rules(node: Node, channel: str, **rules: Any) -> httpx.Response:
    with node.admin() as http:
        return http.put(f"/api/v1/channels/{channel}/donation-settings", json=rules)


def alerts_for(node: Node, donation_id: str) -> list[str]:
    return node.column("SELECT event_type FROM overlay_alerts WHERE body LIKE :d", d=f"%{donation_id}%")


# ---- pure rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1000, 1001, 150_001, 4_999_999, 5_000_000])
def test_fee_quote_is_exact_to_the_kopeck(amount: int) -> None:
    q = quote(amount, cover_fee=True)
    split = split_for(RevenueSource.DONATION, amount)
    assert q.fee_minor == split.platform_minor == donor_fee(amount)
    assert q.charged_minor == amount + q.fee_minor
    assert q.streamer_minor == split.streamer_minor and q.streamer_minor + q.fee_minor == amount
    assert quote(amount, cover_fee=False).charged_minor == amount


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(capacity=2, per_second=0.5, now=100.0)
    assert bucket.take(100.0) == 0 and bucket.take(100.0) == 0
    assert bucket.take(100.0) == pytest.approx(2.0)
    assert bucket.take(101.0) == pytest.approx(1.0)  # half a token back after one second
    assert bucket.take(102.0) == 0
    limiter = RateLimiter(capacity=1, per_minute=6)
    assert limiter.take("a", 0.0) == 0 and limiter.take("a", 0.0) == 10 and limiter.take("b", 0.0) == 0


def test_velocity_rules_are_data(base_settings: Settings) -> None:
    rules = velocity_rules(base_settings.model_copy(update={"donation_velocity_max_small": 7}))
    assert [r.key for r in rules] == ["ip_hash", "card_hash", "device_hash"]
    assert all(isinstance(r, VelocityRule) and r.max_count == 7 for r in rules)
    assert rules[0].window == timedelta(seconds=base_settings.donation_velocity_window_seconds)


# ---- per-channel settings ----------------------------------------------------------------------------


@pytest.mark.db
def test_channel_narrows_the_range_and_refuses_outside_it(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    answer = set_rules(
        edge_node,
        channel,
        limits={"RUB": {"min_minor": 10_000, "max_minor": 100_000}},
        presets={"RUB": [50_000]},
    )
    assert answer.status_code == 200, answer.text
    got = edge_node.client().get(f"/api/v1/channels/{channel}/donation-settings").json()
    assert got["currencies"]["RUB"] == {"min_minor": 10_000, "max_minor": 100_000, "presets": [50_000]}
    assert got["currencies"]["USD"]["min_minor"] == 1000  # other currencies keep the global range
    ip = _ip()
    for amount in (9_999, 100_001):
        refused = give(edge_node, channel, ip=ip, amount_minor=amount)
        assert refused.status_code == 422
        assert "between 10000 and 100000" in refused.json()["detail"]
    assert edge_node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel) == 0
    ok = give(edge_node, channel, ip=ip, amount_minor=100_000)
    assert ok.status_code == 201 and ok.json()["status"] == "pending"


@pytest.mark.db
@pytest.mark.parametrize(
    "rules, words",
    [
        ({"limits": {"RUB": {"min_minor": 500, "max_minor": 100_000}}}, "within the global"),
        ({"limits": {"RUB": {"min_minor": 10_000, "max_minor": 6_000_000}}}, "within the global"),
        ({"limits": {"RUB": {"min_minor": 20_000, "max_minor": 10_000}}}, "above max_minor"),
        ({"limits": {"RUB": {"min_minor": 10_000, "max_minor": 20_000}}, "presets": {"RUB": [5]}}, "outside"),
        ({"limits": {"XYZ": {"min_minor": 10_000, "max_minor": 20_000}}}, "XYZ"),
    ],
)
def test_bad_channel_settings_are_422(edge_node: Node, rules: dict[str, Any], words: str) -> None:
    channel = edge_node.new_channel()
    answer = set_rules(edge_node, channel, **rules)
    assert answer.status_code == 422 and words in answer.text


@pytest.mark.db
def test_settings_need_the_admin(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    with edge_node.client() as http:
        answer = http.put(f"/api/v1/channels/{channel}/donation-settings", json={"requires_approval": True})
        assert answer.status_code == 401
        assert http.get(f"/api/v1/channels/{channel}/donations/held").status_code == 401


@pytest.mark.db
def test_donor_covers_the_fee_and_the_streamer_share_is_of_the_donation(edge_node: Node) -> None:
    plain = edge_node.new_channel()
    refused = give(edge_node, plain, ip=_ip(), cover_fee=True)
    assert refused.status_code == 422 and "cover the fee" in refused.json()["detail"]
    channel = edge_node.new_channel()
    assert set_rules(edge_node, channel, donor_covers_fee=True).status_code == 200
    amount = 150_001
    fee = split_for(RevenueSource.DONATION, amount).platform_minor
    shown = edge_node.client().get(
        f"/api/v1/channels/{channel}/donation-quote",
        params={"amount_minor": amount, "currency": "RUB", "cover_fee": "true"},
    )
    assert shown.json() == {
        "amount_minor": amount,
        "currency": "RUB",
        "fee_minor": fee,
        "charged_minor": amount + fee,
        "streamer_minor": amount - fee,
    }
    created = give(edge_node, channel, ip=_ip(), amount_minor=amount, cover_fee=True).json()
    assert (created["amount_minor"], created["fee_minor"], created["charged_minor"]) == (
        amount,
        fee,
        amount + fee,
    )
    done = edge_node.wait_status(created["donation_id"], "succeeded")  # the webhook carried amount + fee
    assert done["status"] == "succeeded" and done["amount_minor"] == amount
    events = wait_for_types(edge_node.settings, created["donation_id"], {"donation.processed"})
    processed = next(e for e in events if e.event_type == "donation.processed")
    assert processed.payload["amount_minor"] == amount  # downstream credits 85% of the donation itself


# ---- message moderation and the review queue ---------------------------------------------------------


@pytest.mark.db
def test_profane_message_is_hidden_from_the_alert_but_the_donation_is_processed(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    created = give(edge_node, channel, ip=_ip(), message="fuck you streamer").json()
    assert created["status"] == "pending"
    done = edge_node.wait_status(created["donation_id"], "succeeded")
    assert done["status"] == "succeeded" and done["message"] == ""
    assert alerts_for(edge_node, created["donation_id"]) == ["donation.processed"]
    assert "fuck" not in str(
        edge_node.scalar(
            "SELECT body FROM overlay_alerts WHERE body LIKE :d", d=f"%{created['donation_id']}%"
        )
    )
    kept = edge_node.scalar(
        "SELECT hidden_message FROM donation_edges WHERE donation_id = :d", d=created["donation_id"]
    )
    assert kept == "fuck you streamer"


@pytest.mark.db
def test_held_for_approval_then_approved_is_charged_and_alerts(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    assert set_rules(edge_node, channel, requires_approval=True).status_code == 200
    created = give(edge_node, channel, ip=_ip(), message="hello from chat").json()
    assert created["status"] == "held"
    donation_id = created["donation_id"]
    with edge_node.admin() as http:
        held = http.get(f"/api/v1/channels/{channel}/donations/held").json()
        assert [(h["donation_id"], h["held_reason"], h["message"]) for h in held] == [
            (donation_id, "manual_approval", "hello from chat")
        ]
        assert alerts_for(edge_node, donation_id) == []
        assert (
            edge_node.scalar(
                "SELECT provider_payment_id FROM donations WHERE donation_id = :d", d=donation_id
            )
            is None
        )
        approved = http.post(f"/api/v1/channels/{channel}/donations/{donation_id}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "pending", approved.text
        again = http.post(f"/api/v1/channels/{channel}/donations/{donation_id}/approve")
        assert again.status_code == 409
    assert edge_node.wait_status(donation_id, "succeeded")["status"] == "succeeded"
    types = {
        e.event_type
        for e in wait_for_types(edge_node.settings, donation_id, {"donation.held", "donation.processed"})
    }
    assert {"donation.created", "donation.held", "donation.processed"} <= types
    assert alerts_for(edge_node, donation_id) == ["donation.processed"]
    assert (
        edge_node.scalar("SELECT held_token FROM donation_edges WHERE donation_id = :d", d=donation_id)
        is None
    )


@pytest.mark.db
def test_rejected_donation_is_never_charged_and_never_alerts(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    created = give(edge_node, channel, ip=_ip(), message="see spam-site.xyz now").json()  # links: hold
    assert created["status"] == "held"
    donation_id = created["donation_id"]
    with edge_node.admin() as http:
        rejected = http.post(f"/api/v1/channels/{channel}/donations/{donation_id}/reject")
        assert rejected.status_code == 200
        assert http.post(f"/api/v1/channels/{channel}/donations/{donation_id}/approve").status_code == 409
        other = edge_node.new_channel()
        assert http.post(f"/api/v1/channels/{other}/donations/{donation_id}/reject").status_code == 404
    got = edge_node.wait_status(donation_id, "failed")
    assert got["status"] == "failed" and "rejected" in got["failure_reason"]
    events = wait_for_types(edge_node.settings, donation_id, {"donation.failed"})
    assert "donation.processed" not in {e.event_type for e in events}
    assert alerts_for(edge_node, donation_id) == []
    assert (
        edge_node.scalar("SELECT provider_payment_id FROM donations WHERE donation_id = :d", d=donation_id)
        is None
    )


# ---- fraud at the edge -------------------------------------------------------------------------------


@pytest.mark.db
def test_rate_limit_per_ip_is_429_with_retry_after(edge_node: Node) -> None:
    channel, ip = edge_node.new_channel(), _ip()
    answers = [give(edge_node, channel, ip=ip, amount_minor=150_000 + i) for i in range(5)]
    assert [a.status_code for a in answers[:4]] == [201] * 4
    assert answers[4].status_code == 429
    assert int(answers[4].headers["Retry-After"]) >= 1
    assert "too many" in answers[4].json()["detail"]
    assert give(edge_node, channel, ip=_ip()).status_code == 201  # another address is not limited
    assert edge_node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel) == 5


@pytest.mark.db
def test_blocked_ip_and_card_are_403(edge_node: Node) -> None:
    channel = edge_node.new_channel()
    assert give(edge_node, channel, ip=BLOCKED_IP).status_code == 403
    stolen = give(edge_node, channel, ip=_ip(), payment_token="tok_stolen")
    assert stolen.status_code == 403 and "blocked" in stolen.json()["detail"]
    assert edge_node.scalar("SELECT count(*) FROM donations WHERE channel_id = :c", c=channel) == 0


@pytest.mark.db
def test_card_testing_burst_from_one_card_and_device_is_held(edge_node: Node) -> None:
    channel, device = edge_node.new_channel(), f"dev-{uuid.uuid4().hex}"
    answers = [give(edge_node, channel, ip=_ip(), device=device, amount_minor=1000 + i) for i in range(4)]
    assert [a.json()["status"] for a in answers] == ["pending", "pending", "pending", "held"]
    held_id = answers[3].json()["donation_id"]
    events = wait_for_types(edge_node.settings, held_id, {"donation.held"})
    held = next(e for e in events if e.event_type == "donation.held")
    assert held.payload["reason"] in {"card_testing_card", "card_testing_device"}  # same card and device
    assert (
        edge_node.scalar("SELECT provider_payment_id FROM donations WHERE donation_id = :d", d=held_id)
        is None
    )
    # A large payment from the same device is not card testing.
    assert (
        give(edge_node, channel, ip=_ip(), device=device, amount_minor=150_000).json()["status"] == "pending"
    )


@pytest.mark.db
def test_chargeback_flags_the_donor_and_holds_their_next_donation(edge_node: Node) -> None:
    channel, device = edge_node.new_channel(), f"dev-{uuid.uuid4().hex}"
    first = give(edge_node, channel, ip=_ip(), device=device, payment_token="tok_chargeback").json()
    assert edge_node.wait_status(first["donation_id"], "charged_back")["status"] == "charged_back"
    events = wait_for_types(
        edge_node.settings, first["donation_id"], {"chargeback.received", "donation.charged_back"}
    )
    assert {"chargeback.received", "donation.charged_back"} <= {e.event_type for e in events}
    kinds = edge_node.column(
        "SELECT kind FROM flagged_donors WHERE donation_id = :d ORDER BY kind", d=first["donation_id"]
    )
    assert kinds == ["card", "device"]
    again = give(edge_node, channel, ip=_ip(), device=device, payment_token="tok_success").json()
    assert again["status"] == "held"
    with edge_node.admin() as http:
        held = http.get(f"/api/v1/channels/{channel}/donations/held").json()
    assert [h["held_reason"] for h in held] == ["flagged_donor"]
