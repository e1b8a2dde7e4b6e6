"""Supervision of stream workers: a killed worker is restarted without disturbing another channel, a
stuck one is killed, one that keeps failing ends its stream with `stream.errored`, and a publisher that
reconnects within the grace period continues the same broadcast (same URLs, a discontinuity)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from services.events import Envelope
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import IngestNode, finish, wait_until
from tests.ingest_node.live_node import ServerThread, read_events, running_node

pytestmark = [pytest.mark.slow, pytest.mark.db]


def _events(settings: Settings, broadcast_id: str, wanted: set[str]) -> list[Envelope]:
    def done(events: list[Envelope]) -> bool:
        return wanted <= {e.event_type for e in events if e.payload.get("broadcast_id") == broadcast_id}

    return [
        e
        for e in read_events(settings, done, topic="streams")
        if e.payload.get("broadcast_id") == broadcast_id
    ]


def test_killing_one_worker_restarts_it_and_never_stalls_the_other_channel(ingest_node: IngestNode) -> None:
    (a, key_a), (b, key_b) = ingest_node.channel_with_key(), ingest_node.channel_with_key()
    pub_a, pub_b = ingest_node.publish(key_a, seconds=12), ingest_node.publish(key_b, seconds=12)
    wait_until(lambda: ingest_node.segments(a) and ingest_node.segments(b), "segments of both channels")
    stream_a, stream_b = ingest_node.live(a), ingest_node.live(b)
    victim = stream_a.worker.pid
    pid_b = stream_b.worker.pid

    os.kill(victim, signal.SIGKILL)
    before_b = len(ingest_node.segments(b))
    wait_until(lambda: len(ingest_node.segments(b)) >= before_b + 2, "channel b's segments after the kill")
    assert stream_b.worker is not None and stream_b.worker.pid == pid_b and stream_b.restarts == 0

    wait_until(lambda: stream_a.worker is not None and stream_a.worker.pid != victim, "a restarted worker")
    assert stream_a.restarts == 1
    before_a = len(ingest_node.segments(a))
    wait_until(lambda: len(ingest_node.segments(a)) > before_a, "segments of the restarted worker")
    playlist = (ingest_node.hls_dir(a) / "source" / "index.m3u8").read_text()
    assert "#EXT-X-DISCONTINUITY" in playlist

    with ingest_node.node.client() as http:  # the API answered all along
        assert http.get(f"/api/v1/channels/{a}/live").json()["live"] is True
    for proc in (pub_a, pub_b):
        code, err = finish(proc)
        assert code == 0, err


def test_a_publisher_that_vanishes_and_returns_within_grace_continues_the_broadcast(
    ingest_node: IngestNode,
) -> None:
    channel_id, key = ingest_node.channel_with_key()
    first = ingest_node.publish(key, seconds=30)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 2, "segments of the first connection")
    stream = ingest_node.live(channel_id)
    broadcast_id = stream.broadcast_id
    first.kill()  # vanishes mid-GOP, no deleteStream
    finish(first)
    wait_until(lambda: stream.publisher is None, "the node noticing the publisher left")

    second = ingest_node.publish(key, seconds=3)
    wait_until(lambda: stream.publisher is not None, "the reconnect")
    assert ingest_node.live(channel_id) is stream and stream.broadcast_id == broadcast_id
    code, err = finish(second)
    assert code == 0, err
    events = _events(ingest_node.settings, broadcast_id, {"stream.started", "stream.ended"})
    # One broadcast: one start, one end, no error (its recording.ready, same broadcast id, may or may not
    # have landed by now, so it is not counted here).
    lifecycle = {"stream.started", "stream.ended", "stream.errored"}
    kinds = sorted(e.event_type for e in events if e.event_type in lifecycle)
    assert kinds == ["stream.ended", "stream.started"]
    playlist = (ingest_node.hls_dir(channel_id) / "source" / "index.m3u8").read_text()
    assert "#EXT-X-DISCONTINUITY" in playlist


@pytest.fixture(scope="module")
def strict_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    """No restarts allowed and a short stall limit: the first failure ends the stream."""
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "strict-ingest-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": free_port(),
            "hls_dir": tmp_path_factory.mktemp("strict-live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "remux",
            "stream_worker_max_restarts": 0,
            "stream_worker_stall_seconds": 6.0,
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


def test_a_stuck_worker_is_killed_and_without_restarts_left_the_stream_errors(
    strict_node: IngestNode,
) -> None:
    channel_id, key = strict_node.channel_with_key()
    publisher = strict_node.publish(key, seconds=40)
    wait_until(lambda: strict_node.segments(channel_id), "segments")
    stream = strict_node.live(channel_id)
    broadcast_id = stream.broadcast_id
    os.kill(stream.worker.pid, signal.SIGSTOP)  # alive but making no progress
    code, _ = finish(publisher)
    assert code != 0, "the publisher of an errored stream must be disconnected"
    events = _events(strict_node.settings, broadcast_id, {"stream.started", "stream.errored"})
    errored = [e for e in events if e.event_type == "stream.errored"]
    assert len(errored) == 1 and "stalled" in errored[0].payload["reason"]
    assert not [e for e in events if e.event_type == "stream.ended"]
    assert strict_node.live(channel_id) is None
