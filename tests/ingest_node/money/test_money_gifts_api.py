"""Virtual gifts against a live node: catalogue, paid sending with gift.sent, collection, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.ingest_node.live_node import Node
from tests.ingest_node.money.money_helpers import outbox_types, post, wait_for

pytestmark = pytest.mark.db


def gift_body(channel: str, **fields: Any) -> dict[str, Any]:
    return {
        "channel_id": channel,
        "item_id": "golden_sword",
        "quantity": 2,
        "sender_id": "giver",
        "sender_name": "Giver",
        "recipient_id": None,
        "message": "за победу",
        "payment_token": "tok_success",
        **fields,
    }


def test_catalogue_lists_items_with_rarity_and_price(node: Node) -> None:
    with node.client() as http:
        items = http.get("/api/v1/gifts/catalogue").json()
    by_id = {i["id"]: i for i in items}
    assert by_id["dragon_egg"]["rarity"] == "legendary" and by_id["dragon_egg"]["price_minor"] == 499_900
    assert {i["kind"] for i in items} == {"emote", "animation", "sound", "game_item"}


def test_sending_a_gift_is_paid_then_sent_and_collected(node: Node) -> None:
    channel = node.new_channel()
    receiver = f"r-{uuid.uuid4().hex[:8]}"
    answer = post(node, "/api/v1/gifts", gift_body(channel, recipient_id=receiver))
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["amount_minor"] == 2 * 99_900 and created["status"] == "pending"
    done = wait_for(node, f"/api/v1/gifts/{created['gift_id']}", "status", "succeeded")
    assert done["status"] == "succeeded"
    assert outbox_types(node, created["gift_id"]) == ["gift.sent"]
    with node.client() as http:
        held = http.get(f"/api/v1/gifts/collection/{receiver}").json()["items"]
    assert [(i["item"]["id"], i["quantity"]) for i in held] == [("golden_sword", 2)]
    actions = node.column(
        "SELECT action FROM audit_log WHERE entity = (SELECT 'charge:' || charge_id FROM money_charges "
        "WHERE gift_id = :g) ORDER BY id",
        g=created["gift_id"],
    )
    assert actions == ["charge.gift.created", "charge.gift.succeeded"]


def test_declined_gift_is_not_sent(node: Node) -> None:
    channel = node.new_channel()
    created = post(node, "/api/v1/gifts", gift_body(channel, payment_token="tok_fail")).json()
    assert wait_for(node, f"/api/v1/gifts/{created['gift_id']}", "status", "failed")["status"] == "failed"
    assert outbox_types(node, created["gift_id"]) == []


def test_same_key_replays_without_a_second_charge(node: Node) -> None:
    channel = node.new_channel()
    key = f"gift-{uuid.uuid4().hex}"
    first = post(node, "/api/v1/gifts", gift_body(channel), key=key)
    second = post(node, "/api/v1/gifts", gift_body(channel), key=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert post(node, "/api/v1/gifts", gift_body(channel, quantity=3), key=key).status_code == 422
    assert node.scalar("SELECT count(*) FROM gift_purchases WHERE channel_id = :c", c=channel) == 1


BAD: dict[str, tuple[dict[str, Any], int]] = {
    "unknown item": ({"item_id": "unicorn"}, 422),
    "fractional quantity": ({"quantity": 1.5}, 422),
    "negative quantity": ({"quantity": -1}, 422),
    "zero quantity": ({"quantity": 0}, 422),
    "overflowing quantity": ({"quantity": 10**30}, 422),
    "a price chosen by the client": ({"amount_minor": 1}, 422),
    "unknown channel": ({"channel_id": "no-such-channel"}, 404),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_gifts_are_refused_and_nothing_is_stored(node: Node, case: str) -> None:
    channel = node.new_channel()
    fields, code = BAD[case]
    answer = post(node, "/api/v1/gifts", gift_body(channel, **fields))
    assert answer.status_code == code, answer.text
    assert answer.json()["detail"]
    assert node.scalar("SELECT count(*) FROM gift_purchases WHERE channel_id = :c", c=channel) == 0
