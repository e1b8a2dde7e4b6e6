"""Per-channel media settings (latency level, quality preset, codec, segment format): set over the
authenticated admin API and `efir channels media`, validated with clear errors, stored in the database,
and used by the worker when the channel's next stream starts (checked on a real RTMP publish)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from ingest_node.ingest import channel_media
from ingest_node.ingest.models import ChannelMedia
from services.cli import main as efir
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import Node, ServerThread, running_node

pytestmark = pytest.mark.db


def test_media_settings_default_then_set_then_merge(node: Node) -> None:
    channel_id = node.new_channel()
    path = f"/api/v1/channels/{channel_id}/media"
    with node.admin() as http:
        first = http.get(path).json()
        assert first["stored"] is False
        assert first["segment_seconds"] == node.settings.hls_segment_seconds
        assert first["quality_preset"] == node.settings.stream_quality_preset
        assert first["codec"] == "h264" and first["effective_segment_format"] == "ts"
        set_ = http.put(path, json={"latency_level": 1, "quality_preset": "high"})
        assert set_.status_code == 200, set_.text
        assert set_.json()["segment_seconds"] == 1.0 and set_.json()["stored"] is True
        # Omitted fields keep their value; AV1 without a format means fMP4.
        av1 = http.put(path, json={"codec": "av1"}).json()
        assert (av1["latency_level"], av1["quality_preset"], av1["codec"]) == (1, "high", "av1")
        assert av1["segment_format"] is None and av1["effective_segment_format"] == "fmp4"
        back = http.put(path, json={"codec": "h264", "segment_format": "fmp4", "latency_level": 6}).json()
        assert back["segment_seconds"] == 6.0 and back["effective_segment_format"] == "fmp4"
        auto = http.put(path, json={"segment_format": "auto"}).json()
        assert auto["segment_format"] is None and auto["effective_segment_format"] == "ts"
    with node.sessions() as session:
        row = session.get(ChannelMedia, channel_id)
        assert row is not None and (row.latency_level, row.quality_preset) == (6, "high")


def test_bad_media_settings_get_clear_errors_and_change_nothing(node: Node) -> None:
    channel_id = node.new_channel()
    path = f"/api/v1/channels/{channel_id}/media"
    with node.admin() as http:
        assert http.put(path, json={"latency_level": 2, "quality_preset": "low"}).status_code == 200
        cases = [
            ({"latency_level": 0}, "latency_level must be one of [1, 2, 3, 4, 5, 6]"),
            ({"latency_level": 9}, "latency_level must be one of"),
            ({"quality_preset": "ultra"}, "quality_preset must be one of ['high', 'low', 'medium']"),
            ({"codec": "av1", "segment_format": "ts"}, "av1 renditions need fMP4 segments"),
            ({"codec": "hevc", "segment_format": "ts"}, "hevc renditions need fMP4 segments"),
        ]
        for body, message in cases:
            answer = http.put(path, json=body)
            assert answer.status_code == 422 and message in answer.json()["detail"], (body, answer.text)
        for body in ({"codec": "vp9"}, {"segment_format": "webm"}, {"latency": 1}, {"latency_level": "x"}):
            assert http.put(path, json=body).status_code == 422, body
        assert http.put("/api/v1/channels/no-such-channel/media", json={}).status_code == 404
        assert http.get("/api/v1/channels/no-such-channel/media").status_code == 404
        after = http.get(path).json()
    assert (after["latency_level"], after["quality_preset"], after["codec"]) == (2, "low", "h264")


def test_media_settings_need_the_admin_token(node: Node) -> None:
    channel_id = node.new_channel()
    path = f"/api/v1/channels/{channel_id}/media"
    with node.client() as http:
        assert http.get(path).status_code == 401
        assert http.put(path, json={"latency_level": 1}).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert http.put(path, json={"latency_level": 1}, headers=wrong).status_code == 401
    with node.sessions() as session:
        assert session.get(ChannelMedia, channel_id) is None


def test_efir_channels_media_cli(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    channel_id = node.new_channel()
    runner = CliRunner()
    monkeypatch.setenv("EFIR_ADMIN_TOKEN", node.settings.admin_token.get_secret_value())
    base = ["channels", "media", channel_id, "--node-url", node.url]
    shown = runner.invoke(efir, base)
    assert shown.exit_code == 0, shown.output
    assert f"Segment length: {node.settings.hls_segment_seconds:g} s" in shown.output
    changed = runner.invoke(efir, [*base, "--latency-level", "1", "--quality", "low", "--codec", "hevc"])
    assert changed.exit_code == 0, changed.output
    assert "Segment length: 1 s" in changed.output and "Segments:       fmp4" in changed.output
    refused = runner.invoke(efir, [*base, "--segment-format", "ts"])
    assert refused.exit_code != 0 and "hevc renditions need fMP4 segments" in refused.output
    out_of_range = runner.invoke(efir, [*base, "--latency-level", "7"])
    assert out_of_range.exit_code != 0
    with node.sessions() as session:
        config = channel_media.load(session, node.settings, channel_id)
    assert (config.latency_level, config.quality_preset, config.codec) == (1, "low", "hevc")


@pytest.fixture(scope="module")
def media_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "media-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": free_port(),
            "hls_dir": tmp_path_factory.mktemp("media-live"),
            "hls_segment_seconds": 2.0,  # the node default; the channel asks for 1 s
            "stream_pipeline": "transcoder",
            "stream_quality_preset": "medium",
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


@pytest.mark.slow
def test_the_worker_uses_the_channels_level_preset_and_fmp4(media_node: IngestNode) -> None:
    channel_id, key = media_node.channel_with_key()
    with media_node.node.admin() as http:
        answer = http.put(
            f"/api/v1/channels/{channel_id}/media",
            json={"latency_level": 1, "quality_preset": "low", "segment_format": "fmp4"},
        )
    assert answer.status_code == 200, answer.text
    publisher = media_node.publish(key, seconds=4)
    rendition = media_node.hls_dir(channel_id) / "160p"
    wait_until(lambda: len(list(rendition.glob("seg-*.m4s"))) >= 2, "160p fMP4 segments")
    code, err = finish(publisher)
    assert code == 0, err
    # The `low` preset (not the node's `medium`) on a 360p source: source + 160p, 1 s segments.
    master = (media_node.hls_dir(channel_id) / "master.m3u8").read_text()
    assert "160p/index.m3u8" in master and "480p" not in master and "360p" not in master
    playlist = (rendition / "index.m3u8").read_text()
    assert "#EXT-X-TARGETDURATION:1\n" in playlist and '#EXT-X-MAP:URI="init.mp4"' in playlist
    durations = [
        float(line[8:].split(",")[0]) for line in playlist.splitlines() if line.startswith("#EXTINF")
    ]
    assert durations and all(d <= 1.05 for d in durations[:-1])
    # Served by the node with fMP4's MIME type, immutable like every segment; ffprobe plays it.
    base = f"{media_node.node.url}/live/{channel_id}/160p"
    with httpx.Client(timeout=30) as http:
        init = http.get(f"{base}/init.mp4")
        segment = http.get(f"{base}/seg-000000.m4s")
    for response in (init, segment):
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        assert "immutable" in response.headers["cache-control"]
    assert init.content[4:8] == b"ftyp" and segment.content[4:8] in (b"moof", b"styp")
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv",
         f"{base}/index.m3u8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert "h264,284,160" in probe.stdout
