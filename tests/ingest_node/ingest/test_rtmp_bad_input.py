"""Media that is odd or wrong, published with the ffmpeg CLI as OBS would, while another channel is live.

Each case ends one of two ways, and never disturbs the bystander channel (it keeps producing segments):
- served: audio-only and video-only streams are legitimate (a radio show, a silent screen share) and
  play as what they are; a resolution change mid-stream continues the same broadcast, the source
  rendition switching to the new size at a keyframe (logged as a new video configuration);
- refused: a codec the remux pipeline cannot pass through (Sorenson H.263 `flv1`, Nellymoser audio)
  ends the stream at once with `stream.errored` naming the codec, and a log line says the same.
Wrong keys, garbage bytes, a second publisher and a vanishing publisher are in test_rtmp_publish.py and
test_stream_supervision.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.events import Envelope
from services.settings import Settings
from tests.ingest_node.ingest.conftest import FFMPEG, FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import read_events

pytestmark = [pytest.mark.slow, pytest.mark.db]

QUIET = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin"]
TONE = ["-f", "lavfi", "-i", "sine=frequency=440"]
PATTERN = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p"]


def _publish(ingest_node: IngestNode, key: str, argv: list[str]) -> subprocess.Popen[str]:
    """ffmpeg with `argv` (inputs and codecs) publishing in real time to `key`."""
    command = [*QUIET, "-re", *argv, "-f", "flv", f"{ingest_node.rtmp}/{key}"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def bystander(ingest_node: IngestNode) -> Iterator[str]:
    """Another channel, live for the whole test; the test ends by checking it kept producing."""
    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=40)
    wait_until(lambda: ingest_node.segments(channel_id), "the bystander's first segment")
    yield channel_id
    publisher.kill()
    finish(publisher)


def _still_producing(ingest_node: IngestNode, channel_id: str) -> None:
    newest = max(ingest_node.segments(channel_id))
    wait_until(
        lambda: ingest_node.segments(channel_id) and max(ingest_node.segments(channel_id)) > newest,
        "the bystander's next segment",
    )
    assert ingest_node.live(channel_id) is not None


def _events(settings: Settings, broadcast_id: str, wanted: set[str]) -> list[Envelope]:
    def done(events: list[Envelope]) -> bool:
        return wanted <= {e.event_type for e in events if e.payload.get("broadcast_id") == broadcast_id}

    found = read_events(settings, done, topic="streams")
    return [e for e in found if e.payload.get("broadcast_id") == broadcast_id]


def _probe(target: str | Path, entries: str) -> dict[str, object]:
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", entries, "-of", "json", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    result: dict[str, object] = json.loads(probe.stdout)
    return result


def _live_broadcast(ingest_node: IngestNode, channel_id: str) -> str:
    # The stream is listed as live a moment before its broadcast id is assigned: wait for both.
    stream = wait_until(
        lambda: (live := ingest_node.live(channel_id)) is not None and live.broadcast_id and live,
        "the stream to go live",
    )
    return str(stream.broadcast_id)


@pytest.mark.parametrize(
    ("argv", "kinds"),
    [
        pytest.param([*TONE, "-t", "4", "-c:a", "aac"], {"audio"}, id="audio-only"),
        pytest.param([*PATTERN, "-t", "4", *X264], {"video"}, id="video-only"),
    ],
)
def test_audio_only_and_video_only_streams_play_as_what_they_are(
    ingest_node: IngestNode,
    bystander: str,
    argv: list[str],
    kinds: set[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    channel_id, key = ingest_node.channel_with_key()
    publisher = _publish(ingest_node, key, argv)
    broadcast_id = _live_broadcast(ingest_node, channel_id)
    wait_until(lambda: len(ingest_node.segments(channel_id)) >= 2, "two segments")
    probed = _probe(f"{ingest_node.node.url}/live/{channel_id}/master.m3u8", "stream=codec_type,codec_name")
    streams = probed["streams"]
    assert {s["codec_type"] for s in streams} == kinds  # type: ignore[attr-defined]
    code, err = finish(publisher)
    assert code == 0, err
    events = _events(ingest_node.settings, broadcast_id, {"stream.started", "stream.ended"})
    assert "stream.errored" not in {e.event_type for e in events}
    assert "new video configuration" not in caplog.text  # no false alarm on a steady stream
    _still_producing(ingest_node, bystander)


def test_a_resolution_change_mid_stream_continues_the_broadcast_at_the_new_size(
    ingest_node: IngestNode, bystander: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clips = []
    for size in ("640x360", "320x180"):  # two encodes, as OBS sends after a canvas change
        clip = tmp_path / f"{size}.ts"
        subprocess.run(
            [*QUIET, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", *TONE, "-t", "3",
             *X264, "-c:a", "aac", "-f", "mpegts", str(clip)],
            check=True,
            timeout=120,
        )  # fmt: skip
        clips.append(clip)
    playlist = tmp_path / "clips.txt"
    playlist.write_text("".join(f"file '{c}'\n" for c in clips))

    channel_id, key = ingest_node.channel_with_key()
    publisher = _publish(ingest_node, key, ["-f", "concat", "-safe", "0", "-i", str(playlist), "-c", "copy"])
    broadcast_id = _live_broadcast(ingest_node, channel_id)
    first = wait_until(lambda: ingest_node.segments(channel_id), "the first segment")[0]
    first_segment = (ingest_node.hls_dir(channel_id) / "source" / first).read_bytes()
    code, err = finish(publisher)
    assert code == 0, err
    _events(ingest_node.settings, broadcast_id, {"stream.started", "stream.ended"})

    folder = ingest_node.hls_dir(channel_id) / "source"
    (tmp_path / "first.ts").write_bytes(first_segment)
    sizes = []
    for segment in [tmp_path / "first.ts", folder / max(ingest_node.segments(channel_id))]:
        probed = _probe(segment, "stream=codec_type,width,height")
        (video,) = [s for s in probed["streams"] if s["codec_type"] == "video"]  # type: ignore[attr-defined]
        sizes.append((video["width"], video["height"]))
        decode = subprocess.run(
            [*QUIET, "-i", str(segment), "-f", "null", "-"], capture_output=True, text=True, timeout=120
        )
        assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr
    assert sizes == [(640, 360), (320, 180)]
    assert "new video configuration" in caplog.text
    _still_producing(ingest_node, bystander)


@pytest.mark.parametrize(
    ("argv", "codec"),
    [
        pytest.param([*PATTERN, *TONE, "-t", "6", "-c:v", "flv", "-c:a", "aac"], "flv", id="sorenson-h263"),
        pytest.param(
            [*PATTERN, *TONE, "-t", "6", *X264, "-c:a", "nellymoser"], "nellymoser", id="nellymoser-audio"
        ),
    ],
)
def test_an_unsupported_codec_ends_the_stream_with_stream_errored(
    ingest_node: IngestNode, bystander: str, argv: list[str], codec: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    channel_id, key = ingest_node.channel_with_key()
    publisher = _publish(ingest_node, key, argv)
    broadcast_id = _live_broadcast(ingest_node, channel_id)
    events = _events(ingest_node.settings, broadcast_id, {"stream.started", "stream.errored"})
    (errored,) = [e for e in events if e.event_type == "stream.errored"]
    assert "unsupported" in errored.payload["reason"] and repr(codec) in errored.payload["reason"]
    assert "stream.ended" not in {e.event_type for e in events}
    finish(publisher)  # the node closed the connection; ffmpeg's exit status is its own business
    wait_until(lambda: ingest_node.live(channel_id) is None, "the refused stream to be gone")
    assert "unsupported" in caplog.text and repr(codec) in caplog.text
    _still_producing(ingest_node, bystander)
