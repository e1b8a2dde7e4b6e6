"""Donations per second end to end: API → the sandbox's webhook settles them → `donation.processed` on Kafka.

Starts broker, payment sandbox and node as processes (the Supervisor, as `efir up` does) on free ports
and a temp data folder, creates channels, then posts N donations (`tok_success`) from a thread pool while
a consumer reads the `donations` topic, and reports:
  * donations accepted per second by `POST /api/v1/donations`;
  * the end-to-end rate: N / (first request → the N-th `donation.processed` of this run read from
    Kafka), i.e. API + Payment Service call + signed webhook back + outbox relay + broker;
  * baselines in the same run: `GET /healthz` with the same pool (the HTTP floor) and a bare
    kafka-python producer sending N envelopes of the same size to the same broker (the bus floor);
  * the load average before and after, since the machine is shared.

    uv run python benchmarks/donations_end_to_end.py [--donations 500] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import httpx  # noqa: E402
from donations_to_lake import free_port, hammer  # noqa: E402

from services import bus  # noqa: E402
from services.cli import REPO_ROOT, plan_up  # noqa: E402
from services.demo import DonationFactory, demo_channels  # noqa: E402
from services.events import DonationProcessed, Envelope  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.supervisor import Supervisor  # noqa: E402

PARTS = ("broker", "sandbox", "node")


class ProcessedCounter(threading.Thread):
    """Reads `donations` from the end and records when each `donation.processed` of this run arrives."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.consumer = bus.make_consumer(settings, None, auto_offset_reset="latest")
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from kafka import TopicPartition

        partitions = None
        while partitions is None:
            partitions = self.consumer.partitions_for_topic("donations")
        self.consumer.assign([TopicPartition("donations", p) for p in sorted(partitions)])
        self.consumer.seek_to_end()
        for tp in self.consumer.assignment():
            self.consumer.position(tp)  # resolve "end" now, before any donation is sent
        self.ready.set()
        while not self.stop.is_set():
            for records in self.consumer.poll(100).values():
                now = time.perf_counter()
                for record in records:
                    env = Envelope.from_json(record.value)
                    if env.event_type == DonationProcessed.event_type:
                        self.seen.setdefault(env.payload["donation_id"], now)
        self.consumer.close()


def producer_floor(settings: Settings, count: int) -> float:
    """Envelopes per second a bare kafka-python producer (same acks) gets onto the same broker."""
    env = Envelope.wrap(
        DonationProcessed(
            donation_id=str(uuid.uuid4()),
            payment_id="pay_bench",
            amount_minor=150_000,
            currency="RUB",
            donor_name="viewer",
            message="gg",
            settled_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ),
        channel_id="bench",
        node_id="bench",
    )
    value = env.model_dump_json().encode()
    producer = bus.make_producer(settings)
    try:
        started = time.perf_counter()
        for _ in range(count):
            producer.send("bench-floor", key=b"bench", value=value)
        producer.flush()
        return count / (time.perf_counter() - started)
    finally:
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--donations", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="efir-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            broker_port=free_port(),
            node_port=free_port(),
            payments_port=free_port(),
            sandbox_settle_seconds=0.05,
            subscription_renewal_interval_seconds=0,
            log_level="WARNING",
        )
        plan = plan_up(settings, demo=False)
        with Supervisor(Path(tmp) / "logs") as sup:
            for spec in (p for p in plan.parts if p.name in PARTS):
                sup.start(spec.name, spec.argv, ready=spec.ready, env=plan.env, cwd=REPO_ROOT)
                sup.wait_ready(spec.name, spec.timeout)
                if spec.name == "broker":
                    settings = settings.model_copy(
                        update={"kafka_bootstrap": plan.env["EFIR_KAFKA_BOOTSTRAP"]}
                    )
                    bus.ensure_topics(settings, (*bus.TOPICS, "bench-floor"))
            print(f"broker, sandbox and node up (logs in {tmp}/logs)", flush=True)
            run(settings, plan.env["EFIR_ADMIN_TOKEN"], args, sup)
    load_after = os.getloadavg()
    print(f"{'load average (1/5/15 min) before':<48}{' / '.join(f'{x:.2f}' for x in load_before)}")
    print(f"{'load average (1/5/15 min) after':<48}{' / '.join(f'{x:.2f}' for x in load_after)}")


def run(settings: Settings, token: str, args: argparse.Namespace, sup: Supervisor) -> None:
    node = f"http://127.0.0.1:{settings.node_port}"
    limits = httpx.Limits(max_connections=args.workers, max_keepalive_connections=args.workers)
    counter = ProcessedCounter(settings)
    counter.start()
    if not counter.ready.wait(60):
        raise SystemExit("the consumer did not get the donations topic's partitions")
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
        factory = DonationFactory([c.channel_id for c in channels], seed=2)
        donations = [
            {
                "method": "POST",
                "url": "/api/v1/donations",
                "json": factory.draft().body() | {"payment_token": "tok_success"},
                "headers": {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
            }
            for _ in range(args.donations)
        ]
        health = [{"method": "GET", "url": "/healthz"}] * args.donations
        floor_s, floor_ok = hammer(client, health, args.workers)
        first = time.perf_counter()
        took, accepted = hammer(client, donations, args.workers)
    deadline = time.monotonic() + args.timeout
    while len(counter.seen) < accepted and time.monotonic() < deadline:
        dead = sup.failed()
        if dead:
            raise SystemExit(f"{dead[0].name} died: " + "\n".join(dead[0].log_tail()))
        time.sleep(0.05)
    counter.stop.set()
    counter.join(10)
    if len(counter.seen) < accepted:
        raise SystemExit(
            f"only {len(counter.seen)} of {accepted} donations were processed in {args.timeout}s"
        )
    last = max(counter.seen.values())
    bus_rate = producer_floor(settings, args.donations)
    floor_rate, api_rate, e2e = floor_ok / floor_s, accepted / took, accepted / (last - first)
    print(f"{'baseline: GET /healthz, same pool':<48}{floor_rate:>10,.0f} req/s")
    print(f"{'baseline: bare producer, same broker, acks=all':<48}{bus_rate:>10,.0f} events/s")
    print(
        f"{'POST /api/v1/donations accepted':<48}{api_rate:>10,.0f} donations/s ({accepted}/{args.donations})"
    )
    print(f"{'end to end (API -> settled -> Kafka)':<48}{e2e:>10,.1f} donations/s")
    print(f"{'end to end / healthz baseline':<48}{e2e / floor_rate:>10.3f}")


if __name__ == "__main__":
    main()
