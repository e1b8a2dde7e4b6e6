"""The chat against a live node with real WebSocket clients: delivery, order, history, bad input."""

from __future__ import annotations

import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.ingest_node.chat.chat_client import Client, set_role, token
from tests.ingest_node.live_node import WAIT_SECONDS, Node

pytestmark = pytest.mark.db


def test_messages_reach_everyone_in_order_and_history_on_join(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    owner_tok, owner = token(chat_node, name="Streamer")
    set_role(chat_node, channel, owner, "owner")
    with Client(chat_node, channel, owner_tok) as writer, Client(chat_node, channel) as anon:
        assert anon.hello["user"] is None and anon.hello["role"] == "anonymous"
        assert writer.hello["role"] == "owner"
        for i in range(12):  # the owner is exempt from the flood limit
            writer.send(f"msg {i}")
        got = [anon.wait(lambda f: f["type"] == "message")["text"] for _ in range(12)]
        assert got == [f"msg {i}" for i in range(12)]
        assert [writer.wait(lambda f: f["type"] == "message")["text"] for _ in range(12)] == got
    with Client(chat_node, channel) as late:
        assert [m["text"] for m in late.history] == [f"msg {i}" for i in range(7, 12)]  # last N=5
        assert all(m["user_id"] == owner and m["name"] == "Streamer" for m in late.history)


def test_anonymous_viewers_read_but_cannot_write(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    with Client(chat_node, channel) as anon:
        anon.send("hello")
        assert anon.error("sign_in_required")["detail"]
        anon.send("/clear")
        assert anon.error("sign_in_required")


def test_forged_role_and_user_id_in_the_payload_are_ignored(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    _, owner = token(chat_node)
    set_role(chat_node, channel, owner, "owner")
    tok, user = token(chat_node, name="Mallory")
    with Client(chat_node, channel, tok) as mallory, Client(chat_node, channel) as anon:
        mallory.send("hi all", user_id=owner, name="Streamer", role="owner", status="visible")
        seen = anon.message("hi all")
        assert (seen["user_id"], seen["name"], seen["role"]) == (user, "Mallory", "viewer")
        mallory.send("/ban " + owner, role="owner")
        assert mallory.error("forbidden")
        mallory.send(f"/timeout {owner} 600")
        assert mallory.error("forbidden")


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda n: token(n, ttl_seconds=1)[0], "token expired"),
        (lambda n: token(n)[0][:-3] + "AAA", "bad token signature"),
        (lambda n: "not-a-token", "malformed token"),
    ],
)
def test_expired_and_forged_tokens_are_refused(chat_node: Node, build: object, code: str) -> None:
    channel = chat_node.new_channel()
    tok = build(chat_node)  # type: ignore[operator]
    if code == "token expired":
        time.sleep(1.1)
    url = chat_node.url.replace("http", "ws") + f"/ws/chat/{channel}?token={tok}"
    with connect(url) as ws:
        frame = ws.recv(timeout=WAIT_SECONDS)
        assert '"unauthorized"' in str(frame) and code in str(frame)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_SECONDS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with chat_node.client(headers={"Authorization": f"Bearer {tok}"}) as http:
        answer = http.post(f"/api/v1/chat/{channel}/commands", json={"command": "/clear"})
    assert answer.status_code == 401 and code in answer.json()["detail"]


def test_unknown_channel_is_a_clear_close(chat_node: Node) -> None:
    with connect(chat_node.url.replace("http", "ws") + "/ws/chat/no-such-channel") as ws:
        assert "unknown_channel" in str(ws.recv(timeout=WAIT_SECONDS))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_SECONDS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_oversized_messages_and_frames_are_refused_and_the_socket_lives_on(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    with Client(chat_node, channel, tok) as c:
        c.send("x" * 501)
        assert c.error("too_long")
        c.ws.send('{"type": "send", "text": "' + "y" * 9000 + '"}')
        assert c.error("too_large")
        c.ws.send(b"z" * 9000)
        assert c.error("too_large")
        c.send("still here")
        assert c.message("still here")


def test_invalid_utf8_is_refused_without_hurting_others(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    tok2, _ = token(chat_node)
    with Client(chat_node, channel, tok) as bad, Client(chat_node, channel, tok2) as good:
        bad.ws.send(b'{"type":"send","text":"\xff\xfe bad"}')  # a binary frame must still be UTF-8
        assert bad.error("invalid_utf8")
        bad.ws.send(b'{"type":"send","text":"ok \xc3\xa9"}')  # valid UTF-8 in a binary frame is fine
        assert good.message("ok é")
        bad.ws.send(b"\xff\xfe", text=True)  # a text frame that is not UTF-8: the protocol closes (1007)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                bad.ws.recv(timeout=WAIT_SECONDS)
        assert closed.value.sent is not None and closed.value.sent.code == 1007
        good.send("others unaffected")
        assert good.message("others unaffected")


def test_control_and_zero_width_characters_are_removed(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    with Client(chat_node, channel, tok) as c:
        c.send("he\u200bl\u200dl\u2060o\x07\x00 w\u202eorld\ufeff")
        assert c.message("hello world")
        c.send("\u200b\u200c\x01\u2060")
        assert c.error("empty")


def test_html_and_script_are_delivered_as_text_and_the_page_renders_text_only(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with Client(chat_node, channel, tok) as c:
        c.send(payload)
        assert c.message(payload)["text"] == payload  # as typed: escaping is the renderer's job
    with chat_node.client() as http:
        page = http.get(f"/chat/{channel}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "textContent" in page.text and "innerHTML" not in page.text
    assert channel not in page.text  # nothing from the URL is templated into the HTML
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_bad_frames_get_clear_errors(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    with Client(chat_node, channel, tok) as c:
        for raw in ("not json", "[1,2]", '{"type":"hack"}', '{"type":"send","text":5}'):
            c.ws.send(raw)
            assert c.error("bad_frame")
        c.send("/frobnicate")
        assert "unknown command" in c.error("bad_command")["detail"]


def test_a_client_faster_than_the_limit_is_rate_limited(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    with Client(chat_node, channel, tok) as fast, Client(chat_node, channel) as reader:
        for i in range(4):
            fast.send(f"spam {i}")
        limited = fast.error("rate_limited")
        assert limited["retry_after"] > 0 and "3 messages" in limited["detail"]
        assert [reader.wait(lambda f: f["type"] == "message")["text"] for _ in range(3)] == [
            "spam 0",
            "spam 1",
            "spam 2",
        ]
        reader.ping()
        assert not [f for f in reader.frames if f["type"] == "message"]


def test_reconnect_storm_leaves_the_node_serving(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    tok, _ = token(chat_node)
    before = chat_node.app.state.chat.hub.count()
    errors: list[BaseException] = []

    def storm() -> None:
        try:
            for i in range(15):
                with connect(chat_node.url.replace("http", "ws") + f"/ws/chat/{channel}?token={tok}") as ws:
                    if i % 2:
                        ws.recv(timeout=WAIT_SECONDS)
                    if i % 3 == 0:
                        ws.socket.close()  # an abrupt disconnect, no closing handshake
        except BaseException as exc:
            errors.append(exc)

    with Client(chat_node, channel) as watcher:
        threads = [threading.Thread(target=storm) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        tok2, _ = token(chat_node)
        with Client(chat_node, channel, tok2) as talker:
            talker.send("after the storm")
            assert watcher.message("after the storm")
    deadline = time.monotonic() + WAIT_SECONDS
    while chat_node.app.state.chat.hub.count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chat_node.app.state.chat.hub.count() == before
