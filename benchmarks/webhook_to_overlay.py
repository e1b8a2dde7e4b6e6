"""Latency from the settling payment webhook to the alert on the overlay's socket, against a bare
FastAPI WebSocket broadcast measured in the same run.

Starts broker, payment sandbox (settling after an hour, so only this script's webhooks settle) and the
node as processes (the Supervisor, as `efir up`), plus a bare FastAPI app as its own process: a POST
handler that broadcasts its body to the sockets of a room (FastAPI documentation's ConnectionManager).
One WebSocket client is connected to the channel's alert box socket (`/ws/overlays/{id}?key=`, as OBS's
browser source is) and one to the bare app. For each of N donations (created through the API and left
pending), it sends the Payment Service's signed `payment.succeeded` webhook and times, one at a time:
  * Efir: webhook POST sent → the `donation.processed` alert frame read on the overlay socket (webhook
    verification, the donation's state change, audit row, outbox row and alert row in one transaction,
    the socket woken after commit, the alert read back and sent);
  * baseline: POST sent to the bare app → the broadcast frame read on its socket.
Reports p50 / p99 / max of each and the load average before and after (the machine is shared).

    uv run python benchmarks/webhook_to_overlay.py [--alerts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import httpx  # noqa: E402
import websockets  # noqa: E402
from donations_to_lake import free_port  # noqa: E402

from services import bus  # noqa: E402
from services.cli import REPO_ROOT, plan_up  # noqa: E402
from services.payments import SIGNATURE_HEADER, sign  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.supervisor import Supervisor  # noqa: E402

PARTS = ("broker", "sandbox", "node")
AMOUNT = 150_000

BARE_APP = """
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

app = FastAPI()
rooms: dict[str, list[WebSocket]] = {}


@app.websocket("/ws/{room}")
async def socket(ws: WebSocket, room: str) -> None:
    await ws.accept()
    rooms.setdefault(room, []).append(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        rooms[room].remove(ws)


@app.post("/notify/{room}")
async def notify(room: str, request: Request) -> dict[str, int]:
    body = (await request.body()).decode()
    for ws in list(rooms.get(room, [])):
        await ws.send_text(body)
    return {"sent": len(rooms.get(room, []))}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_for_frame(ws: Any, wanted: str, timeout: float = 30.0) -> float:
    """Reads frames until one names `wanted`; returns the perf_counter at its receipt."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            if wanted in frame:
                return time.perf_counter()


async def measure_efir(node: str, token: str, secret: str, db: Path, count: int) -> list[float]:
    admin = {"Authorization": f"Bearer {token}"}
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=node, timeout=60) as http:
        (
            await http.post("/api/v1/channels", json={"channel_id": channel, "name": "Bench"}, headers=admin)
        ).raise_for_status()
        key = (await http.post(f"/api/v1/channels/{channel}/overlay-key", headers=admin)).json()["key"]
        pending = []
        for _ in range(count):
            body = {
                "channel_id": channel,
                "amount_minor": AMOUNT,
                "currency": "RUB",
                "message": "gg",
                "donor_name": "viewer",
                "payment_token": "tok_success",
            }
            resp = await http.post(
                "/api/v1/donations", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            resp.raise_for_status()
            pending.append(resp.json()["donation_id"])
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            payment_ids = dict(
                conn.execute(
                    f"SELECT donation_id, provider_payment_id FROM donations WHERE donation_id IN "
                    f"({','.join('?' * len(pending))})",
                    pending,
                ).fetchall()
            )
        ws_url = node.replace("http", "ws", 1) + f"/ws/overlays/{channel}?key={key}"
        latencies = []
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({}))
            await wait_for_frame(ws, '"ready"')
            for donation_id in pending:
                event = {
                    "id": f"evt_bench_{uuid.uuid4().hex}",
                    "type": "payment.succeeded",
                    "created": int(time.time()),
                    "data": {
                        "payment_id": payment_ids[donation_id],
                        "reference": donation_id,
                        "amount_minor": AMOUNT,
                        "currency": "RUB",
                        "reason": "",
                    },
                }
                raw = json.dumps(event).encode()
                headers = {
                    SIGNATURE_HEADER: sign(secret, raw, int(time.time())),
                    "Content-Type": "application/json",
                }
                receipt = asyncio.create_task(wait_for_frame(ws, donation_id))
                sent = time.perf_counter()
                resp = await http.post("/api/v1/payments/webhook", content=raw, headers=headers)
                resp.raise_for_status()
                latencies.append(await receipt - sent)
    return latencies


async def measure_bare(base: str, count: int) -> list[float]:
    latencies = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as http,
        websockets.connect(base.replace("http", "ws", 1) + "/ws/room") as ws,
    ):
        await asyncio.sleep(0.2)  # the socket is in the room once accepted
        for _ in range(count):
            marker = uuid.uuid4().hex
            receipt = asyncio.create_task(wait_for_frame(ws, marker))
            sent = time.perf_counter()
            (
                await http.post("/notify/room", content=json.dumps({"type": "alert", "id": marker}))
            ).raise_for_status()
            latencies.append(await receipt - sent)
    return latencies


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            broker_port=free_port(),
            node_port=free_port(),
            payments_port=free_port(),
            sandbox_settle_seconds=3600,  # only this script's webhooks settle donations
            subscription_renewal_interval_seconds=0,
            log_level="WARNING",
        )
        plan = plan_up(settings, demo=False)
        bare_port = free_port()
        (Path(tmp) / "bare_alerts.py").write_text(BARE_APP)
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_alerts:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            cwd=tmp,
        )
        try:
            with Supervisor(Path(tmp) / "logs") as sup:
                for spec in (p for p in plan.parts if p.name in PARTS):
                    sup.start(spec.name, spec.argv, ready=spec.ready, env=plan.env, cwd=REPO_ROOT)
                    sup.wait_ready(spec.name, spec.timeout)
                    if spec.name == "broker":
                        bus.ensure_topics(
                            settings.model_copy(update={"kafka_bootstrap": plan.env["EFIR_KAFKA_BOOTSTRAP"]})
                        )
                wait_http(f"http://127.0.0.1:{bare_port}/docs")
                secret = plan.env.get("EFIR_WEBHOOK_SECRET", settings.webhook_secret.get_secret_value())
                node = f"http://127.0.0.1:{settings.node_port}"
                db = Path(tmp) / "node.db"
                baseline = asyncio.run(measure_bare(f"http://127.0.0.1:{bare_port}", args.alerts))
                efir = asyncio.run(measure_efir(node, plan.env["EFIR_ADMIN_TOKEN"], secret, db, args.alerts))
        finally:
            bare.terminate()
            bare.wait(30)
    load_after = os.getloadavg()
    print(f"\n{args.alerts} alerts each, one at a time\n")
    print("| path | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    for name, values in (
        ("baseline: POST → bare FastAPI WebSocket broadcast", baseline),
        ("Efir: settling webhook → alert on the overlay socket", efir),
    ):
        ms = [v * 1000 for v in values]
        print(f"| {name} | {statistics.median(ms):.1f} | {percentile(ms, 0.99):.1f} | {max(ms):.1f} |")
    print(
        f"\nload average before {' / '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' / '.join(f'{x:.2f}' for x in load_after)}"
    )


if __name__ == "__main__":
    main()
