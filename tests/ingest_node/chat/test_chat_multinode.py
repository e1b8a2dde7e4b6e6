"""Two nodes sharing one broker and one database: chat and moderation cross from node to node.

Both nodes run on the session's database (PostgreSQL with EFIR_TEST_DATABASE=postgres) and broker;
each has its own node_id, so each delivers the other's events from the `chat` topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from ingest_node.chat.pins import pin_boosted, unpin_boosted
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.chat.chat_client import Client, command, set_role, token
from tests.ingest_node.live_node import WAIT_SECONDS, Node, ServerThread, donate, running_node

pytestmark = [pytest.mark.db, pytest.mark.slow]


def _node(node_settings: Settings, name: str) -> Iterator[Node]:
    port = free_port()
    settings = node_settings.model_copy(
        update={"node_id": name, "node_port": port, "public_url": f"http://127.0.0.1:{port}"}
    )
    with running_node(settings) as started:
        assert started.app.state.chat_fanout.ready.wait(WAIT_SECONDS), f"{name}: fan-out never positioned"
        yield started


@pytest.fixture(scope="module")
def node_a(node_settings: Settings, sandbox: ServerThread) -> Iterator[Node]:
    yield from _node(node_settings, "chat-node-a")


@pytest.fixture(scope="module")
def node_b(node_settings: Settings, sandbox: ServerThread) -> Iterator[Node]:
    yield from _node(node_settings, "chat-node-b")


def test_messages_posted_on_a_reach_b_in_order_and_exactly_once(node_a: Node, node_b: Node) -> None:
    channel = node_a.new_channel()
    owner_tok, owner = token(node_a, name="Streamer")
    set_role(node_a, channel, owner, "owner")  # exempt from the flood limit
    viewer_tok, _ = token(node_b, name="Viewer")
    with (
        Client(node_a, channel, owner_tok) as writer,
        Client(node_b, channel) as remote,
        Client(node_a, channel) as local,
        Client(node_b, channel, viewer_tok) as viewer,
    ):
        for i in range(20):
            writer.send(f"msg {i}")
        expected = [f"msg {i}" for i in range(20)]
        got = [remote.wait(lambda f: f["type"] == "message") for _ in range(20)]
        assert [f["text"] for f in got] == expected
        assert all(f["user_id"] == owner and f["name"] == "Streamer" and f["role"] == "owner" for f in got)
        assert [local.wait(lambda f: f["type"] == "message")["text"] for _ in range(20)] == expected
        viewer.send("hello from b")  # and back: posted on B, seen on A
        assert writer.message("hello from b")["name"] == "Viewer"
        remote.message("hello from b")
        remote.ping()  # nothing delivered twice (own events skipped, duplicates dropped)
        assert not [f for f in remote.frames if f["type"] == "message"]
    with Client(node_b, channel) as late:  # both nodes wrote one shared history
        assert [m["text"] for m in late.history][-3:] == ["msg 18", "msg 19", "hello from b"]


def test_a_ban_on_b_closes_the_socket_on_a_and_refuses_posts_on_a(node_a: Node, node_b: Node) -> None:
    channel = node_a.new_channel()
    mod_tok, mod = token(node_b, name="Mod")
    set_role(node_b, channel, mod, "moderator")
    bad_tok, bad = token(node_a, name="Troll")
    with Client(node_a, channel, bad_tok) as troll, Client(node_a, channel) as watcher_a:
        troll.send("first troll message")
        first = watcher_a.message("first troll message")
        answer = command(node_b, channel, mod_tok, f"/ban {bad} spam")
        assert answer.status_code == 200, answer.text
        assert watcher_a.wait(lambda f: f["type"] == "deleted")["ids"] == [first["id"]]
        notice = troll.wait(lambda f: f["type"] == "moderation")
        assert notice["action"] == "ban" and notice["reason"] == "spam"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                troll.ws.recv(timeout=WAIT_SECONDS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    with pytest.raises(ConnectionClosed) as again, Client(node_a, channel, bad_tok):
        pass
    assert again.value.rcvd is not None and again.value.rcvd.code == 4003


def test_a_timeout_on_b_mutes_the_user_on_a_and_modes_cross_nodes(node_a: Node, node_b: Node) -> None:
    channel = node_a.new_channel()
    owner_tok, owner = token(node_b, name="Owner")
    set_role(node_b, channel, owner, "owner")
    user_tok, user = token(node_a, name="Chatty")
    with Client(node_a, channel, user_tok) as chatty:
        assert command(node_b, channel, owner_tok, "/slow 30").status_code == 200
        assert chatty.wait(lambda f: f["type"] == "modes")["slow_seconds"] == 30
        assert command(node_b, channel, owner_tok, f"/timeout {user} 600 cool down").status_code == 200
        notice = chatty.wait(lambda f: f["type"] == "moderation")
        assert notice["action"] == "timeout" and notice["until"]
        chatty.send("am I muted?")
        assert chatty.error("timed_out")["until"] == notice["until"]
        chatty.ping()  # still connected, read-only


def test_pins_and_donation_highlights_show_once_on_every_node(node_a: Node, node_b: Node) -> None:
    """Both come from the bus on every node (the origin included): one frame per socket, one history row."""
    channel = node_a.new_channel()
    with Client(node_a, channel) as on_a, Client(node_b, channel) as on_b:
        with node_a.sessions() as session, session.begin():
            pin = pin_boosted(
                session,
                node_a.settings,
                channel_id=channel,
                user_id=None,
                display_name="Booster",
                text="pinned across nodes",
                amount_minor=30_000,
                currency="RUB",
                seconds=600,
                event_id=f"boost-{uuid.uuid4().hex}",
            )
        for client in (on_a, on_b):
            assert client.wait(lambda f: f["type"] == "pinned")["pin"]["id"] == pin.pin_id
        answer = donate(node_b, channel, message="gg from node b", donor_name="Donor")
        assert answer.status_code == 201, answer.text
        for client in (on_a, on_b):
            seen = client.wait(lambda f: f["type"] == "message" and f["kind"] == "donation")
            assert (seen["text"], seen["name"], seen["highlight"]) == ("gg from node b", "Donor", True)
        for client in (on_a, on_b):
            client.ping()
            assert not [f for f in client.frames if f["type"] == "pinned" or f.get("kind") == "donation"]
    kinds = node_a.column("SELECT kind FROM chat_messages WHERE channel_id = :c", c=channel)
    assert kinds == ["donation"]
    with Client(node_b, channel) as late:
        assert [p["id"] for p in late.wait(lambda f: f["type"] == "pins")["pins"]] == [pin.pin_id]


def test_an_early_unpin_reaches_every_node_once(node_a: Node, node_b: Node) -> None:
    """A reversed boost's pin (`unpin_boosted`, called by the money flow) comes down on every node's
    sockets at once, from the `chat.unpinned` event, long before it would expire; a repeat is a no-op."""
    channel, event_id = node_a.new_channel(), f"boost-{uuid.uuid4().hex}"
    with Client(node_a, channel) as on_a, Client(node_b, channel) as on_b:
        with node_a.sessions() as session, session.begin():
            pin = pin_boosted(
                session,
                node_a.settings,
                channel_id=channel,
                user_id="payer",
                display_name="Booster",
                text="taken back soon",
                amount_minor=30_000,
                currency="RUB",
                seconds=3600,
                event_id=event_id,
            )
        for client in (on_a, on_b):
            assert client.wait(lambda f: f["type"] == "pinned")["pin"]["id"] == pin.pin_id
        with node_b.sessions() as session, session.begin():
            shown = unpin_boosted(session, node_b.settings, event_id=event_id, reason="boost.charged_back")
            assert shown is not None and shown.pin_id == pin.pin_id
        with node_b.sessions() as session, session.begin():
            assert unpin_boosted(session, node_b.settings, event_id=event_id, reason="again") is None
            assert unpin_boosted(session, node_b.settings, event_id="no-such-pin", reason="x") is None
        for client in (on_a, on_b):
            assert client.wait(lambda f: f["type"] == "unpinned")["id"] == pin.pin_id
            client.ping()
            assert not [f for f in client.frames if f["type"] in ("pinned", "unpinned")]
    with Client(node_a, channel) as late:
        assert late.wait(lambda f: f["type"] == "pins")["pins"] == []
