"""Benchmark: CPU seconds per media second of our PyAV ladder vs the same ladder in the ffmpeg CLI.

Both encode the same generated 1080p30 H.264 + AAC input to 720p + 480p + 360p x264 (same preset,
bitrates, max rates, buffer sizes, GOP = 2 s, no scene-cut keyframes, bicubic scaling, audio copied)
as HLS with 2 s segments. Each runs as a child process, one after the other in the same run, and is
measured with getrusage(RUSAGE_CHILDREN) (user + system CPU of the child and its threads), so the
figures are comparable on this noisy machine. Target (issue 3): ours <= 1.15 x ffmpeg's CPU.

    .venv/bin/python benchmarks/ladder_vs_ffmpeg.py [--seconds 20] [--speed veryfast] [--repeat 1]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNGS = ("720p", "480p", "360p")

OURS = """
import sys
from ingest_node.media.governor import LoadGovernor
from ingest_node.media.ladder import Ladder, ladder
from ingest_node.media.transcoder import Transcoder
speed, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
rungs = tuple(r for r in ladder("high", speed=speed).renditions if r.name in {names!r})
Transcoder(src, out, Ladder(name="bench", renditions=rungs), 2.0, window=None,
           governor=LoadGovernor(enabled=False)).run()
"""


def make_input(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-g", "60",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def ffmpeg_command(src: Path, out: Path, speed: str) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ingest_node.media.ladder import ladder

    specs = {r.name: r for r in ladder("high").renditions}
    sizes = {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}
    graph = (
        f"[0:v]split={len(RUNGS)}"
        + "".join(f"[s{i}]" for i in range(len(RUNGS)))
        + ";"
        + ";".join(
            f"[s{i}]scale={sizes[n][0]}:{sizes[n][1]}:flags=bicubic[v{i}]" for i, n in enumerate(RUNGS)
        )
    )
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-filter_complex", graph]
    for i, name in enumerate(RUNGS):
        r = specs[name]
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        cmd += [
            "-map", f"[v{i}]", "-map", "0:a", "-c:v", "libx264", "-preset", speed,
            "-b:v", f"{r.video_kbps}k", "-maxrate", f"{r.maxrate_kbps}k", "-bufsize", f"{r.bufsize_kbps}k",
            "-g", "60", "-forced-idr", "1", "-x264-params", "scenecut=0:open-gop=0", "-c:a", "copy",
            "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
            "-hls_segment_filename", str(folder / "seg-%06d.ts"), str(folder / "index.m3u8"),
        ]  # fmt: skip
    return cmd


def measure(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--speed", default="veryfast")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg CLI not found (apt-get install ffmpeg)")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "input.flv"
        make_input(src, args.seconds)
        ours_cpu, theirs_cpu, ours_wall, theirs_wall = [], [], [], []
        for i in range(args.repeat):
            out = work / f"ffmpeg-{i}"
            cpu, wall = measure(ffmpeg_command(src, out, args.speed), root)
            theirs_cpu.append(cpu)
            theirs_wall.append(wall)
            script = OURS.format(names=set(RUNGS))
            cpu, wall = measure(
                [sys.executable, "-c", script, args.speed, str(src), str(work / f"ours-{i}")], root
            )
            ours_cpu.append(cpu)
            ours_wall.append(wall)
        ours, theirs = sorted(ours_cpu)[len(ours_cpu) // 2], sorted(theirs_cpu)[len(theirs_cpu) // 2]
        media = float(args.seconds)
        print(f"input: {args.seconds} s of 1080p30 H.264 + AAC; ladder {'+'.join(RUNGS)} x264 {args.speed}")
        print(
            f"ffmpeg CLI : {theirs / media:.3f} CPU s per media s, {media / min(theirs_wall):.2f}x real time"
        )
        print(f"Efir PyAV  : {ours / media:.3f} CPU s per media s, {media / min(ours_wall):.2f}x real time")
        print(f"ratio (ours / ffmpeg CPU): {ours / theirs:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
