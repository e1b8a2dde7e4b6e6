"""Benchmark: how many live ladders this machine sustains in real time, Efir against the ffmpeg CLI.

Input: generated 720p30 H.264 + AAC (FLV, 1 s GOP). Two workloads, each run by Efir's PyAV
Transcoder (its own process per stream, as the node runs them) and by the ffmpeg CLI (one process per
stream), N copies at once:

- ladder: 720p + 480p + 360p x264 (`high` preset rungs, same preset, bitrates and GOP in both), 2 s
  HLS segments, audio copied;
- passthrough: the source remuxed into HLS, no decode or encode.

A copy's speed is media seconds / wall seconds with the input read as fast as it goes (not paced), so
N streams are sustainable in real time when the slowest of N concurrent copies still has speed >= 1.0.
N grows 1, 2, 3, ... until one copy falls below 1.0 (ladders), or doubles up to --max-pass
(passthrough: a remux is cheap, so the aggregate speed at the largest N is reported as the capacity
estimate). Load average before/after is printed: on a shared machine the figures are a floor.

    .venv/bin/python benchmarks/ladders_per_machine.py [--seconds 10] [--speed veryfast]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest_node.media.ladder import ladder  # noqa: E402

RUNGS = ("720p", "480p", "360p")

OURS = """
import sys
from ingest_node.media.governor import LoadGovernor
from ingest_node.media.ladder import Ladder, ladder
from ingest_node.media.transcoder import Transcoder
speed, src, out, names = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4].split(","))
rungs = tuple(r for r in ladder("high", speed=speed).renditions if r.name in names)
Transcoder(src, out, Ladder(name="bench", renditions=rungs), 2.0, window=None,
           governor=LoadGovernor(enabled=False)).run()
"""


def make_input(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def ffmpeg_ladder(src: Path, out: Path, speed: str) -> list[str]:
    specs = {r.name: r for r in ladder("high").renditions}
    graph = (
        f"[0:v]split={len(RUNGS)}"
        + "".join(f"[s{i}]" for i in range(len(RUNGS)))
        + ";"
        + ";".join(f"[s{i}]scale=-2:{specs[n].height}:flags=bicubic[v{i}]" for i, n in enumerate(RUNGS))
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


def ffmpeg_copy(src: Path, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    return [
        "ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-f", "hls", "-hls_time", "2",
        "-hls_list_size", "0", "-hls_segment_filename", str(out / "seg-%06d.ts"), str(out / "index.m3u8"),
    ]  # fmt: skip


def command(who: str, work: str, src: Path, out: Path, speed: str) -> list[str]:
    if who == "ffmpeg":
        return ffmpeg_ladder(src, out, speed) if work == "ladder" else ffmpeg_copy(src, out)
    names = ",".join(RUNGS) if work == "ladder" else "source"
    return [sys.executable, "-c", OURS, speed, str(src), str(out), names]


def concurrent(cmds: list[list[str]], media: float) -> list[float]:
    """Start every command at once; each one's speed (media seconds / its own wall seconds)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL) for c in cmds]
    speeds = []
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a run failed: exit {p.returncode}")
        speeds.append(media / (time.perf_counter() - start))
    return speeds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="media seconds per copy")
    parser.add_argument("--speed", default="veryfast", help="x264 preset of the ladder")
    parser.add_argument("--max-ladders", type=int, default=4)
    parser.add_argument("--max-pass", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg CLI not found (apt-get install ffmpeg)")
    began = time.monotonic()
    print(f"load average before: {load()}  (cores: {os.cpu_count()})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        src = work_dir / "input.flv"
        make_input(src, args.seconds)
        media = float(args.seconds)
        results: dict[tuple[str, str], int] = {}
        for work in ("ladder", "passthrough"):
            for who in ("ffmpeg", "efir"):  # baseline first, then ours, at each N in turn
                n, sustained = 1, 0
                limit = args.max_ladders if work == "ladder" else args.max_pass
                while n <= limit:
                    outs = [work_dir / f"{who}-{work}-{n}-{i}" for i in range(n)]
                    speeds = concurrent([command(who, work, src, o, args.speed) for o in outs], media)
                    for o in outs:
                        shutil.rmtree(o, ignore_errors=True)
                    print(
                        f"{work:11s} {who:6s} N={n}: slowest {min(speeds):.2f}x, aggregate "
                        f"{sum(speeds):.2f}x real time  (load {load()})",
                        flush=True,
                    )
                    if min(speeds) < 1.0:
                        break
                    sustained = n
                    n = n + 1 if work == "ladder" else n * 2
                results[(work, who)] = sustained
        print(f"load average after: {load()}; total {time.monotonic() - began:.0f} s")
        for (work, who), count in results.items():
            print(f"{work} sustained in real time, {who}: {count}")


if __name__ == "__main__":
    main()
