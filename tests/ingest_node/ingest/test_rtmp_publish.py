"""RTMP ingest end to end: ffmpeg publishes as OBS would, the node serves HLS, ffprobe reads it back.

Also the refusals (wrong, revoked and malformed keys, a second publisher, garbage bytes): each is
refused before any media reaches a worker, and the node keeps serving the other streams.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess

import pytest

from services.events import Envelope
from services.settings import Settings
from tests.ingest_node.ingest.conftest import FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import read_events

pytestmark = [pytest.mark.slow, pytest.mark.db]


def _stream_events(settings: Settings, broadcast_id: str, wanted: set[str]) -> list[Envelope]:
    def done(events: list[Envelope]) -> bool:
        return wanted <= {e.event_type for e in events if e.payload.get("broadcast_id") == broadcast_id}

    found = read_events(settings, done, topic="streams")
    return [e for e in found if e.payload.get("broadcast_id") == broadcast_id]


def test_publish_with_a_valid_key_serves_hls_that_ffprobe_reads(
    ingest_node: IngestNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=5)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 2, "two segments of the live stream")
    stream = ingest_node.live(channel_id)
    assert stream is not None and stream.publisher is not None
    broadcast_id = stream.broadcast_id

    url = f"{ingest_node.node.url}/live/{channel_id}/master.m3u8"
    probe = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    assert streams["audio"]["codec_name"] == "aac"

    code, err = finish(publisher)
    assert code == 0, err
    events = _stream_events(ingest_node.settings, broadcast_id, {"stream.started", "stream.ended"})
    kinds = [e.event_type for e in events]
    assert kinds.count("stream.started") == 1 and kinds.count("stream.ended") == 1
    assert all(e.channel_id == channel_id for e in events)
    assert key not in caplog.text, "the stream key reached the logs"
    assert "publishing on channel" in caplog.text


def _refused(ingest_node: IngestNode, key: str) -> str:
    """Publish to `key`, expect ffmpeg to fail; returns its error output."""
    code, err = finish(ingest_node.publish(key, seconds=2))
    assert code != 0, "the publish was accepted"
    return err


def test_wrong_malformed_and_revoked_keys_are_refused_before_any_media(
    ingest_node: IngestNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    channel_id, key = ingest_node.channel_with_key()
    started = ingest_node.service.streams.workers_started

    wrong = "live_" + "A" * 43
    _refused(ingest_node, wrong)
    _refused(ingest_node, "not-a-key")
    _refused(ingest_node, key[:-1])  # one character short of the real key

    with ingest_node.node.admin() as http:
        assert http.delete(f"/api/v1/channels/{channel_id}/stream-key").status_code == 204
    _refused(ingest_node, key)

    assert ingest_node.service.streams.workers_started == started, "a refused publish started a worker"
    assert not ingest_node.hls_dir(channel_id).exists()
    assert ingest_node.live(channel_id) is None
    assert "unknown or revoked stream key" in caplog.text
    assert key not in caplog.text and wrong not in caplog.text


def test_a_second_publisher_on_a_live_key_is_refused_and_the_first_keeps_going(
    ingest_node: IngestNode,
) -> None:
    channel_id, key = ingest_node.channel_with_key()
    first = ingest_node.publish(key, seconds=8)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 1, "the first publisher's segments")
    stream = ingest_node.live(channel_id)
    err = _refused(ingest_node, key)
    assert err  # ffmpeg says why it could not publish
    assert ingest_node.live(channel_id) is stream and stream.publisher is not None
    before = len(ingest_node.segments(channel_id))
    wait_until(
        lambda: len(ingest_node.segments(channel_id)) > before, "more segments from the first publisher"
    )
    code, err = finish(first)
    assert code == 0, err


def _garbage_connection(port: int, data: bytes) -> bool:
    """Send `data`, then report whether the server closed the connection (it must, sooner or later)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
            while sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        return True


def test_garbage_on_the_rtmp_port_never_disturbs_a_live_stream(ingest_node: IngestNode) -> None:
    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=8)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 1, "segments of the live stream")
    port = ingest_node.settings.rtmp_port
    garbage = [
        bytes(range(256)) * 20,  # not RTMP at all
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x03"
        + bytes(1536)
        + bytes(1536)
        + b"\x3f\xff\xff\xff\xff\xff\xff\x14" * 50,  # handshake, bad chunks
        b"\x03"
        + bytes(1536)
        + bytes(1536)
        + b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00",
    ]
    for data in garbage:
        assert _garbage_connection(port, data)
    before = len(ingest_node.segments(channel_id))
    wait_until(lambda: len(ingest_node.segments(channel_id)) > before, "segments after the garbage")
    code, err = finish(publisher)
    assert code == 0, err
    with ingest_node.node.client() as http:
        assert http.get("/healthz").status_code == 200
