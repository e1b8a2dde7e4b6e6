"""The game a channel is playing: set by its owner or the admin over the API and `efir channels
set-game`, normalised, hostile text refused with a clear 422, carried by the stream lifecycle's events
and announced as `stream.game_changed` when it changes while the channel is live."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ingest_node.ingest.channel_game import ChannelGame
from ingest_node.ingest.lifecycle import LifecycleRecorder
from ingest_node.models import AuditEntry, OutboxRow
from services.cli import main as efir
from services.events import Envelope
from tests.ingest_node.live_node import Node
from tests.ingest_node.money.interactive_helpers import call, channel_with_owner

pytestmark = pytest.mark.db


def _events(node: Node, channel_id: str) -> list[Envelope]:
    with node.sessions() as session:
        rows = session.execute(
            sa.select(OutboxRow.value).where(OutboxRow.key == channel_id).order_by(OutboxRow.id)
        ).scalars()
        return [Envelope.from_json(v) for v in rows]


def test_owner_sets_normalised_game_and_anyone_reads_it(node: Node) -> None:
    channel, owner, _viewer = channel_with_owner(node)
    path = f"/api/v1/channels/{channel}/game"
    assert call(node, "GET", path).json() == {"channel_id": channel, "game": None, "game_slug": None}
    known = call(node, "PUT", path, owner, json={"game": "  CS2 "})
    assert known.status_code == 200, known.text
    assert known.json() == {
        "channel_id": channel,
        "game": "Counter-Strike 2",
        "game_slug": "counter-strike-2",
    }
    free = call(node, "PUT", path, owner, json={"game": "Ведьмак   3:\u00a0Дикая охота"})
    assert free.json()["game"] == "Ведьмак 3: Дикая охота"
    assert free.json()["game_slug"] == "ведьмак-3-дикая-охота"
    assert call(node, "GET", path).json()["game"] == "Ведьмак 3: Дикая охота"  # no token needed
    with node.sessions() as session:
        row = session.get(ChannelGame, channel)
        assert row is not None and row.game_slug == "ведьмак-3-дикая-охота"
        actors = session.execute(
            sa.select(AuditEntry.actor).where(
                AuditEntry.entity == f"channel:{channel}", AuditEntry.action == "channel.game_changed"
            )
        ).scalars()
        assert set(actors) == {f"user:{owner_user(node, owner)}"}
    cleared = call(node, "PUT", path, owner, json={"game": "   "})
    assert cleared.json()["game"] is None
    with node.sessions() as session:
        assert session.get(ChannelGame, channel) is None


def owner_user(node: Node, token: str) -> str:
    return str(node.app.state.chat_tokens.verify(token).user_id)


def test_hostile_game_text_is_refused_with_a_clear_422(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    path = f"/api/v1/channels/{channel}/game"
    assert call(node, "PUT", path, owner, json={"game": "Minecraft"}).status_code == 200
    cases = [
        ("x" * 101, "at most 100 characters, not 101"),
        ("<script>alert(1)</script>", "HTML is not allowed"),
        ("Dota\n2", "control or invisible characters (found U+000A)"),
        ("Do\u200bta", "control or invisible characters (found U+200B)"),
        ("\u202eatoD", "control or invisible characters (found U+202E)"),
        ("!!! ???", "at least one letter or digit"),
    ]
    for text, message in cases:
        answer = call(node, "PUT", path, owner, json={"game": text})
        assert answer.status_code == 422 and message in answer.json()["detail"], (text, answer.text)
    for body in ({}, {"game": 5}, {"game": "ok", "extra": 1}, {"game": "y" * 1001}):
        assert call(node, "PUT", path, owner, json=body).status_code == 422, body
    # Spaces collapse before the length is checked: 100 letters padded with whitespace are fine.
    padded = call(node, "PUT", path, owner, json={"game": "  " + "a " * 50})
    assert padded.status_code == 200 and len(padded.json()["game"]) == 99
    assert call(node, "GET", path).json()["game"].startswith("a a")


def test_only_the_owner_or_admin_sets_the_game(node: Node) -> None:
    channel, owner, viewer = channel_with_owner(node)
    path = f"/api/v1/channels/{channel}/game"
    assert call(node, "PUT", path, None, json={"game": "Dota 2"}).status_code == 401
    assert call(node, "PUT", path, "not-a-token", json={"game": "Dota 2"}).status_code == 401
    refused = call(node, "PUT", path, viewer, json={"game": "Dota 2"})
    assert refused.status_code == 403 and "owner" in refused.json()["detail"]
    other_channel, other_owner, _ = channel_with_owner(node)
    assert call(node, "PUT", path, other_owner, json={"game": "Dota 2"}).status_code == 403
    assert call(node, "GET", path).json()["game"] is None
    with node.admin() as http:
        assert http.put(path, json={"game": "dota"}).json()["game_slug"] == "dota-2"
        assert http.put("/api/v1/channels/no-such-channel/game", json={"game": "x"}).status_code == 404
    assert call(node, "GET", "/api/v1/channels/no-such-channel/game").status_code == 404
    assert call(node, "PUT", path, owner, json={"game": "Chess"}).json()["game_slug"] == "chess"
    assert call(node, "GET", f"/api/v1/channels/{other_channel}/game").json()["game"] is None


def test_stream_events_carry_the_game_and_changes_while_live(node: Node) -> None:
    channel, owner, _ = channel_with_owner(node)
    path = f"/api/v1/channels/{channel}/game"
    recorder = LifecycleRecorder(node.settings, node.sessions)
    # Not live: a change is stored, no event.
    assert call(node, "PUT", path, owner, json={"game": "Dota 2"}).status_code == 200
    assert _events(node, channel) == []
    broadcast = recorder.started(channel)
    assert call(node, "PUT", path, owner, json={"game": "Valorant"}).status_code == 200
    assert call(node, "PUT", path, owner, json={"game": "valorant"}).status_code == 200  # same slug: no event
    recorder.ladder_changed(channel, broadcast, ["720p"], "load")
    assert call(node, "PUT", path, owner, json={"game": ""}).status_code == 200
    recorder.ended(channel, broadcast, errored=False, reason="", restarts=0)
    events = _events(node, channel)
    assert [(e.event_type, e.payload["game"]) for e in events] == [
        ("stream.started", "dota-2"),
        ("stream.game_changed", "valorant"),
        ("stream.ladder_changed", "valorant"),
        ("stream.game_changed", ""),
        ("stream.ended", ""),
    ]
    assert {e.payload["broadcast_id"] for e in events} == {broadcast}
    # After the broadcast ended a change is not an event.
    assert call(node, "PUT", path, owner, json={"game": "Rust"}).status_code == 200
    assert len(_events(node, channel)) == 5


def test_efir_channels_set_game_cli(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    channel = node.new_channel()
    runner = CliRunner()
    monkeypatch.setenv("EFIR_ADMIN_TOKEN", node.settings.admin_token.get_secret_value())
    base = ["channels", "set-game", "--node-url", node.url, channel]
    done = runner.invoke(efir, [*base, "gta 5"])
    assert done.exit_code == 0, done.output
    assert "Game:    Grand Theft Auto V (grand-theft-auto-v)" in done.output
    refused = runner.invoke(efir, [*base, "<b>bold</b>"])
    assert refused.exit_code != 0 and "422: game must not contain '<' or '>'" in refused.output
    cleared = runner.invoke(efir, [*base, ""])
    assert cleared.exit_code == 0 and "Game:    none" in cleared.output
    assert node.scalar("select count(*) from channel_game where channel_id = :c", c=channel) == 0
