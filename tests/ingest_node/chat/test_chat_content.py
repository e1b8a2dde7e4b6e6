"""Chat content against a live node with real WebSocket clients: emotes (global, channel, by tier),
stickers, pinned boosted messages, donation and subscription highlights, friends from the social
service (a test double speaking its HTTP contract), IP-fingerprint blocks on ban, and bad input."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed

from ingest_node.chat.pins import pin_boosted
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.chat.chat_client import Client, command, set_role, token
from tests.ingest_node.chat.social_double import SocialServiceDouble
from tests.ingest_node.live_node import WAIT_SECONDS, Node, ServerThread, donate, running_node
from tests.ingest_node.money.cdp import CHROMIUM, Browser
from tests.ingest_node.money.money_helpers import active_subscription

pytestmark = pytest.mark.db

SOCIAL_TOKEN = "social-service-test-token"


@pytest.fixture(scope="module")
def social() -> Iterator[SocialServiceDouble]:
    double = SocialServiceDouble(free_port(), SOCIAL_TOKEN).start()
    yield double
    double.stop()


@pytest.fixture(scope="module")
def content_node(
    node_settings: Settings, sandbox: ServerThread, social: SocialServiceDouble
) -> Iterator[Node]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "chat-content-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "chat_flood_seconds": 60.0,
            "chat_social_url": social.url,
            "chat_social_token": SecretStr(SOCIAL_TOKEN),
            "chat_social_timeout_seconds": 0.5,
            "donation_trusted_proxies": ["127.0.0.1"],  # so tests can speak for several addresses
        }
    )
    with running_node(settings) as started:
        assert started.app.state.chat_fanout.ready.wait(WAIT_SECONDS)
        yield started


def _owner(node: Node, channel: str) -> str:
    tok, owner = token(node, name="Streamer")
    set_role(node, channel, owner, "owner")
    return tok


def _http(node: Node, tok: str | None = None) -> Any:
    return node.client(headers={"Authorization": f"Bearer {tok}"} if tok else {})


# ---- emotes ------------------------------------------------------------------------------------------


def test_messages_carry_global_and_channel_emote_tokens(content_node: Node) -> None:
    channel = content_node.new_channel()
    owner_tok = _owner(content_node, channel)
    with _http(content_node, owner_tok) as http:
        added = http.put(
            f"/api/v1/chat/{channel}/emotes/PogChamp", json={"url": "https://cdn.example/e/pog.png"}
        )
        assert added.status_code == 200, added.text
        catalogue = http.get(f"/api/v1/chat/{channel}/emotes").json()
    codes = {e["code"]: e for e in catalogue["emotes"]}
    assert codes["PogChamp"]["scope"] == "channel" and codes["wave"]["scope"] == "global"
    assert {s["code"] for s in catalogue["stickers"]} >= {"party", "trophy"}
    tok, _ = token(content_node, name="Viewer")
    with Client(content_node, channel, tok) as viewer, Client(content_node, channel) as anon:
        viewer.send("hi :wave: :PogChamp: :nope: 10:30:45")
        seen = anon.message("hi :wave: :PogChamp: :nope: 10:30:45")
    assert seen["kind"] == "chat" and seen["highlight"] is False
    assert seen["tokens"] == [
        {"t": "text", "v": "hi "},
        {"t": "emote", "code": "wave", "url": "/chat/emotes/wave.svg"},
        {"t": "text", "v": " "},
        {"t": "emote", "code": "PogChamp", "url": "https://cdn.example/e/pog.png"},
        {"t": "text", "v": " :nope: 10:30:45"},  # unknown codes stay text
    ]
    with Client(content_node, channel) as late:  # history carries the tokens stored with the message
        assert late.history[-1]["tokens"] == seen["tokens"]
    with content_node.client() as http:
        image = http.get("/chat/emotes/wave.svg")
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg")
        assert http.get("/chat/emotes/..%2F..%2Fapp.py").status_code == 404


def test_subscriber_emotes_by_tier_refuse_the_message_below_the_tier(content_node: Node) -> None:
    channel = content_node.new_channel()
    owner_tok = _owner(content_node, channel)
    with _http(content_node, owner_tok) as http:
        answer = http.put(
            f"/api/v1/chat/{channel}/emotes/vipwave", json={"url": "/chat/emotes/wave.svg", "min_tier": 2}
        )
        assert answer.status_code == 200, answer.text
    viewer_tok, _ = token(content_node)
    tier1_tok, tier1 = token(content_node)
    set_role(content_node, channel, tier1, "viewer", sub_tier=1)
    tier2_tok, tier2 = token(content_node)
    set_role(content_node, channel, tier2, "viewer", sub_tier=2)
    with (
        Client(content_node, channel, viewer_tok) as viewer,
        Client(content_node, channel, tier1_tok) as sub1,
        Client(content_node, channel, tier2_tok) as sub2,
        Client(content_node, channel, owner_tok) as owner,
        Client(content_node, channel) as anon,
    ):
        assert (sub1.hello["tier"], sub2.hello["tier"], sub2.hello["role"]) == (1, 2, "subscriber")
        viewer.send("look :crown:")  # global, tier 1
        locked = viewer.error("emote_locked")
        assert locked["min_tier"] == 1 and ":crown:" in locked["detail"]
        sub1.send("look :crown:")
        anon.message("look :crown:")
        sub1.send(":vipwave: :crown:")
        assert sub1.error("emote_locked")["min_tier"] == 2
        sub2.send(":vipwave: :crown:")
        assert [t["t"] for t in anon.message(":vipwave: :crown:")["tokens"]] == ["emote", "text", "emote"]
        owner.send(":diamond:")  # the owner uses every tier of their channel
        anon.message(":diamond:")
        anon.ping()
        texts = [f["text"] for f in anon.frames if f["type"] == "message"]
        assert texts == []  # refused messages reached nobody


def test_a_paid_subscription_unlocks_its_tier_and_is_highlighted(content_node: Node) -> None:
    channel = content_node.new_channel()
    with Client(content_node, channel) as watcher:
        sub, _ = active_subscription(content_node, channel, tier="vip")  # tier rank 2, paid in the sandbox
        highlight = watcher.wait(lambda f: f["type"] == "message" and f["kind"] == "subscription")
        assert highlight["highlight"] is True and highlight["user_id"] == sub["subscriber_id"]
        assert highlight["meta"]["tier"] == "vip" and highlight["meta"]["event"] == "subscription.created"
        tok, _ = token(content_node, user_id=sub["subscriber_id"], name="Payer")
        with Client(content_node, channel, tok) as payer:
            assert (payer.hello["tier"], payer.hello["role"]) == (2, "subscriber")
            payer.sticker("trophy")  # a tier-2 sticker
            assert watcher.wait(lambda f: f["type"] == "message" and f["kind"] == "sticker")["text"] == (
                ":trophy:"
            )
        watcher.ping()
        assert not [f for f in watcher.frames if f.get("kind") == "subscription"]  # shown once
    rows = content_node.column(
        "SELECT message_id FROM chat_messages WHERE channel_id = :c AND kind = 'subscription'", c=channel
    )
    assert len(rows) == 1


# ---- stickers ------------------------------------------------------------------------------------------


def test_stickers_and_their_bad_input(content_node: Node) -> None:
    channel = content_node.new_channel()
    owner_tok = _owner(content_node, channel)
    tok, _ = token(content_node, name="Stickerer")
    with Client(content_node, channel, tok) as viewer, Client(content_node, channel) as anon:
        viewer.sticker("party")
        seen = anon.wait(lambda f: f["type"] == "message")
        assert seen["kind"] == "sticker" and seen["text"] == ":party:"
        assert seen["tokens"] == [{"t": "sticker", "code": "party", "url": "/chat/emotes/party.svg"}]
        assert seen["meta"]["sticker"]["code"] == "party"
        viewer.sticker("no_such_sticker")
        assert viewer.error("unknown_sticker")
        viewer.sticker("trophy")
        assert viewer.error("sticker_locked")["min_tier"] == 2
        viewer.sticker('<img src=x onerror="alert(1)">')
        assert "2 to 32" in viewer.error("bad_emote_name")["detail"]
        viewer.sticker("x" * 200)
        assert viewer.error("bad_emote_name")
        for bad in (5, None, ["party"]):
            viewer.sticker(bad)
            assert viewer.error("bad_frame")
        assert command(content_node, channel, owner_tok, "/emoteonly on").status_code == 200
        viewer.sticker("rocket")  # a sticker is fine in emote-only mode
        assert anon.wait(lambda f: f["type"] == "message")["text"] == ":rocket:"
        anon.ping()
        assert not [f for f in anon.frames if f["type"] == "message"]  # the refused ones reached nobody


def test_emote_management_is_the_owners_and_refuses_bad_input(content_node: Node) -> None:
    channel = content_node.new_channel()
    owner_tok = _owner(content_node, channel)
    viewer_tok, _ = token(content_node)
    base = f"/api/v1/chat/{channel}"
    good = {"url": "https://cdn.example/e/ok.png"}
    with content_node.client() as anon_http:
        assert anon_http.put(f"{base}/emotes/ok_name", json=good).status_code == 401
    with _http(content_node, viewer_tok) as http:
        assert http.put(f"{base}/emotes/ok_name", json=good).json()["code"] == "forbidden"
    with _http(content_node, owner_tok) as http:
        cases = {
            "x" * 33: "bad_emote_name",  # oversized
            "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E": "bad_emote_name",  # hostile HTML
            "a": "bad_emote_name",
            "with%20space": "bad_emote_name",
        }
        for name, code in cases.items():
            answer = http.put(f"{base}/emotes/{name}", json=good)
            assert (answer.status_code, answer.json().get("code")) == (422, code), (name, answer.text)
        for url in (
            "javascript:alert(1)",
            'https://cdn.example/x.png" onerror="alert(1)',
            "http://cdn.example/x.png",
            "https://cdn.example/<b>.png",
            "/chat/emotes/../../secret.svg",
            "https://cdn.example/" + "a" * 400,
        ):
            answer = http.put(f"{base}/emotes/fine", json={"url": url})
            assert answer.status_code == 422, url
        assert http.put(f"{base}/emotes/fine", json={**good, "min_tier": 7}).status_code == 422
        taken = http.put(f"{base}/emotes/wave", json=good)
        assert (taken.status_code, taken.json()["code"]) == (409, "name_taken")
        missing = http.delete(f"{base}/stickers/not_there")
        assert (missing.status_code, missing.json()["code"]) == (404, "unknown_sticker")
        assert http.put(f"{base}/stickers/cake", json=good).status_code == 200
        assert http.put("/api/v1/chat/no-such-channel/emotes/cake", json=good).status_code == 404
        names = [s["code"] for s in http.get(f"{base}/emotes").json()["stickers"]]
        assert "cake" in names
        assert http.delete(f"{base}/stickers/cake").status_code == 204
    audited = content_node.column(
        "SELECT action FROM audit_log WHERE entity = :e ORDER BY id", e=f"chat:{channel}:cake"
    )
    assert audited == ["chat.sticker", "chat.sticker"]
    with Client(content_node, channel, viewer_tok) as viewer:  # the node is fine after all that
        viewer.send("still :wave:")
        assert viewer.message("still :wave:")["tokens"][1]["code"] == "wave"


# ---- pins ----------------------------------------------------------------------------------------------


def _pin(node: Node, channel: str, event_id: str, seconds: int, text: str = "boosted!") -> Any:
    with node.sessions() as session, session.begin():
        return pin_boosted(
            session,
            node.settings,
            channel_id=channel,
            user_id="payer-1",
            display_name="Payer",
            text=text,
            amount_minor=50_000,
            currency="RUB",
            seconds=seconds,
            event_id=event_id,
        )


def test_a_boosted_message_is_pinned_for_everyone_and_late_joiners_then_expires(content_node: Node) -> None:
    channel = content_node.new_channel()
    event_id = f"boost-{uuid.uuid4().hex}"
    with Client(content_node, channel) as early:
        assert early.wait(lambda f: f["type"] == "pins")["pins"] == []
        pin = _pin(content_node, channel, event_id, 600, "<b>look</b>\u200b at\x07 me")
        assert pin.created and pin.text == "<b>look</b> at me"
        shown = early.wait(lambda f: f["type"] == "pinned")["pin"]
        assert (shown["id"], shown["name"], shown["amount_minor"], shown["currency"]) == (
            pin.pin_id,
            "Payer",
            50_000,
            "RUB",
        )
        again = _pin(content_node, channel, event_id, 600)  # the same payment again: nothing new
        assert not again.created and again.pin_id == pin.pin_id
        with Client(content_node, channel) as late:
            pins = late.wait(lambda f: f["type"] == "pins")["pins"]
            assert [p["id"] for p in pins] == [pin.pin_id] and pins[0]["text"] == "<b>look</b> at me"
        short = _pin(content_node, channel, f"boost-{uuid.uuid4().hex}", 1)
        assert early.wait(lambda f: f["type"] == "pinned")["pin"]["id"] == short.pin_id
        assert early.wait(lambda f: f["type"] == "unpinned")["id"] == short.pin_id
        early.ping()
        assert not [f for f in early.frames if f["type"] == "pinned"]  # the repeat was not shown
    with content_node.client() as http:
        listed = http.get(f"/api/v1/chat/{channel}/pins").json()["pins"]
        assert [p["id"] for p in listed] == [pin.pin_id]  # the expired one is gone
        assert http.get("/api/v1/chat/no-such-channel/pins").status_code == 404
    events = content_node.column(
        "SELECT value FROM outbox WHERE key = :c AND value LIKE '%chat.pinned%'", c=channel
    )
    assert len(events) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seconds": 0}, "1 to 86400"),
        ({"seconds": 86_401}, "1 to 86400"),
        ({"amount_minor": 0}, "positive amount"),
        ({"channel_id": "no-such-channel"}, "does not exist"),
        ({"event_id": ""}, "idempotency key"),
        ({"currency": "XXX"}, "XXX"),
    ],
)
def test_pin_refuses_caller_errors(content_node: Node, change: dict[str, Any], message: str) -> None:
    channel = content_node.new_channel()
    args: dict[str, Any] = {
        "channel_id": channel,
        "user_id": None,
        "display_name": "",
        "text": "t",
        "amount_minor": 100,
        "currency": "RUB",
        "seconds": 60,
        "event_id": uuid.uuid4().hex,
        **change,
    }
    with content_node.sessions() as session, session.begin(), pytest.raises(ValueError, match=message):
        pin_boosted(session, content_node.settings, **args)


# ---- donations -----------------------------------------------------------------------------------------


def test_a_settled_donation_with_a_message_is_highlighted_once(content_node: Node) -> None:
    channel = content_node.new_channel()
    with Client(content_node, channel) as watcher:
        answer = donate(content_node, channel, message="<script>alert(1)</script> gg", donor_name="Rich")
        assert answer.status_code == 201, answer.text
        donation_id = answer.json()["donation_id"]
        quiet = donate(content_node, channel, message="", donor_name="Quiet")  # no message: no chat line
        assert quiet.status_code == 201, quiet.text
        seen = watcher.wait(lambda f: f["type"] == "message" and f["kind"] == "donation")
        assert (seen["name"], seen["text"], seen["highlight"]) == (
            "Rich",
            "<script>alert(1)</script> gg",
            True,
        )
        assert seen["meta"] == {
            "event": "donation.processed",
            "donation_id": donation_id,
            "amount_minor": 150_000,
            "currency": "RUB",
        }
        assert content_node.wait_status(quiet.json()["donation_id"], "succeeded")["status"] == "succeeded"
        watcher.ping()
        assert not [f for f in watcher.frames if f.get("kind") == "donation"]
    with Client(content_node, channel) as late:
        assert [m["kind"] for m in late.history] == ["donation"]


# ---- friends ----------------------------------------------------------------------------------------


def test_friends_messages_are_flagged_per_recipient(content_node: Node, social: SocialServiceDouble) -> None:
    channel = content_node.new_channel()
    alice_tok, alice = token(content_node, name="Alice")
    bob_tok, bob = token(content_node, name="Bob")
    carol_tok, carol = token(content_node, name="Carol")
    dave_tok, dave = token(content_node, name="Dave")
    erin_tok, erin = token(content_node, name="Erin")
    social.friends[alice] = [bob, "someone-else"]
    social.friends[carol] = []
    social.broken.add(dave)
    social.slow.add(erin)
    with (
        Client(content_node, channel, alice_tok) as a,
        Client(content_node, channel, bob_tok) as b,
        Client(content_node, channel, carol_tok) as c,
        Client(content_node, channel, dave_tok) as d,
        Client(content_node, channel, erin_tok) as e,
        Client(content_node, channel) as anon,
    ):
        b.send("hello friends")
        assert a.message("hello friends")["friend"] is True
        for other in (b, c, d, e, anon):
            assert other.message("hello friends")["friend"] is False
        d.send("dave still chats")  # the social service failed for Dave: no highlight, no failure
        assert a.message("dave still chats")["friend"] is False
    with Client(content_node, channel, alice_tok) as again:  # history is flagged too
        flags = {m["text"]: m["friend"] for m in again.history}
        assert flags == {"hello friends": True, "dave still chats": False}
    auth = {header for path, header in social.requests if alice in path}
    assert auth == {f"Bearer {SOCIAL_TOKEN}"}
    assert content_node.app.state.chat.friends.failures >= 2  # Dave's 500 and Erin's timeout


# ---- IP block on ban ---------------------------------------------------------------------------------


def test_ipban_blocks_writing_from_the_address_and_unban_lifts_it(content_node: Node) -> None:
    channel = content_node.new_channel()
    owner_tok = _owner(content_node, channel)
    troll_tok, troll = token(content_node, name="Troll")
    sock_tok, _ = token(content_node, name="Sockpuppet")
    other_tok, _ = token(content_node, name="Neighbour")
    troll_ip, other_ip = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.9"}
    with (
        Client(content_node, channel, troll_tok, headers=troll_ip) as t,
        Client(content_node, channel) as anon,
    ):
        t.send("troll was here")
        anon.message("troll was here")
        answer = command(content_node, channel, owner_tok, f"/ipban {troll} evading")
        assert answer.status_code == 200 and answer.json()["blocked_addresses"] == 1, answer.text
        assert t.wait(lambda f: f["type"] == "moderation")["action"] == "ipban"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                t.ws.recv(timeout=WAIT_SECONDS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    stored = content_node.column("SELECT ip_hash FROM chat_address_blocks WHERE channel_id = :c", c=channel)
    assert len(stored) == 1 and len(stored[0]) == 64 and "203.0.113.7" not in stored[0]
    seen = content_node.column("SELECT ip_hash FROM chat_seen_addresses WHERE channel_id = :c", c=channel)
    assert not any("203.0.113" in h for h in seen)
    with (
        Client(content_node, channel, sock_tok, headers=troll_ip) as sock,
        Client(content_node, channel, headers=troll_ip) as reader,
        Client(content_node, channel, other_tok, headers=other_ip) as neighbour,
    ):
        assert sock.hello["address_blocked"] is True and neighbour.hello["address_blocked"] is False
        sock.send("a new account, same address")
        assert "network address" in sock.error("address_blocked")["detail"]
        neighbour.send("others still write")
        assert reader.message("others still write")  # the blocked address still reads
        assert command(content_node, channel, owner_tok, f"/unban {troll}").status_code == 200
        sock.send("unblocked now")
        assert reader.message("unblocked now")
    assert (
        content_node.scalar("SELECT count(*) FROM chat_address_blocks WHERE channel_id = :c", c=channel) == 0
    )
    again = command(content_node, channel, owner_tok, f"/unban {troll}")
    assert again.status_code == 409


# ---- the chat page in a real Chromium ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_the_page_renders_emotes_stickers_pins_and_highlights_safely(
    content_node: Node, social: SocialServiceDouble
) -> None:
    channel = content_node.new_channel()
    page_tok, page_user = token(content_node, name="Watcher")
    sender_tok, sender = token(content_node, name="Pal")
    social.friends[page_user] = [sender]
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> :wave:'
    browser = Browser()
    try:
        browser.navigate(f"{content_node.url}/chat/{channel}?token={page_tok}")
        # Wait for the page's socket to join: a message sent before it would reach the page only as
        # history, which carries no per-recipient friend flag.
        assert browser.wait_until("document.body && document.body.dataset.joined === 'true'")
        with Client(content_node, channel, sender_tok) as pal:
            pal.send(hostile)
            pal.message(hostile)
            pal.sticker("party")
            assert browser.wait_until("document.querySelectorAll('#log li').length >= 2"), "no messages shown"
        _pin(content_node, channel, f"boost-{uuid.uuid4().hex}", 600, "pinned <b>text</b>")
        assert donate(content_node, channel, message="big <i>love</i>", donor_name="Rich").status_code == 201
        assert browser.wait_until("document.querySelector('#log li.highlight.kind-donation') !== null")
        assert browser.wait_until("document.querySelectorAll('#pins div').length === 1")
        page = browser.evaluate(
            """(() => {
              const items = [...document.querySelectorAll('#log li')];
              const first = items[0];
              return {
                pwned: window.__pwned === undefined ? null : window.__pwned,
                firstText: first.textContent,
                firstImgs: [...first.querySelectorAll('img')].map(i => [i.className, i.getAttribute('src')]),
                firstFriend: first.classList.contains('friend'),
                sticker: [...items[1].querySelectorAll('img')].map(i => [i.className, i.getAttribute('src')]),
                donation: document.querySelector('#log li.kind-donation').textContent,
                donationAmount: document.querySelector('#log li.kind-donation .amount').textContent,
                pin: document.querySelector('#pins div').textContent,
                injected: document.querySelectorAll('script:not(:first-of-type), b, i').length,
              };
            })()"""
        )
    finally:
        browser.close()
    assert page["pwned"] is None  # the markup in the message never ran
    assert page["firstText"] == "Pal" + hostile.replace(" :wave:", " ")  # shown as text, emote as image
    assert page["firstImgs"] == [["emote", "/chat/emotes/wave.svg"]]
    assert page["firstFriend"] is True  # the social service says Pal is the watcher's friend
    assert page["sticker"] == [["sticker", "/chat/emotes/party.svg"]]
    assert "big <i>love</i>" in page["donation"] and "1" in page["donationAmount"]
    assert page["pin"].startswith("Payer") and "pinned <b>text</b>" in page["pin"]
    assert page["injected"] == 0


def test_which_money_events_become_highlights() -> None:
    """The mapping alone (the live path is covered above): renewals and gifts too, nothing else."""
    from ingest_node.chat.highlights import highlight_of
    from services.events import (
        DonationProcessed,
        Envelope,
        SubscriptionCancelled,
        SubscriptionGifted,
        SubscriptionRenewed,
    )

    def env(payload: Any) -> Envelope:
        return Envelope.wrap(payload, channel_id="ch", node_id="n", user_id="u1")

    sub = {"subscription_id": "s1", "subscriber_id": "u1", "tier": "vip"}
    renewed = highlight_of(env(SubscriptionRenewed(**sub, streak_months=4)), 500)
    gifted = highlight_of(env(SubscriptionGifted(**sub, gifted_by="patron")), 500)
    assert renewed is not None and renewed.kind == "subscription" and "4 months" in renewed.text
    assert gifted is not None and gifted.text == "patron gifted a vip subscription to u1"
    names = {"u1": "Una", "patron": "Pat"}.get
    named = highlight_of(env(SubscriptionGifted(**sub, gifted_by="patron")), 500, names)
    assert named is not None and named.display_name == "Una"
    assert named.text == "Pat gifted a vip subscription to Una"
    assert highlight_of(env(SubscriptionCancelled(**sub)), 500) is None
    donation = {
        "donation_id": "d1",
        "payment_id": "p1",
        "amount_minor": 100,
        "currency": "RUB",
        "settled_at": "2026-01-01T00:00:00Z",
    }
    assert highlight_of(env(DonationProcessed(**donation, message=" \u200b\x07 ")), 500) is None
    long = highlight_of(env(DonationProcessed(**donation, message="x" * 900, donor_name=None)), 500)
    assert long is not None and len(long.text) == 500 and long.display_name == "Anonymous"
