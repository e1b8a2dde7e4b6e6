"""HLS requests per second served by one node, viewer heartbeats flowing, against a bare static server.

Starts an embedded broker, the node (`python -m ingest_node`, SQLite, one uvicorn process, heartbeats
flushed every second so `view.heartbeat` events flow to the broker during the run) and, as the
baseline, a bare Starlette `StaticFiles` app on uvicorn serving the SAME folder. The HLS content is
real: ffmpeg writes 720p H.264 + AAC segments of 2 s (about 0.5 MB each) for one channel.

Viewers are closed-loop asyncio clients (a minimal keep-alive HTTP/1.1 GET on asyncio streams, far
cheaper per request than httpx) in separate processes: each session opens the master
playlist once (the node creates the viewer session there), then repeatedly fetches the media playlist
and the next segment, with no think time, so the figures are the server's capacity on this machine
(2 cores shared with the clients). The two servers are measured alternately, `--rounds` times each;
the report gives the median round of each. Per request kind: requests/s, p50, p99; the load average
before and after each phase; and how many `view.heartbeat` events reached the broker while the node
was measured (the proof that viewer events flow during the load).

    uv run python benchmarks/hls_requests.py [--sessions 64] [--clients 2] [--seconds 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from services.broker import EmbeddedBroker  # noqa: E402
from services.settings import Settings  # noqa: E402

CHANNEL = "benchchan"
RENDITION = "source"
SEGMENT_SECONDS = 2
DEADLINE_SECONDS = 120.0  # every wait of this benchmark is bounded
FFMPEG = "/usr/bin/ffmpeg"
USER_AGENT = "hls-bench/1 (like hls.js)"

BARE_APP = """
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

app = Starlette(routes=[Mount("/live", app=StaticFiles(directory={root!r}))])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def make_hls(live: Path, seconds: int) -> list[str]:
    """A real channel folder: master playlist, media playlist, 720p segments; returns segment names."""
    folder = live / CHANNEL / RENDITION
    folder.mkdir(parents=True)
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2000k", "-maxrate", "2000k",
            "-bufsize", "4000k", "-g", str(30 * SEGMENT_SECONDS), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k",
            "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0",
            "-hls_segment_filename", str(folder / "seg-%06d.ts"), str(folder / "index.m3u8"),
        ],
        check=True,
        timeout=DEADLINE_SECONDS,
    )  # fmt: skip
    (live / CHANNEL / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=2200000,RESOLUTION=1280x720,CODECS="avc1.42c01f,mp4a.40.2"\n'
        f"{RENDITION}/index.m3u8\n"
    )
    return sorted(p.name for p in folder.glob("*.ts"))


# ---- the client processes --------------------------------------------------------------------------


class Connection11:
    """A minimal keep-alive HTTP/1.1 GET client on asyncio streams: headers parsed, body read by
    Content-Length. Much cheaper per request than httpx, so the clients (on the same 2 cores) take
    less of the machine from the servers they measure, as wrk would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, keep_body: bool = False) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: {USER_AGENT}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = b""
        remaining = length
        while remaining:
            chunk = await self.reader.read(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("closed mid-body")
            remaining -= len(chunk)
            if keep_body:
                body += chunk
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _viewers(base: str, sessions: int, seconds: float, segments: list[str], ctl: Connection) -> None:
    """`sessions` closed-loop viewers for `seconds` (after a short warm-up); reports latencies per kind."""
    latencies: dict[str, list[float]] = {"master": [], "playlist": [], "segment": []}
    errors = 0
    host, port = base.removeprefix("http://").split(":")
    ctl.send("ready")
    start_at = ctl.recv()  # a shared CLOCK_MONOTONIC instant: every process starts together
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    measure_from = start_at + 1.0  # one second of warm-up is not counted
    stop_at = measure_from + seconds

    async def timed(http: Connection11, kind: str, url: str, keep_body: bool = False) -> bytes | None:
        nonlocal errors
        t0 = time.monotonic()
        try:
            status, body = await http.get(url, keep_body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            http.close()
            http.writer = None
            return None
        t1 = time.monotonic()
        if status != 200:
            errors += 1
            return None
        if t0 >= measure_from and t1 <= stop_at:
            latencies[kind].append(t1 - t0)
        return body

    async def viewer(n: int) -> None:
        http = Connection11(host, int(port))
        master = await timed(http, "master", f"/live/{CHANNEL}/master.m3u8", keep_body=True)
        session = ""
        if master:  # the node hands out a session; the bare server has none
            lines = master.decode().splitlines()
            variant = next(line for line in lines if line and not line.startswith("#"))
            session = variant.partition("?")[2]
        suffix = f"?{session}" if session else ""
        i = n % len(segments)
        while time.monotonic() < stop_at:
            await timed(http, "playlist", f"/live/{CHANNEL}/{RENDITION}/index.m3u8{suffix}")
            await timed(http, "segment", f"/live/{CHANNEL}/{RENDITION}/{segments[i]}{suffix}")
            i = (i + 1) % len(segments)
        http.close()

    await asyncio.gather(*(viewer(n) for n in range(sessions)))
    ctl.send({"latencies": latencies, "errors": errors})


def client_process(base: str, sessions: int, seconds: float, segments: list[str], ctl: Connection) -> None:
    asyncio.run(_viewers(base, sessions, seconds, segments, ctl))


# ---- one measured phase ----------------------------------------------------------------------------


@dataclass
class Phase:
    server: str
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    heartbeats: int | None = None

    def rate(self, kind: str) -> float:
        return len(self.latencies.get(kind, [])) / self.seconds

    def pct(self, kind: str, q: float) -> float:
        values = sorted(self.latencies.get(kind, []))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] * 1000


def measure(
    server: str, base: str, clients: int, sessions: int, seconds: float, segments: list[str]
) -> Phase:
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for c in range(clients):
        parent, child = ctx.Pipe()
        share = sessions // clients + (1 if c < sessions % clients else 0)
        proc = ctx.Process(target=client_process, args=(base, share, seconds, segments, child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for pipe in pipes:
        if not pipe.poll(DEADLINE_SECONDS) or pipe.recv() != "ready":
            raise RuntimeError("a client process did not start")
    phase = Phase(server, seconds, load_before=os.getloadavg()[0])
    start_at = time.monotonic() + 0.5
    for pipe in pipes:
        pipe.send(start_at)
    merged: dict[str, list[float]] = {"master": [], "playlist": [], "segment": []}
    for pipe in pipes:
        if not pipe.poll(seconds + DEADLINE_SECONDS):
            raise RuntimeError("a client process did not report")
        report = pipe.recv()
        for kind, values in report["latencies"].items():
            merged[kind] += values
        phase.errors += report["errors"]
    for proc in procs:
        proc.join(10)
    phase.latencies = merged
    phase.load_after = os.getloadavg()[0]
    return phase


def heartbeats_on_broker(settings: Settings) -> int:
    """How many `view.heartbeat` events the `views` topic holds (end offsets summed)."""
    from kafka import TopicPartition

    from services import bus

    consumer = bus.make_consumer(settings, None)
    try:
        partitions = consumer.partitions_for_topic("views") or set()
        ends = consumer.end_offsets([TopicPartition("views", p) for p in partitions])
        return int(sum(ends.values()))
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=64, help="concurrent viewer sessions")
    parser.add_argument("--clients", type=int, default=2, help="client processes sharing the sessions")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="phases per server, alternating")
    parser.add_argument("--media-seconds", type=int, default=20, help="length of the HLS content")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="efir-hls-bench-") as tmp_name:
        tmp = Path(tmp_name)
        live = tmp / "live"
        segments = make_hls(live, args.media_seconds)
        sizes = [(live / CHANNEL / RENDITION / s).stat().st_size for s in segments]
        (tmp / "bare_hls.py").write_text(BARE_APP.format(root=str(live)))
        node_port, bare_port = free_port(), free_port()
        with EmbeddedBroker(port=free_port(), log_file=tmp / "broker.log") as broker:
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "EFIR_DATA_DIR": str(tmp / "data"),
                "EFIR_HLS_DIR": str(live),
                "EFIR_KAFKA_BOOTSTRAP": broker.bootstrap,
                "EFIR_NODE_HOST": "127.0.0.1",
                "EFIR_NODE_PORT": str(node_port),
                "EFIR_LOG_LEVEL": "warning",
                "EFIR_VIEW_HEARTBEAT_SECONDS": "1",
                "EFIR_RTMP_ENABLED": "false",
            }
            settings = Settings(kafka_bootstrap=broker.bootstrap)
            servers = [
                subprocess.Popen([sys.executable, "-m", "ingest_node"], cwd=REPO, env=env),
                subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "bare_hls:app", "--host", "127.0.0.1",
                     "--port", str(bare_port), "--log-level", "warning", "--no-access-log"],
                    cwd=tmp,
                    env={**os.environ},
                ),
            ]  # fmt: skip
            try:
                node = f"http://127.0.0.1:{node_port}"
                bare = f"http://127.0.0.1:{bare_port}"
                wait_http(f"{node}/healthz")
                wait_http(f"{bare}/live/{CHANNEL}/master.m3u8")
                phases: list[Phase] = []
                for _ in range(args.rounds):
                    for name, base in (("node", node), ("bare", bare)):
                        before = heartbeats_on_broker(settings) if name == "node" else 0
                        phase = measure(name, base, args.clients, args.sessions, args.seconds, segments)
                        if name == "node":
                            time.sleep(2.5)  # the last interval's heartbeats: flushed, relayed
                            phase.heartbeats = heartbeats_on_broker(settings) - before
                        phases.append(phase)
                        print(
                            f"{name}: {phase.rate('segment'):.0f} segments/s, "
                            f"{phase.rate('playlist'):.0f} playlists/s, errors {phase.errors}, "
                            f"load {phase.load_before:.2f}->{phase.load_after:.2f}"
                            + (f", heartbeats {phase.heartbeats}" if phase.heartbeats is not None else ""),
                            flush=True,
                        )
            finally:
                for proc in servers:
                    proc.terminate()
                for proc in servers:
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()

    def median_phase(name: str) -> Phase:
        ours = sorted((p for p in phases if p.server == name), key=lambda p: p.rate("segment"))
        return ours[len(ours) // 2]

    node_p, bare_p = median_phase("node"), median_phase("bare")
    print()
    print(
        f"{args.sessions} viewer sessions in {args.clients} client processes, {args.seconds:g} s per phase, "
        f"{args.rounds} rounds each; {len(segments)} segments of {statistics.mean(sizes) / 1e6:.2f} MB "
        f"(720p, {SEGMENT_SECONDS} s); machine: {os.cpu_count()} CPUs"
    )
    print(
        "| server | segment req/s | segment p50 ms | segment p99 ms | playlist req/s | playlist p50 ms "
        "| playlist p99 ms | MB/s | errors | load avg before→after | view.heartbeat events |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in (node_p, bare_p):
        mbps = p.rate("segment") * statistics.mean(sizes) / 1e6
        label = "Efir node (sessions, heartbeats)" if p.server == "node" else "bare Starlette StaticFiles"
        print(
            f"| {label} | {p.rate('segment'):.0f} | {p.pct('segment', 0.5):.1f} "
            f"| {p.pct('segment', 0.99):.1f} "
            f"| {p.rate('playlist'):.0f} | {p.pct('playlist', 0.5):.1f} | {p.pct('playlist', 0.99):.1f} "
            f"| {mbps:.0f} | {p.errors} | {p.load_before:.2f}→{p.load_after:.2f} "
            f"| {p.heartbeats if p.heartbeats is not None else '—'} |"
        )
    ratio = node_p.rate("segment") / bare_p.rate("segment") if bare_p.rate("segment") else float("nan")
    print(f"\nnode / bare, segment requests per second: {ratio:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "server": p.server,
                        "segment_rps": p.rate("segment"),
                        "playlist_rps": p.rate("playlist"),
                        "segment_p50_ms": p.pct("segment", 0.5),
                        "segment_p99_ms": p.pct("segment", 0.99),
                        "playlist_p50_ms": p.pct("playlist", 0.5),
                        "playlist_p99_ms": p.pct("playlist", 0.99),
                        "errors": p.errors,
                        "load_before": p.load_before,
                        "load_after": p.load_after,
                        "heartbeats": p.heartbeats,
                    }
                    for p in phases
                ],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
