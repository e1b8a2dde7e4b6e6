"""Donations through the real node into the lake, against the node's bare HTTP floor.

Starts broker, payment sandbox, node and lander as processes (the Supervisor, as `efir up` does) on
free ports and a temp data folder, creates channels through the admin API, then posts N donations
(`tok_success`, demo amounts) from a thread pool and reports:
  * donations accepted per second by the API, against GET /healthz on the same node with the same
    pool in the same run (the HTTP floor: what a request costs before any donation work);
  * seconds from the last acceptance until all N `donation.processed` events are in the lake
    (counted with DuckDB), i.e. payment settlement + outbox + Kafka + lander flush, and the
    end-to-end rate from the first request to the last landed row.

    uv run python benchmarks/donations_to_lake.py [--donations 2000] [--workers 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from services import bus  # noqa: E402
from services.cli import REPO_ROOT, plan_up  # noqa: E402
from services.demo import DonationFactory, demo_channels  # noqa: E402
from services.lake import topic_glob  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.supervisor import Supervisor  # noqa: E402

PARTS = ("broker", "sandbox", "node", "lander")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hammer(client: httpx.Client, requests: list[dict[str, object]], workers: int) -> tuple[float, int]:
    """Send the requests from a pool; returns (seconds, how many got a 2xx)."""
    ok = 0
    lock = threading.Lock()

    def send(req: dict[str, object]) -> None:
        nonlocal ok
        resp = client.request(**req)  # type: ignore[arg-type]
        if resp.is_success:
            with lock:
                ok += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send, requests))
    return time.perf_counter() - started, ok


def landed_processed(lake: Path) -> int:
    if not list(lake.glob("topic=donations/date=*/*.parquet")):
        return 0
    glob = topic_glob(lake, "donations")
    sql = (
        f"SELECT count(DISTINCT event_id) FROM read_parquet('{glob}') WHERE event_type = 'donation.processed'"
    )
    return int(duckdb.sql(sql).fetchall()[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--donations", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            broker_port=free_port(),
            node_port=free_port(),
            payments_port=free_port(),
            sandbox_settle_seconds=0.05,
            lander_flush_seconds=1.0,
            log_level="WARNING",
        )
        plan = plan_up(settings, demo=False)
        with Supervisor(Path(tmp) / "logs") as sup:
            for spec in (p for p in plan.parts if p.name in PARTS):
                sup.start(spec.name, spec.argv, ready=spec.ready, env=plan.env, cwd=REPO_ROOT)
                sup.wait_ready(spec.name, spec.timeout)
                if spec.name == "broker":
                    bus.ensure_topics(
                        settings.model_copy(update={"kafka_bootstrap": plan.env["EFIR_KAFKA_BOOTSTRAP"]})
                    )
            print(f"broker, sandbox, node and lander up (logs in {tmp}/logs)")
            run(settings, plan.env["EFIR_ADMIN_TOKEN"], args, sup)


def run(settings: Settings, token: str, args: argparse.Namespace, sup: Supervisor) -> None:
    node = f"http://127.0.0.1:{settings.node_port}"
    limits = httpx.Limits(max_connections=args.workers, max_keepalive_connections=args.workers)
    with httpx.Client(base_url=node, timeout=60, limits=limits) as client:
        channels = demo_channels(4)
        for channel in channels:
            resp = client.post(
                "/api/v1/channels",
                json={"channel_id": channel.channel_id, "name": channel.name},
                headers={"Authorization": f"Bearer {token}"},
            )
            if resp.status_code not in (201, 409):
                raise SystemExit(f"creating {channel.channel_id}: {resp.status_code} {resp.text}")
        factory = DonationFactory([c.channel_id for c in channels], seed=1)
        donations = []
        for _ in range(args.donations):
            body = factory.draft().body() | {"payment_token": "tok_success"}
            key = f"bench-{uuid.uuid4().hex}"
            donations.append(
                {
                    "method": "POST",
                    "url": "/api/v1/donations",
                    "json": body,
                    "headers": {"Idempotency-Key": key},
                }
            )
        health = [{"method": "GET", "url": "/healthz"}] * args.donations

        floor_s, floor_ok = hammer(client, health, args.workers)
        first = time.perf_counter()
        took, accepted = hammer(client, donations, args.workers)
        last_accept = time.perf_counter()

    lake = settings.lake_root
    deadline = time.monotonic() + args.timeout
    landed = 0
    while time.monotonic() < deadline:
        landed = landed_processed(lake)
        if landed >= accepted:
            break
        dead = sup.failed()
        if dead:
            raise SystemExit(f"{dead[0].name} died: " + "\n".join(dead[0].log_tail()))
        time.sleep(0.2)
    in_lake = time.perf_counter()
    if landed < accepted:
        raise SystemExit(
            f"only {landed} of {accepted} processed donations reached the lake in {args.timeout}s"
        )

    floor_rate, rate = floor_ok / floor_s, accepted / took
    print(f"{'GET /healthz, same pool (baseline)':<44}{floor_rate:>9,.0f} req/s")
    print(f"{'POST /api/v1/donations accepted':<44}{rate:>9,.0f} donations/s ({accepted}/{args.donations})")
    print(f"{'donations / baseline':<44}{rate / floor_rate:>9.2f}")
    print(f"{'last acceptance -> all processed in lake':<44}{in_lake - last_accept:>9.1f} s")
    print(
        f"{'end to end (first request -> last landed)':<44}{accepted / (in_lake - first):>9,.0f} donations/s"
    )


if __name__ == "__main__":
    main()
