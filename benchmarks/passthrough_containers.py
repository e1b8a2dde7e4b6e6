"""CPU cost of the passthrough (source) rendition per container: MPEG-TS, fMP4, and fMP4 plus the MPEG-TS
copy the worker keeps for the recording (`source_ts_copy`), on the same clip in the same run.

The fMP4 source rendition exists so hls.js can switch renditions on fMP4 channels (docs/players.md); this
measures what it costs over the TS passthrough it replaces. The clip is made by Debian's ffmpeg (720p30
H.264 + AAC, 1 s GOP, as OBS would send); the Transcoder runs a passthrough-only ladder, CPU time from
`resource.getrusage` of this process, best of `--repeats`.

    uv run python benchmarks/passthrough_containers.py --seconds 60 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest_node.media.governor import LoadGovernor  # noqa: E402
from ingest_node.media.ladder import Ladder, ladder  # noqa: E402
from ingest_node.media.transcoder import Transcoder  # noqa: E402


def make_clip(path: Path, seconds: int) -> None:
    video = f"testsrc2=size=1280x720:rate=30:duration={seconds}"
    audio = f"sine=frequency=440:duration={seconds}"
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0"]
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio]
    subprocess.run([*command, *h264, "-c:a", "aac", "-shortest", "-f", "flv", str(path)], check=True)


def source_only(segment_format: str) -> Ladder:
    base = ladder("low")
    rungs = tuple(r for r in base.renditions if r.passthrough)
    return Ladder(name="source-only", renditions=rungs, segment_format=segment_format)  # type: ignore[arg-type]


def cpu_seconds(clip: Path, out: Path, segment_format: str, ts_copy: bool) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF)
    Transcoder(
        clip,
        out,
        source_only(segment_format),
        1.0,
        window=None,
        governor=LoadGovernor(enabled=False),
        source_ts_copy=ts_copy,
    ).run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.flv"
        make_clip(clip, args.seconds)
        cases = {
            "MPEG-TS (baseline)": ("ts", False),
            "fMP4": ("fmp4", False),
            "fMP4 + TS copy": ("fmp4", True),
        }
        heading = f"source rendition, {args.seconds} s of 720p30"
        print(f"| {heading} | CPU s (best of {args.repeats}) | % of one core |")
        print("|---|---|---|")
        for label, (fmt, copy) in cases.items():
            best = min(
                cpu_seconds(clip, Path(tmp) / f"{fmt}-{copy}-{i}", fmt, copy) for i in range(args.repeats)
            )
            print(f"| {label} | {best:.2f} | {100 * best / args.seconds:.2f}% |")


if __name__ == "__main__":
    main()
