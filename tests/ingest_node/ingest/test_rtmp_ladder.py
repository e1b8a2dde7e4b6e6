"""The join of ingest and media: OBS-style RTMP in, the PyAV ladder (not the remux fallback) out."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import ServerThread, running_node

pytestmark = [pytest.mark.slow, pytest.mark.db]


@pytest.fixture(scope="module")
def ladder_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "ladder-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": free_port(),
            "hls_dir": tmp_path_factory.mktemp("ladder-live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "transcoder",
            "stream_quality_preset": "low",
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


def test_an_rtmp_publish_is_transcoded_into_the_preset_ladder(ladder_node: IngestNode) -> None:
    channel_id, key = ladder_node.channel_with_key()
    publisher = ladder_node.publish(key, seconds=4)
    # The `low` preset on a 360p source: the source itself plus 160p (480p is taller than the source).
    for rendition in ("source", "160p"):
        wait_until(lambda r=rendition: len(ladder_node.segments(channel_id, r)) >= 2, f"{rendition} segments")
    code, err = finish(publisher)
    assert code == 0, err

    master = (ladder_node.hls_dir(channel_id) / "master.m3u8").read_text()
    assert "RESOLUTION=640x360" in master and "RESOLUTION=284x160" in master
    assert "480p" not in master
    url = f"{ladder_node.node.url}/live/{channel_id}/160p/index.m3u8"
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    video = [s for s in json.loads(probe.stdout)["streams"] if "width" in s]
    assert [(v["codec_name"], v["width"], v["height"]) for v in video] == [("h264", 284, 160)]
