"""The FLV framer on real FLV from ffmpeg: a new video configuration mid-stream is counted (both as a new
sequence header and as a different SPS inside a keyframe), a steady stream counts none, and what the
framer writes is FLV that ffprobe reads with both sizes in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ingest_node.ingest.flv import TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, FlvFramer
from tests.ingest_node.ingest.conftest import FFMPEG, FFPROBE

QUIET = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p"]


def _tags(flv: bytes) -> list[tuple[int, int, bytes]]:
    """(kind, timestamp, body) of every tag of an FLV file: what RTMP messages carry."""
    assert flv[:3] == b"FLV"
    pos = int.from_bytes(flv[5:9], "big") + 4
    tags = []
    while pos + 11 <= len(flv):
        kind, size = flv[pos], int.from_bytes(flv[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(flv[pos + 4 : pos + 7], "big") | flv[pos + 7] << 24
        tags.append((kind, ts, flv[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags


def _clip(path: Path, size: str, fmt: str) -> Path:
    subprocess.run(
        [*QUIET, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-f", "lavfi", "-i", "sine",
         "-t", "1", *X264, "-c:a", "aac", "-f", fmt, str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def _frame(flv: bytes) -> tuple[FlvFramer, bytes]:
    framer = FlvFramer()
    out = framer.restart()
    for kind, ts, body in _tags(flv):
        if kind in (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT):
            out += framer.frame(kind, ts, body)
    return framer, out


def test_a_steady_stream_has_no_new_video_configuration(tmp_path: Path) -> None:
    framer, _ = _frame(_clip(tmp_path / "steady.flv", "320x180", "flv").read_bytes())
    assert framer.video_header is not None and framer.video_changes == 0


def test_a_resolution_change_is_counted_and_passes_through(tmp_path: Path) -> None:
    clips = [_clip(tmp_path / f"{size}.ts", size, "mpegts") for size in ("320x180", "160x90")]
    (tmp_path / "list.txt").write_text("".join(f"file '{c}'\n" for c in clips))
    changed = tmp_path / "changed.flv"
    subprocess.run(
        [*QUIET, "-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(changed)],
        check=True,
        timeout=60,
    )
    framer, out = _frame(changed.read_bytes())
    assert framer.video_changes == 1

    framed = tmp_path / "framed.flv"
    framed.write_bytes(out)
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries", "frame=width,height",
         "-of", "csv=p=0", str(framed)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    sizes = {tuple(line.split(",")[:2]) for line in probe.stdout.split()}
    assert {("320", "180"), ("160", "90")} <= sizes
