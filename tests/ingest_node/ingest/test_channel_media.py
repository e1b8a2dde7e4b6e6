"""Per-channel media settings (latency level, quality preset, codec, segment format): set over the
authenticated admin API and `efir channels media`, validated with clear errors, stored in the database,
and used by the worker when the channel's next stream starts (checked on a real RTMP publish, fMP4
through a mid-stream resolution change included)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

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
from tests.ingest_node.media.probe import decodes, playlist_segments, streams, with_init

pytestmark = pytest.mark.db

QUIET = ["/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]


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


@pytest.mark.slow
def test_an_fmp4_channel_follows_a_resolution_change_with_a_new_init_segment(
    media_node: IngestNode, tmp_path: Path
) -> None:
    """640x360 then 320x180 in one publish (two encodes joined, as test_rtmp_bad_input.py does) to an
    fMP4 channel: every rendition is fMP4, the source gets a new init segment (a discontinuity and a
    new EXT-X-MAP) whose segments decode at the new size, the encoded rung keeps its size, and the
    recording is still the source's own packets as MPEG-TS, at both sizes."""
    clips = []
    for size in ("640x360", "320x180"):
        clip = tmp_path / f"{size}.ts"
        subprocess.run(
            [*QUIET, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-f", "lavfi", "-i",
             "sine=frequency=440", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", str(clip)],
            check=True, timeout=120,
        )  # fmt: skip
        clips.append(clip)
    listing = tmp_path / "clips.txt"
    listing.write_text("".join(f"file '{c}'\n" for c in clips))
    channel_id, key = media_node.channel_with_key()
    with media_node.node.admin() as http:
        answer = http.put(
            f"/api/v1/channels/{channel_id}/media",
            json={"latency_level": 1, "quality_preset": "low", "segment_format": "fmp4"},
        )
    assert answer.status_code == 200, answer.text
    publisher = subprocess.Popen(
        [*QUIET, "-re", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-f", "flv",
         f"{media_node.rtmp}/{key}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stream = wait_until(
        lambda: (live := media_node.live(channel_id)) is not None and live.broadcast_id and live,
        "the stream to go live",
    )
    broadcast_id = str(stream.broadcast_id)
    code, err = finish(publisher)
    assert code == 0, err

    root = media_node.hls_dir(channel_id)
    wait_until(lambda: "#EXT-X-ENDLIST" in (root / "source" / "index.m3u8").read_text(), "the end")
    source = root / "source" / "index.m3u8"
    text = source.read_text()
    assert "#EXT-X-VERSION:6" in text
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-2.mp4"' in text, text
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    for name in ("source", "160p"):
        playlist = root / name / "index.m3u8"
        for i, (_duration, uri) in enumerate(playlist_segments(playlist)):
            assert uri.endswith(".m4s"), (name, uri)
            joined = with_init(playlist, uri, tmp_path / f"{name}-{i}.mp4")
            assert decodes(joined), f"{name}/{uri} does not decode with its EXT-X-MAP"
            (video,) = [s for s in streams(joined) if s["codec_type"] == "video"]
            sizes[(name, uri)] = (video["width"], video["height"])
    after_change = text.split('URI="init-2.mp4"')[1]
    for (name, uri), shown in sizes.items():
        if name == "160p":
            assert shown == (284, 160), (uri, shown)
        elif uri in after_change:
            assert shown == (320, 180), (uri, shown)
        else:
            assert shown == (640, 360), (uri, shown)

    def listed() -> list[dict[str, object]]:
        with media_node.node.client() as http:
            found = http.get(f"/api/v1/channels/{channel_id}/recordings")
        assert found.status_code == 200, found.text
        return [r for r in found.json() if r["broadcast_id"] == broadcast_id]

    wait_until(listed, "the recording to be listed")
    base = f"{media_node.node.url}/vod/{channel_id}/{broadcast_id}"
    with httpx.Client(timeout=30) as http:
        init = http.get(f"{media_node.node.url}/live/{channel_id}/source/init-2.mp4")
        assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
        assert init.content == (root / "source" / "init-2.mp4").read_bytes()
        vod = http.get(f"{base}/index.m3u8").text
        segments = [line for line in vod.splitlines() if line and not line.startswith("#")]
        assert segments and all(s.endswith(".ts") for s in segments) and "#EXT-X-MAP" not in vod
        recorded = []
        for uri in (segments[0], segments[-1]):
            answer = http.get(f"{base}/{uri}")
            assert answer.headers["content-type"] == "video/mp2t"
            (tmp_path / uri).write_bytes(answer.content)
            assert decodes(tmp_path / uri)
            recorded.append(
                {(s["width"], s["height"]) for s in streams(tmp_path / uri) if s["codec_type"] == "video"}
            )
    assert recorded == [{(640, 360)}, {(320, 180)}]
