"""Chat on one node against a bare FastAPI WebSocket broadcast, measured in the same run.

Starts an embedded broker, the node (`python -m ingest_node`, SQLite, auto-moderation on) and a bare
FastAPI app (the ConnectionManager broadcast of FastAPI's documentation: a list of sockets, `await
send_text` to each in turn) as processes on loopback, then drives both with `websockets` clients in two
client processes and reports, for each:

  * messages accepted per second with moderation on: 4 signed-in viewers (flood limit raised so every
    message is evaluated by auto-moderation, stored, audited through the outbox) send K messages each;
    accepted = the message came back to its sender;
  * deliveries per second fanned out to N connected readers of one channel: a burst of M messages,
    deliveries / (last receipt - first send);
  * p50 and p99 delivery latency (send to receipt, CLOCK_MONOTONIC shared by the processes) with the
    writer paced at R messages per second.

    uv run python benchmarks/chat_fanout.py [--clients 1000,5000] [--burst 50] [--paced 40 --rate 5]
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import websockets  # noqa: E402

from services.broker import EmbeddedBroker  # noqa: E402

ADMIN = "bench-admin-token"
CONNECT_BATCH = 100  # connections opened concurrently by one client process
DEADLINE_SECONDS = 120.0  # every wait of this benchmark is bounded

BARE_APP = """
import json
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
rooms: dict[str, list[WebSocket]] = {}


@app.websocket("/ws/chat/{channel_id}")
async def chat(ws: WebSocket, channel_id: str) -> None:
    await ws.accept()
    room = rooms.setdefault(channel_id, [])
    room.append(ws)
    try:
        while True:
            data = json.loads(await ws.receive_text())
            frame = json.dumps({"type": "message", "text": data["text"]})
            for peer in list(room):
                try:
                    await peer.send_text(frame)
                except Exception:
                    pass
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        room.remove(ws)
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


# ---- the client processes --------------------------------------------------------------------------


def _text(frame: str) -> str | None:
    data = json.loads(frame)
    return data["text"] if data.get("type") == "message" else None


async def _readers(url: str, count: int, ctl: Connection) -> None:
    """Open `count` readers, report ready, then record (seq, latency) of every message until told to stop."""
    sockets: list[Any] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = [
            websockets.connect(url, max_size=2**20, open_timeout=60)
            for _ in range(start, min(count, start + CONNECT_BATCH))
        ]
        sockets += await asyncio.gather(*batch)
    received: list[tuple[int, int, int]] = []  # (seq, latency ns, receipt ns)

    async def read(ws: Any) -> None:
        try:
            async for frame in ws:
                text = _text(frame)
                if text is not None and text.startswith("b "):
                    _, seq, sent = text.split()
                    now = time.monotonic_ns()
                    received.append((int(seq), now - int(sent), now))
        except websockets.ConnectionClosed:
            pass

    tasks = [asyncio.create_task(read(ws)) for ws in sockets]
    ctl.send("ready")
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, ctl.recv) == "count":
        ctl.send(len(received))
    await asyncio.sleep(0)
    for ws in sockets:
        await ws.close()
    for task in tasks:
        task.cancel()
    ctl.send(received)


def reader_process(url: str, count: int, ctl: Connection) -> None:
    asyncio.run(_readers(url, count, ctl))


# ---- phases ----------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base: str  # http://127.0.0.1:port
    writer_token: str | None = None
    viewer_tokens: tuple[str, ...] = ()

    def ws(self, channel: str, token: str | None = None) -> str:
        return self.base.replace("http", "ws") + f"/ws/chat/{channel}" + (f"?token={token}" if token else "")


async def accept_rate(server: Server, channel: str, per_writer: int) -> float:
    """Messages/s accepted: each of the writers sends `per_writer` messages and waits to see them all back."""
    tokens = server.viewer_tokens or (None,) * 4
    writers = [await websockets.connect(server.ws(channel, t), max_size=2**22) for t in tokens]

    async def run(i: int, ws: Any) -> None:
        mine = {f"w{i} m{j} hello there number {j}" for j in range(per_writer)}
        for text in sorted(mine):
            await ws.send(json.dumps({"type": "send", "text": text}))
        decided = 0  # shown to everyone, or hidden / held by auto-moderation (told to the sender only)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while decided < per_writer and time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE_SECONDS))
            kind = frame.get("type")
            if (kind == "message" and frame["text"] in mine) or kind in ("hidden", "held"):
                decided += 1
            elif kind == "error":
                raise RuntimeError(f"{server.name}: refused {frame}")
        if decided < per_writer:
            raise RuntimeError(f"{server.name}: {per_writer - decided} messages never came back")

    started = time.perf_counter()
    await asyncio.gather(*(run(i, ws) for i, ws in enumerate(writers)))
    elapsed = time.perf_counter() - started
    for ws in writers:
        await ws.close()
    return len(writers) * per_writer / elapsed


async def send_burst(url: str, seqs: range, rate: float | None) -> int:
    """Send messages `b <seq> <monotonic ns>`; returns the first send instant (ns)."""
    async with websockets.connect(url, max_size=2**24) as ws:
        first = time.monotonic_ns()

        last = asyncio.Event()

        async def drain() -> None:  # the writer is a reader too: read its socket, see its last message
            async for frame in ws:
                text = _text(str(frame))
                if text is not None and text.startswith(f"b {seqs[-1]} "):
                    last.set()

        drainer = asyncio.create_task(drain())
        for i in seqs:
            await ws.send(json.dumps({"type": "send", "text": f"b {i} {time.monotonic_ns()}"}))
            if rate:
                await asyncio.sleep(1 / rate)
        await asyncio.wait_for(last.wait(), DEADLINE_SECONDS)  # closing earlier may drop queued input
        drainer.cancel()
    return first


def _drain(ctls: list[Connection], wanted: int) -> None:
    """Wait until the readers hold `wanted` frames, or nothing arrived for 5 s (a lost frame)."""
    seen, still_since = -1, time.monotonic()
    while time.monotonic() - still_since < 5:
        for ctl in ctls:
            ctl.send("count")
        total = sum(int(ctl.recv()) for ctl in ctls)
        if total >= wanted:
            return
        if total != seen:
            seen, still_since = total, time.monotonic()
        time.sleep(0.2)


def fanout(
    server: Server, channel: str, clients: int, burst: int, paced: int, rate: float
) -> dict[str, float]:
    """N readers in two processes; a burst for deliveries/s, then a paced run for latency."""
    procs, ctls = [], []
    for share in (clients // 2, clients - clients // 2):
        parent, child = mp.Pipe()
        proc = mp.Process(target=reader_process, args=(server.ws(channel), share, child), daemon=True)
        proc.start()
        procs.append(proc)
        ctls.append(parent)
    connect_started = time.perf_counter()
    for ctl in ctls:
        if not ctl.poll(DEADLINE_SECONDS * 2):
            raise RuntimeError(f"{server.name}: {clients} readers did not connect in time")
        ctl.recv()
    connect_seconds = time.perf_counter() - connect_started
    writer = server.ws(channel, server.writer_token)
    first = asyncio.run(send_burst(writer, range(burst), None))
    _drain(ctls, clients * burst)  # the burst must be out before the paced run measures latency
    asyncio.run(send_burst(writer, range(burst, burst + paced), rate))
    _drain(ctls, clients * (burst + paced))
    received: list[tuple[int, int, int]] = []
    for ctl in ctls:
        ctl.send("stop")
    for ctl in ctls:
        if ctl.poll(DEADLINE_SECONDS):
            received += ctl.recv()
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    burst_rx = [r for r in received if r[0] < burst]
    paced_lat = sorted(r[1] / 1e6 for r in received if r[0] >= burst)
    last = max((r[2] for r in burst_rx), default=first)
    q = statistics.quantiles(paced_lat, n=100) if len(paced_lat) > 1 else [float("nan")] * 99
    return {
        "connect_s": connect_seconds,
        "burst_delivered": len(burst_rx) / (clients * burst),
        "deliveries_per_s": len(burst_rx) / max((last - first) / 1e9, 1e-9),
        "paced_delivered": len(paced_lat) / (clients * paced),
        "p50_ms": q[49],
        "p99_ms": q[98],
    }


# ---- set-up ----------------------------------------------------------------------------------------


def efir_setup(base: str, fanout_channels: list[str]) -> Server:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)

    def tok(user: str) -> str:
        answer = admin.post("/api/v1/chat/tokens", json={"user_id": user, "display_name": user})
        answer.raise_for_status()
        return str(answer.json()["token"])

    for channel in ["accept", *fanout_channels]:
        admin.post("/api/v1/channels", json={"channel_id": channel, "name": channel}).raise_for_status()
        admin.put(f"/api/v1/chat/{channel}/roles/streamer", json={"role": "owner"}).raise_for_status()
    return Server("efir", base, tok("streamer"), tuple(tok(f"viewer{i}") for i in range(4)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="1000,5000", help="reader counts, comma-separated")
    parser.add_argument("--accept", type=int, default=100, help="messages per writer (4 writers)")
    parser.add_argument("--burst", type=int, default=50, help="messages in the fan-out burst")
    parser.add_argument("--paced", type=int, default=40, help="messages of the paced latency run")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second of the paced run")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(port=free_port(), log_file=Path(tmp) / "b.log") as broker,
    ):
        node_port, bare_port = free_port(), free_port()
        env = {
            **os.environ,
            "EFIR_DATA_DIR": tmp,
            "EFIR_KAFKA_BOOTSTRAP": broker.bootstrap,
            "EFIR_NODE_PORT": str(node_port),
            "EFIR_NODE_HOST": "127.0.0.1",
            "EFIR_ADMIN_TOKEN": ADMIN,
            "EFIR_LOG_LEVEL": "warning",
            "EFIR_CHAT_FLOOD_MESSAGES": "1000000",  # the 4 writers are measured, not flood-limited
            "EFIR_CHAT_SOCKET_QUEUE": "100000",
        }
        bare_file = Path(tmp) / "bare_broadcast.py"
        bare_file.write_text(BARE_APP)
        servers = [
            subprocess.Popen([sys.executable, "-m", "ingest_node"], cwd=REPO, env=env),
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bare_broadcast:app",
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                ],
                cwd=tmp,
            ),
        ]
        try:
            wait_http(f"http://127.0.0.1:{node_port}/healthz")
            wait_http(f"http://127.0.0.1:{bare_port}/docs")
            channels = [f"fan{n}" for n in counts]
            efir = efir_setup(f"http://127.0.0.1:{node_port}", channels)
            bare = Server("bare", f"http://127.0.0.1:{bare_port}")
            results: dict[str, dict[Any, Any]] = {"efir": {}, "bare": {}}
            for server in (bare, efir):
                results[server.name]["accept_per_s"] = asyncio.run(accept_rate(server, "accept", args.accept))
                print(f"{server.name}: accepted {results[server.name]['accept_per_s']:.0f} msg/s", flush=True)
            for n, channel in zip(counts, channels, strict=True):
                for server in (bare, efir):
                    started = time.perf_counter()
                    r = fanout(server, channel, n, args.burst, args.paced, args.rate)
                    r["phase_s"] = time.perf_counter() - started
                    results[server.name][n] = r
                    print(
                        f"{server.name} {n} readers: " + ", ".join(f"{k}={v:.3g}" for k, v in r.items()),
                        flush=True,
                    )
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(30)
    print("\n| measure | bare FastAPI broadcast | Efir node |\n|---|---|---|")
    bare_r, efir_r = results["bare"], results["efir"]

    def row(label: str, fmt: str, *keys: str, n: int | None = None) -> None:
        cells = [fmt.format(*((r if n is None else r[n])[k] for k in keys)) for r in (bare_r, efir_r)]
        print(f"| {label} | {cells[0]} | {cells[1]} |")

    row("messages accepted /s (4 writers, moderation on)", "{:,.0f}", "accept_per_s")
    for n in counts:
        row(f"deliveries /s to {n:,} readers (burst of {args.burst})", "{:,.0f}", "deliveries_per_s", n=n)
        row(
            f"p50 / p99 latency, {n:,} readers, {args.rate:g} msg/s",
            "{:.0f} / {:.0f} ms",
            "p50_ms",
            "p99_ms",
            n=n,
        )
        row(
            f"share delivered (burst / paced), {n:,}",
            "{:.3f} / {:.3f}",
            "burst_delivered",
            "paced_delivered",
            n=n,
        )
        row(f"{n:,} readers connected in", "{:.1f} s", "connect_s", n=n)


if __name__ == "__main__":
    main()
