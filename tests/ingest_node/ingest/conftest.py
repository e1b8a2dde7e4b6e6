"""A node of the ingest tests' own with RTMP on a free port, and a publisher: Debian's ffmpeg CLI.

ffmpeg publishes exactly as OBS does (`-f flv rtmp://.../live/<key>`); ffprobe reads what the node
serves over HTTP. Workers remux (`stream_pipeline="remux"`): these tests are about ingest and delivery,
and the 2-core machine must run two streams at once.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import WAIT_SECONDS, Node, ServerThread, running_node

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"


@dataclass
class IngestNode:
    node: Node

    @property
    def settings(self) -> Settings:
        return self.node.settings

    @property
    def rtmp(self) -> str:
        return f"rtmp://127.0.0.1:{self.settings.rtmp_port}/live"

    @property
    def service(self) -> Any:
        return self.node.app.state.ingest

    def channel_with_key(self) -> tuple[str, str]:
        channel_id = self.node.new_channel()
        with self.node.admin() as http:
            answer = http.post(f"/api/v1/channels/{channel_id}/stream-key")
        assert answer.status_code == 201, answer.text
        return channel_id, answer.json()["stream_key"]

    def publish(
        self, key: str, seconds: float = 4, *, realtime: bool = True, video: bool = True
    ) -> subprocess.Popen[str]:
        """Start ffmpeg publishing a test pattern and a tone for `seconds` to `key`."""
        inputs = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"] if video else []
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440"]
        codecs = (
            ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p"] if video else []
        )
        argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
        argv += (["-re"] if realtime else []) + inputs + ["-t", f"{seconds:g}"]
        argv += [*codecs, "-c:a", "aac", "-f", "flv", f"{self.rtmp}/{key}"]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def hls_dir(self, channel_id: str) -> Path:
        return self.settings.hls_root / channel_id

    def segments(self, channel_id: str, rendition: str = "source") -> list[str]:
        folder = self.hls_dir(channel_id) / rendition
        return sorted(p.name for p in folder.glob("*.ts")) if folder.exists() else []

    def live(self, channel_id: str) -> Any:
        return self.service.streams.live.get(channel_id)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll until `condition()` is truthy; fails with `what` when the generous bound runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], timeout: float = WAIT_SECONDS) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def ingest_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    port, rtmp_port = free_port(), free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "ingest-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": rtmp_port,
            "rtmp_idle_timeout_seconds": 5.0,
            "hls_dir": tmp_path_factory.mktemp("live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "remux",
            "stream_reconnect_grace_seconds": 3.0,
            "stream_worker_stall_seconds": 30.0,
            "view_heartbeat_seconds": 0.5,
            "view_region_header": "X-Viewer-Region",
        }
    )
    logging.getLogger("ingest_node").setLevel(logging.DEBUG)
    with running_node(settings) as started:
        yield IngestNode(started)
