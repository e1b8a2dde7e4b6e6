"""Benchmark: where a stream worker's start-up time goes, from the publisher's first byte to the
first segment, cold-started or as a warm spare, with and without the FLV fast probe.

The node's situation without RTMP in between: Debian's ffmpeg publishes a 640x360 30 fps test pattern
and tone with `-re` (H.264 ultrafast, 1 s GOP, AAC) as FLV on a pipe, and this script copies it into a
worker's stdin as the node does (the worker is `python -m ingest_node.media.worker`, the `low` preset
at 1 s segments: passthrough + 160p x264). `cold` starts the worker when the first byte arrives (the
node before warm spares); `spare` starts it first, waits for `spare_ready`, then starts the publisher
and hands the worker its arguments. `--slow-probe` makes the worker ignore the metadata's frame rate
(FFmpeg then measures it, as before the fast probe).

Times are wall-clock seconds after T0, the moment media time 0 entered the pipe (min(wall - out_time)
over the publisher's `-progress` reports). The phases come from a timing shim around the worker
(this script run with `--as-worker`): process start (from /proc), interpreter up, imports done
(PyAV, the worker, the transcoder and its ladder), the input opened (the FLV probe), the outputs and
encoders set up (on the first packet), each rendition's first segment closed.

    uv run python benchmarks/worker_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac"]
PHASES = ["proc_start", "interp", "imports", "args", "probe_end", "setup_end", "seg_source", "seg_160p"]


def as_worker(argv: list[str]) -> int:
    """The worker, with timestamps of its phases written to stderr as one `TIMINGS {...}` line."""
    marks = {"interp": time.time()}
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    marks["proc_start"] = time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    sys.path.insert(0, str(REPO))
    from ingest_node.media import transcoder as tr
    from ingest_node.media import worker

    worker.warm_up()
    marks["imports"] = time.time()
    slow = os.environ.get("BENCH_SLOW_PROBE") == "1"
    original = {name: getattr(tr.Transcoder, name) for name in ("_open_input", "_setup", "_segment_done")}
    peek, wait = worker.peek_flv, worker.wait_as_spare

    def peek_flv(source):  # type: ignore[no-untyped-def]
        stream, fps = peek(source)
        return stream, (None if slow else fps)

    def wait_as_spare(stdin):  # type: ignore[no-untyped-def]
        got = wait(stdin)
        marks["args"] = time.time()
        return got

    def open_input(self):  # type: ignore[no-untyped-def]
        container = original["_open_input"](self)
        marks["probe_end"] = time.time()
        return container

    def setup(self, first):  # type: ignore[no-untyped-def]
        original["_setup"](self, first)
        marks["setup_end"] = time.time()

    def segment_done(self, out, seg):  # type: ignore[no-untyped-def]
        marks.setdefault(f"seg_{out.name}", time.time())
        original["_segment_done"](self, out, seg)
        if "seg_source" in marks and "seg_160p" in marks and "dumped" not in marks:
            marks["dumped"] = 1.0
            os.write(2, ("TIMINGS " + json.dumps(marks) + "\n").encode())

    worker.peek_flv, worker.wait_as_spare = peek_flv, wait_as_spare
    tr.Transcoder._open_input, tr.Transcoder._setup = open_input, setup  # type: ignore[method-assign]
    tr.Transcoder._segment_done = segment_done  # type: ignore[method-assign]
    return worker.main(argv)


def run(mode: str, slow_probe: bool, seconds: int) -> dict[str, float]:
    out = tempfile.mkdtemp(prefix="worker-startup-")
    args = ["--channel-id", "bench", "--out-dir", out, "--segment-seconds", "1", "--preset", "low"]
    args += ["--pipeline", "transcoder"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_SLOW_PROBE": "1" if slow_probe else "0"}
    env["EFIR_LOG_LEVEL"] = "warning"
    command = [sys.executable, __file__, "--as-worker"]
    marks: dict[str, float] = {}

    def start_worker(argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            command + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith(b"TIMINGS "):
                    marks.update(json.loads(line[8:]))

        threading.Thread(target=read_stderr, daemon=True).start()
        return proc

    def drain_stdout(proc: subprocess.Popen[bytes]) -> None:
        threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()

    spare = None
    if mode == "spare":
        spare = start_worker(["--spare"])
        assert spare.stdout is not None
        json.loads(spare.stdout.readline())  # spare_ready
        drain_stdout(spare)
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *SOURCE, "-t", str(seconds)]
    argv += [*X264, "-progress", "pipe:2", "-stats_period", "0.1", "-f", "flv", "pipe:1"]
    pub = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    offsets: list[float] = []

    def read_progress() -> None:
        assert pub.stderr is not None
        for raw in pub.stderr:
            line = raw.decode(errors="replace")
            if line.startswith("out_time_us=") and line.split("=", 1)[1].strip().isdigit():
                value = int(line.split("=", 1)[1])
                if value > 0:
                    offsets.append(time.time() - value / 1e6)

    threading.Thread(target=read_progress, daemon=True).start()
    assert pub.stdout is not None
    first = pub.stdout.read1(65536)
    if spare is not None:
        proc = spare
        assert proc.stdin is not None
        proc.stdin.write((json.dumps({"argv": args}) + "\n").encode())
    else:
        proc = start_worker(args)
        drain_stdout(proc)
        assert proc.stdin is not None
    proc.stdin.write(first)
    while chunk := pub.stdout.read1(65536):
        proc.stdin.write(chunk)
        proc.stdin.flush()
    proc.stdin.close()
    proc.wait(timeout=120)
    pub.wait(timeout=30)
    shutil.rmtree(out, ignore_errors=True)
    t0 = min(offsets)
    return {k: marks[k] - t0 for k in PHASES if k in marks}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each case (medians reported)")
    parser.add_argument("--seconds", type=int, default=4, help="seconds published per run")
    parser.add_argument("--as-worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.as_worker is not None:
        sys.exit(as_worker(args.as_worker))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    cases = [("cold", True), ("cold", False), ("spare", True), ("spare", False)]
    print("case | " + " | ".join(PHASES))
    for mode, slow in cases:
        runs = [run(mode, slow, args.seconds) for _ in range(args.runs)]
        cells = []
        for phase in PHASES:
            values = [r[phase] for r in runs if phase in r]
            cells.append(f"{statistics.median(values):+.2f}" if values else "-")
        name = f"{mode}, {'FFmpeg measures fps' if slow else 'fast probe'}"
        print(f"{name} | " + " | ".join(cells), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
