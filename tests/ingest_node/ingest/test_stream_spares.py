"""Warm spare workers (EFIR_STREAM_WORKER_SPARES): the next stream starts on a worker that was started
ahead (PyAV already imported), a replacement is started behind it, a spare that dies unused is
replaced, and 0 keeps none (every worker starts cold). Real node, real worker processes, ffmpeg
publishing over RTMP as OBS would."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import IngestNode, finish, wait_until
from tests.ingest_node.live_node import ServerThread, running_node

pytestmark = [pytest.mark.slow, pytest.mark.db]


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _warm_spare(node: IngestNode, not_pid: int | None = None) -> Any:
    """The node's spare once it has imported everything (and is not `not_pid`)."""

    def ready() -> Any:
        spares = node.service.streams.spares
        return next((s for s in spares if s.warm and s.pid != not_pid), None)

    return wait_until(ready, "a warm spare worker")


def test_a_stream_starts_on_the_warm_spare_and_another_spare_takes_its_place(
    ingest_node: IngestNode,
) -> None:
    streams = ingest_node.service.streams
    spare = _warm_spare(ingest_node)
    assert "--spare" in _cmdline(spare.pid) and spare.stream is None
    used = streams.spares_used

    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=4)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 2, "segments of the stream")
    stream = ingest_node.live(channel_id)
    assert stream.worker is spare and stream.worker.pid == spare.pid and spare.stream is stream
    assert streams.spares_used == used + 1
    replacement = _warm_spare(ingest_node, not_pid=spare.pid)
    assert replacement.stream is None and len(streams.spares) == ingest_node.settings.stream_worker_spares

    code, err = finish(publisher)
    assert code == 0, err
    wait_until(lambda: ingest_node.live(channel_id) is None, "the end of the broadcast")
    assert spare.exited.is_set() and spare.proc.returncode == 0  # one stream per process, then gone
    assert replacement.proc.returncode is None  # the new spare waits for the next stream


def test_a_spare_that_dies_unused_is_replaced_and_the_replacement_serves_the_next_stream(
    ingest_node: IngestNode,
) -> None:
    victim = _warm_spare(ingest_node)
    os.kill(victim.pid, signal.SIGKILL)
    replacement = _warm_spare(ingest_node, not_pid=victim.pid)
    assert victim.exited.is_set() and victim not in ingest_node.service.streams.spares

    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=3)
    wait_until(lambda: ingest_node.segments(channel_id), "segments of the stream")
    assert ingest_node.live(channel_id).worker.pid == replacement.pid
    code, err = finish(publisher)
    assert code == 0, err


@pytest.fixture(scope="module")
def cold_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "cold-ingest-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": free_port(),
            "hls_dir": tmp_path_factory.mktemp("cold-live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "remux",
            "stream_worker_spares": 0,
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


def test_zero_spares_keeps_none_and_starts_each_worker_cold(cold_node: IngestNode) -> None:
    streams = cold_node.service.streams
    channel_id, key = cold_node.channel_with_key()
    publisher = cold_node.publish(key, seconds=3)
    wait_until(lambda: cold_node.segments(channel_id), "segments of the stream")
    worker = cold_node.live(channel_id).worker
    assert "--spare" not in _cmdline(worker.pid) and "--channel-id" in _cmdline(worker.pid)
    code, err = finish(publisher)
    assert code == 0, err
    assert streams.spares == [] and streams.spares_used == 0 and streams.workers_started == 1
