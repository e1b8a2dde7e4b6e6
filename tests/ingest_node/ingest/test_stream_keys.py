"""Stream keys: issued once, stored only as a salted hash, rotated and revoked over the admin API and the
`efir channels` CLI (which talks HTTP to the node), never written to a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest_node.ingest.keys import KEY_PREFIX, StreamKeyRedactor, channel_for_key
from services.cli import main as efir
from tests.ingest_node.live_node import Node

pytestmark = pytest.mark.db


def _issue(node: Node, channel_id: str) -> dict[str, str]:
    with node.admin() as http:
        answer = http.post(f"/api/v1/channels/{channel_id}/stream-key")
    assert answer.status_code == 201, answer.text
    body: dict[str, str] = answer.json()
    return body


def _channel_of(node: Node, key: str) -> str | None:
    with node.sessions() as session:
        return channel_for_key(session, key)


def test_a_key_is_shown_once_with_its_urls_and_stored_only_hashed(node: Node) -> None:
    channel_id = node.new_channel()
    body = _issue(node, channel_id)
    key = body["stream_key"]
    assert key.startswith(KEY_PREFIX) and len(key) >= len(KEY_PREFIX) + 43
    assert body["rtmp_url"] == f"{body['rtmp_server']}/{key}"
    assert body["rtmp_server"].startswith("rtmp://") and body["rtmp_server"].endswith("/live")
    assert body["playback_url"] == f"{node.settings.public_url}/live/{channel_id}/master.m3u8"
    assert _channel_of(node, key) == channel_id

    rows = node.column(
        "SELECT salt || '|' || digest || '|' || lookup FROM stream_keys WHERE channel_id = :c", c=channel_id
    )
    assert len(rows) == 1 and key not in rows[0] and key[len(KEY_PREFIX) :] not in rows[0]
    audit = node.column("SELECT action || entity FROM audit_log WHERE entity = :e", e=f"channel:{channel_id}")
    assert any("stream_key.issued" in a for a in audit) and not any(key in a for a in audit)


def test_rotation_replaces_the_key_and_revocation_refuses_it(node: Node) -> None:
    channel_id = node.new_channel()
    old = _issue(node, channel_id)["stream_key"]
    new = _issue(node, channel_id)["stream_key"]
    assert old != new
    assert _channel_of(node, old) is None and _channel_of(node, new) == channel_id
    with node.admin() as http:
        assert http.delete(f"/api/v1/channels/{channel_id}/stream-key").status_code == 204
        again = http.delete(f"/api/v1/channels/{channel_id}/stream-key")
    assert again.status_code == 404 and "no active stream key" in again.json()["detail"]
    assert _channel_of(node, new) is None
    assert _channel_of(node, new + "x") is None and _channel_of(node, "") is None


def test_stream_key_api_refuses_strangers_and_bad_channels(node: Node) -> None:
    channel_id = node.new_channel()
    with node.client() as http:
        assert http.post(f"/api/v1/channels/{channel_id}/stream-key").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert http.delete(f"/api/v1/channels/{channel_id}/stream-key", headers=wrong).status_code == 401
        assert http.get("/api/v1/streams").status_code == 401
    with node.admin() as http:
        missing = http.post("/api/v1/channels/no-such-channel/stream-key")
        assert missing.status_code == 404 and "unknown channel" in missing.json()["detail"]
        assert http.post("/api/v1/channels/Bad..Id/stream-key").status_code == 422
        assert http.get("/api/v1/streams").json() == []
    assert node.scalar("SELECT count(*) FROM stream_keys WHERE channel_id = :c", c=channel_id) == 0


def test_the_redacting_filter_keeps_keys_out_of_log_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.stream-key-redaction")
    logger.addFilter(StreamKeyRedactor())
    key = "live_" + "k3y" * 15
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.info("publish to rtmp://host/live/%s refused", key)
        logger.warning(f"inline {key}")
    assert key not in caplog.text and caplog.text.count("live_<redacted>") == 2


def test_efir_channels_cli_drives_the_admin_api(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("EFIR_ADMIN_TOKEN", node.settings.admin_token.get_secret_value())
    name = f"Cli Channel {tmp_path.name[-6:]}"
    created = runner.invoke(efir, ["channels", "create", name, "--node-url", node.url])
    assert created.exit_code == 0, created.output
    lines = dict(line.split(":", 1) for line in created.output.splitlines() if ":" in line and "  " in line)
    channel_id = lines["Channel"].strip()
    key = lines["Stream key"].strip()
    assert _channel_of(node, key) == channel_id
    assert lines["RTMP URL"].strip().endswith(f"/live/{key}")

    rotated = runner.invoke(efir, ["channels", "rotate-key", channel_id, "--node-url", node.url])
    assert rotated.exit_code == 0, rotated.output
    assert _channel_of(node, key) is None

    # the token from DATA_DIR/admin_token, as `efir up` writes it
    monkeypatch.delenv("EFIR_ADMIN_TOKEN")
    monkeypatch.setenv("EFIR_DATA_DIR", str(tmp_path))
    (tmp_path / "admin_token").write_text(node.settings.admin_token.get_secret_value() + "\n")
    revoked = runner.invoke(efir, ["channels", "revoke-key", channel_id, "--node-url", node.url])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(efir, ["channels", "revoke-key", channel_id, "--node-url", node.url])
    assert again.exit_code != 0 and "404" in again.output

    (tmp_path / "admin_token").unlink()
    refused = runner.invoke(efir, ["channels", "revoke-key", channel_id, "--node-url", node.url])
    assert refused.exit_code != 0 and "no admin token" in refused.output
