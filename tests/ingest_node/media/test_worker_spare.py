"""The worker's warm-spare mode and its FLV peek, with real processes and real FLV from ffmpeg.

A spare (`python -m ingest_node.media.worker --spare`) reports `spare_ready`, then serves exactly the
stream whose arguments come as the first line of its stdin; one whose stdin closes first exits 0.
`peek_flv` reads the frame rate from the metadata (what lets the worker skip FFmpeg's frame-rate
measuring) and gives every byte back to the demuxer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from ingest_node.media.worker import peek_flv
from tests.ingest_node.media.probe import ffmpeg

REPO = Path(__file__).resolve().parents[3]
WAIT = 120


def _spare() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest_node.media.worker", "--spare"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )


def test_a_spare_reports_ready_then_serves_the_stream_it_is_given(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    spare = _spare()
    assert spare.stdout is not None and spare.stdin is not None
    first = json.loads(spare.stdout.readline())
    assert first == {"event": "spare_ready", "pid": spare.pid}
    out = tmp_path / "out"
    argv = ["--channel-id", "spare", "--out-dir", str(out), "--segment-seconds", "1", "--pipeline", "remux"]
    spare.stdin.write((json.dumps({"argv": argv}) + "\n").encode())
    spare.stdin.write(clips["flv"].read_bytes())
    spare.stdin.close()
    events = [json.loads(line) for line in spare.stdout]
    assert spare.wait(timeout=WAIT) == 0, spare.stderr.read() if spare.stderr else ""
    assert events and events[0]["event"] == "ready" and events[0]["renditions"] == ["source"]
    playlist = (out / "source" / "index.m3u8").read_text()
    assert playlist.count("#EXTINF") >= 3  # the 4 s clip in 1 s segments
    assert (out / "master.m3u8").exists()


def test_a_spare_whose_stdin_closes_before_a_stream_exits_quietly() -> None:
    spare = _spare()
    assert spare.stdout is not None and spare.stdin is not None
    assert json.loads(spare.stdout.readline())["event"] == "spare_ready"
    spare.stdin.close()
    assert spare.wait(timeout=WAIT) == 0
    assert spare.stdout.read() == b""


def test_peek_reads_the_declared_frame_rate_and_gives_every_byte_back(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    data = clips["flv"].read_bytes()
    stream, fps = peek_flv(io.BytesIO(data))
    assert fps == 30.0
    assert stream.read(7) + stream.read(100) + stream.read() == data

    bare = tmp_path / "no_metadata.flv"  # some publishers send no onMetaData: FFmpeg measures the rate
    ffmpeg("-i", str(clips["flv"]), "-c", "copy", "-flvflags", "no_metadata", str(bare))
    stream, fps = peek_flv(io.BytesIO(bare.read_bytes()))
    assert fps is None
    assert stream.read() == bare.read_bytes()

    stream, fps = peek_flv(io.BytesIO(b"not an flv stream"))
    assert fps is None and stream.read() == b"not an flv stream"
