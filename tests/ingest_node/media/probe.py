"""ffprobe/ffmpeg helpers: the independent player that checks what the pipeline wrote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def probe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def video_packets(path: Path) -> list[dict[str, Any]]:
    args = ("-select_streams", "v", "-show_packets", "-show_entries", "packet=pts_time,flags,size")
    packets: list[dict[str, Any]] = probe(path, *args)["packets"]
    return packets


def streams(path: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = probe(path, "-show_streams")["streams"]
    return found


def decodes(path: Path) -> bool:
    """ffmpeg decodes every frame of `path` without a single error message."""
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run.returncode == 0 and not run.stderr.strip()


def framemd5(path: Path) -> list[str]:
    """MD5 of every decoded video frame: equal lists mean equal pictures (no re-encode happened)."""
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v", "-f", "framemd5", "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line.rsplit(",", 1)[1].strip() for line in run.stdout.splitlines() if line and line[0] != "#"]


def master_variants(path: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) of every EXT-X-STREAM-INF line of a master playlist."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            out.append(({k: v.strip('"') for k, v in attrs.items()}, lines[i + 1]))
    return out


def playlist_segments(path: Path) -> list[tuple[float, str]]:
    """(EXTINF duration, uri) of every segment of a media playlist."""
    lines = path.read_text().splitlines()
    return [
        (float(line[8:].split(",")[0]), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def with_init(playlist: Path, uri: str, out: Path) -> Path:
    """An fMP4 media segment as a player sees it: its EXT-X-MAP init segment followed by the segment,
    joined into one file ffprobe/ffmpeg can read. `playlist` is the media playlist listing `uri`."""
    init = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXT-X-MAP:"):
            init = re.search(r'URI="([^"]+)"', line).group(1)  # type: ignore[union-attr]
        elif line == uri:
            break
    assert init is not None, f"{uri} has no EXT-X-MAP before it in {playlist}"
    out.write_bytes((playlist.parent / init).read_bytes() + (playlist.parent / uri).read_bytes())
    return out
