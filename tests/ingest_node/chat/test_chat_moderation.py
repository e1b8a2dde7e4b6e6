"""Moderation on a live node: commands and API, their effects on sockets, audit rows and events."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.ingest_node.chat.chat_client import Client, command, set_role, token
from tests.ingest_node.live_node import WAIT_SECONDS, Node, read_events

pytestmark = pytest.mark.db


def _cast(node: Node, channel: str) -> dict[str, tuple[str, str]]:
    people = {}
    for role in ("owner", "moderator", "vip", "viewer", "viewer2"):
        tok, user = token(node, name=role.capitalize())
        if role != "viewer2" and role != "viewer":
            set_role(node, channel, user, role)
        people[role] = (tok, user)
    return people


def test_timeout_hides_messages_for_everyone_and_mutes_the_user(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    (mod_tok, mod), (bad_tok, bad) = cast["moderator"], cast["viewer"]
    with (
        Client(chat_node, channel, mod_tok) as moderator,
        Client(chat_node, channel, bad_tok) as troll,
        Client(chat_node, channel) as anon,
    ):
        troll.send("first")
        first = anon.message("first")
        moderator.send(f"/timeout {bad} 600 spamming")
        assert moderator.wait(lambda f: f["type"] == "command_ok")["target"] == bad
        assert anon.wait(lambda f: f["type"] == "deleted")["ids"] == [first["id"]]
        notice = troll.wait(lambda f: f["type"] == "moderation")
        assert notice["action"] == "timeout" and notice["reason"] == "spamming" and notice["until"]
        troll.send("can I still talk?")
        assert troll.error("timed_out")["until"] == notice["until"]
        troll.ping()  # still connected, read-only
    with Client(chat_node, channel) as late:
        assert first["id"] not in [m["id"] for m in late.history]
    assert (
        chat_node.scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'moderation.timeout' AND actor = :a",
            a=f"user:{mod}",
        )
        == 1
    )
    types = chat_node.column("SELECT value FROM outbox WHERE key = :c", c=channel)
    assert any('"moderation.timeout"' in v for v in types) and any('"chat.deleted"' in v for v in types)


def test_ban_closes_sockets_refuses_reconnects_and_unban_restores(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    (owner_tok, _), (bad_tok, bad) = cast["owner"], cast["viewer"]
    with Client(chat_node, channel, bad_tok) as troll:
        answer = command(chat_node, channel, owner_tok, f"/ban {bad} slurs")
        assert answer.status_code == 200, answer.text
        assert troll.wait(lambda f: f["type"] == "moderation")["action"] == "ban"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                troll.ws.recv(timeout=WAIT_SECONDS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    with pytest.raises(ConnectionClosed) as again:
        Client(chat_node, channel, bad_tok)
    assert again.value.rcvd is not None and again.value.rcvd.code == 4003
    assert command(chat_node, channel, owner_tok, f"/unban {bad}").status_code == 200
    assert command(chat_node, channel, owner_tok, f"/unban {bad}").status_code == 409
    with Client(chat_node, channel, bad_tok) as back:
        back.send("sorry")
        assert back.message("sorry")


@pytest.mark.parametrize(
    ("actor", "line", "allowed"),
    [
        ("viewer", "/timeout {target} 60", False),
        ("vip", "/timeout {target} 60", False),
        ("moderator", "/timeout {target} 60", True),
        ("moderator", "/timeout {owner} 60", False),
        ("moderator", "/ban {moderator}", False),
        ("moderator", "/mod {target}", False),
        ("owner", "/mod {target}", True),
        ("viewer", "/slow 10", False),
        ("moderator", "/slow 10", True),
        ("viewer", "/clear", False),
        ("moderator", "/clear", True),
    ],
)
def test_the_permission_matrix_is_enforced_on_the_server(
    chat_node: Node, actor: str, line: str, allowed: bool
) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    names = {"target": cast["viewer2"][1], "owner": cast["owner"][1], "moderator": cast["moderator"][1]}
    answer = command(chat_node, channel, cast[actor][0], line.format(**names))
    assert (answer.status_code == 200) is allowed, answer.text
    if not allowed:
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden"


def test_modes_slow_subonly_emoteonly(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    sub_tok, sub = token(chat_node, name="Sub")
    set_role(chat_node, channel, sub, "viewer", sub_tier=1)
    owner_tok = cast["owner"][0]
    viewer_tok, vip_tok = cast["viewer"][0], cast["vip"][0]
    with (
        Client(chat_node, channel, viewer_tok) as viewer,
        Client(chat_node, channel, vip_tok) as vip,
        Client(chat_node, channel, sub_tok) as subscriber,
    ):
        assert command(chat_node, channel, owner_tok, "/slow 300").json()["modes"]["slow_seconds"] == 300
        assert viewer.wait(lambda f: f["type"] == "modes")["slow_seconds"] == 300
        viewer.send("one")
        viewer.message("one")
        viewer.send("two")
        assert viewer.error("slow_mode")["retry_after"] > 0
        vip.send("vip one")
        vip.send("vip two")  # VIPs skip slow mode
        vip.message("vip two")
        command(chat_node, channel, owner_tok, "/slow off")
        command(chat_node, channel, owner_tok, "/subonly on")
        viewer.send("three")
        assert viewer.error("subs_only")
        subscriber.send("sub talk")
        assert subscriber.message("sub talk")
        command(chat_node, channel, owner_tok, "/subonly off")
        command(chat_node, channel, owner_tok, "/emoteonly")
        subscriber.send("words")
        assert subscriber.error("emote_only")
        subscriber.send(":kappa: 🎉")  # looks like an emote, but is not in this chat's catalogue
        assert subscriber.error("emote_only")
        subscriber.send(":wave: 🎉")
        assert subscriber.message(":wave: 🎉")["tokens"][0] == {
            "t": "emote",
            "code": "wave",
            "url": "/chat/emotes/wave.svg",
        }


def test_delete_and_clear(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    with Client(chat_node, channel, cast["viewer"][0]) as viewer, Client(chat_node, channel) as anon:
        viewer.send("delete me")
        msg = anon.message("delete me")
        assert command(chat_node, channel, cast["moderator"][0], f"/delete {msg['id']}").status_code == 200
        assert anon.wait(lambda f: f["type"] == "deleted")["ids"] == [msg["id"]]
        viewer.send("keep? no")
        anon.message("keep? no")
        assert command(chat_node, channel, cast["moderator"][0], "/clear").status_code == 200
        anon.wait(lambda f: f["type"] == "cleared")
    assert chat_node.client().get(f"/api/v1/chat/{channel}/messages").json()["messages"] == []


def test_automod_hides_profanity_and_holds_links_for_review(chat_node: Node) -> None:
    channel = chat_node.new_channel()
    cast = _cast(chat_node, channel)
    mod_tok = cast["moderator"][0]
    with (
        Client(chat_node, channel, cast["viewer"][0]) as viewer,
        Client(chat_node, channel, mod_tok) as mod,
        Client(chat_node, channel) as anon,
    ):
        viewer.send("ну ты х.у.й")
        hidden = viewer.wait(lambda f: f["type"] == "hidden")
        assert hidden["rule"] == "profanity"
        viewer.send("free skins at skins-drop . ru")
        held = viewer.wait(lambda f: f["type"] == "held")
        assert mod.wait(lambda f: f["type"] == "held_message")["id"] == held["id"]
        queue = chat_node.client(headers={"Authorization": f"Bearer {mod_tok}"}).get(
            f"/api/v1/chat/{channel}/held"
        )
        assert [m["id"] for m in queue.json()] == [held["id"]]
        viewer_queue = command(chat_node, channel, cast["viewer"][0], "/clear")
        assert viewer_queue.status_code == 403
        with chat_node.client(headers={"Authorization": f"Bearer {mod_tok}"}) as http:
            assert http.post(f"/api/v1/chat/{channel}/held/{held['id']}/approve").status_code == 200
            assert http.post(f"/api/v1/chat/{channel}/held/{held['id']}/approve").status_code == 409
        assert anon.wait(lambda f: f["type"] == "message")["id"] == held["id"]
        anon.ping()
        assert not [f for f in anon.frames if "х.у.й" in str(f)]
    events = read_events(
        chat_node.settings,
        lambda evs: (
            {"moderation.approved", "chat.message"} <= {e.event_type for e in evs if e.channel_id == channel}
        ),
        topic="chat",
    )
    mine = [e for e in events if e.channel_id == channel]
    statuses = sorted(e.payload["status"] for e in mine if e.event_type == "chat.message")
    assert statuses == ["held", "hidden"]
