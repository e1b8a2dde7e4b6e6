"""Benchmark: latency from a frame entering RTMP to its segment appearing in the media playlist.

Efir: a node (`python -m ingest_node`, SQLite, embedded broker, RTMP on, the PyAV transcoder) with one
channel at latency level 1 (1 s segments) and the `low` preset (source passthrough + 160p x264 on a
640x360 source). Baseline, in the same run: the ffmpeg CLI as the RTMP server, writing HLS directly
(`ffmpeg -listen 1 -i rtmp://... -c copy -f hls -hls_time 1`), i.e. the source rendition only.

Both are fed the same way: Debian's ffmpeg publishes a lavfi test pattern + tone with `-re` (real-time
pacing), H.264 with a 1 s GOP, as OBS would. Wall-clock correlation: the publisher reports its
progress every 0.1 s (`-progress`, `out_time`), so the wall time at which media time 0 entered the
RTMP connection is `min(wall - out_time)` over its reports. The playlist is polled every 10 ms; a
segment starting at media time `s` (sum of the EXTINF before it) and first listed at wall time `W` has
latency `W - (T0 + s)`: the time from its first frame entering RTMP until a player can see it, which
includes the segment's own duration (target at 1 s segments: <= 1.5 s).

    .venv/bin/python benchmarks/rtmp_latency.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from services.broker import EmbeddedBroker  # noqa: E402

ADMIN = "bench-admin-token"
STEADY_FROM = 5  # segments before this index may still carry the start-up backlog
DEADLINE = 120.0
SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


@dataclass
class Publisher:
    """ffmpeg publishing in real time; `t0` is the wall time media time 0 entered RTMP."""

    proc: subprocess.Popen[str]
    offsets: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, url: str, seconds: int) -> Publisher:
        argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *SOURCE]
        argv += ["-t", str(seconds), *X264, "-progress", "pipe:1", "-stats_period", "0.1", "-f", "flv", url]
        pub = cls(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        threading.Thread(target=pub._read, daemon=True).start()
        return pub

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("out_time_us="):
                value = line.split("=", 1)[1].strip()
                if value.isdigit() and int(value) > 0:
                    self.offsets.append(time.time() - int(value) / 1e6)

    @property
    def t0(self) -> float:
        return min(self.offsets)

    def wait(self) -> None:
        self.proc.wait(timeout=DEADLINE + 60)


def watch(playlist: Path, stop: threading.Event, seen: dict[str, tuple[float, float]]) -> None:
    """Poll `playlist` every 10 ms: segment uri -> (wall time first listed, media start time)."""
    durations: dict[int, float] = {}
    while not stop.is_set():
        try:
            text = playlist.read_text()
        except OSError:
            time.sleep(0.01)
            continue
        now = time.time()
        sequence, duration = 0, 0.0
        for line in text.splitlines():
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                sequence = int(line.split(":")[1])
            elif line.startswith("#EXTINF:"):
                duration = float(line[8:].split(",")[0])
            elif line and not line.startswith("#"):
                durations[sequence] = duration
                if line not in seen:
                    start = sum(durations.get(n, 0.0) for n in range(sequence))
                    seen[line] = (now, start)
                sequence += 1
        time.sleep(0.01)


def latencies(seen: dict[str, tuple[float, float]], t0: float) -> list[float]:
    return [wall - (t0 + start) for wall, start in seen.values()]


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return (
        f"n={len(values)} median {statistics.median(values):.2f} s, p90 {p90:.2f} s, "
        f"min {values[0]:.2f} s, max {values[-1]:.2f} s"
    )


def measure(publish_url: str, playlists: dict[str, Path], seconds: int) -> dict[str, list[float]]:
    stop = threading.Event()
    seen: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in playlists}
    threads = [
        threading.Thread(target=watch, args=(path, stop, seen[name]), daemon=True)
        for name, path in playlists.items()
    ]
    for t in threads:
        t.start()
    pub = Publisher.start(publish_url, seconds)
    pub.wait()
    time.sleep(2.0)  # the last segments close when the input ends
    stop.set()
    for t in threads:
        t.join()
    # The first segment includes connection set-up and the decoder's probing: reported, not averaged.
    return {name: latencies(s, pub.t0) for name, s in seen.items()}


def run_efir(tmp: Path, broker: EmbeddedBroker, seconds: int) -> dict[str, list[float]]:
    port, rtmp = free_port(), free_port()
    env = {
        **os.environ,
        "EFIR_DATA_DIR": str(tmp / "efir"),
        "EFIR_KAFKA_BOOTSTRAP": broker.bootstrap,
        "EFIR_NODE_PORT": str(port),
        "EFIR_NODE_HOST": "127.0.0.1",
        "EFIR_ADMIN_TOKEN": ADMIN,
        "EFIR_LOG_LEVEL": os.environ.get("EFIR_LOG_LEVEL", "warning"),
        "EFIR_RTMP_ENABLED": "true",
        "EFIR_RTMP_HOST": "127.0.0.1",
        "EFIR_RTMP_PORT": str(rtmp),
        "EFIR_STREAM_PIPELINE": "transcoder",
    }
    (tmp / "efir").mkdir()
    node = subprocess.Popen([sys.executable, "-m", "ingest_node"], cwd=REPO, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        admin.post("/api/v1/channels", json={"channel_id": "lat", "name": "lat"}).raise_for_status()
        media = {"latency_level": 1, "quality_preset": "low"}
        admin.put("/api/v1/channels/lat/media", json=media).raise_for_status()
        key = admin.post("/api/v1/channels/lat/stream-key").json()["stream_key"]
        live = tmp / "efir" / "live" / "lat"
        playlists = {"efir source": live / "source" / "index.m3u8", "efir 160p": live / "160p" / "index.m3u8"}
        return measure(f"rtmp://127.0.0.1:{rtmp}/live/{key}", playlists, seconds)
    finally:
        node.terminate()
        node.wait(timeout=30)


def run_ffmpeg(tmp: Path, seconds: int) -> dict[str, list[float]]:
    port = free_port()
    out = tmp / "ffmpeg"
    out.mkdir()
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-listen", "1", "-i", f"rtmp://127.0.0.1:{port}/live/key",
        "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+temp_file",
        "-hls_segment_filename", str(out / "seg-%06d.ts"), str(out / "index.m3u8"),
    ]  # fmt: skip
    server = subprocess.Popen(argv)
    try:
        time.sleep(1.0)  # the listener is up
        return measure(f"rtmp://127.0.0.1:{port}/live/key", {"ffmpeg copy": out / "index.m3u8"}, seconds)
    finally:
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=20, help="seconds published to each")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with EmbeddedBroker(port=free_port(), log_file=tmp / "broker.log") as broker:
            results = run_ffmpeg(tmp, args.seconds)
            results.update(run_efir(tmp, broker, args.seconds))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, values in results.items():
        if not values:
            print(f"{name}: no segments seen")
            continue
        first = values[0]
        rest = values[1:] if len(values) > 1 else values
        print(f"{name}: first segment {first:.2f} s; others {summary(rest)}")
        # After the start-up backlog (worker start, input probing) has drained: the steady state.
        steady = values[STEADY_FROM:] or values
        print(f"{name}: steady state (segment {STEADY_FROM + 1} on) {summary(steady)}")
        print(f"{name}: every segment: {' '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
