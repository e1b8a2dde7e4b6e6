"""A live node for tests: uvicorn servers in threads, a client, and readers of what reached the broker.

Settings derive from the session's `base_settings` (its broker and database); tests that need a node
of their own (provider down, admin disabled, not ready) start one on a fresh database with `running_node`.
What reached the broker is read back with a group-less consumer (assign + seek), never a group join.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from kafka import TopicPartition
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.app import create_app
from ingest_node.db import make_engine, make_session_factory, migrate
from services import bus
from services.events import Envelope
from services.payments import SIGNATURE_HEADER, sign
from services.settings import Settings
from tests.conftest import fresh_database_url  # noqa: F401 (re-exported for the node's tests)

WAIT_SECONDS = 60.0  # upper bound for asynchronous outcomes; tests never assert on durations


class ServerThread:
    """A uvicorn server in a daemon thread; `stop()` runs the app's shutdown (lifespan) too."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class Node:
    settings: Settings
    server: ServerThread
    app: FastAPI
    sessions: sessionmaker[Session]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kw)

    def admin(self) -> httpx.Client:
        token = self.settings.admin_token.get_secret_value()
        return self.client(headers={"Authorization": f"Bearer {token}"})

    def new_channel(self) -> str:
        channel_id = f"ch-{uuid.uuid4().hex[:12]}"
        with self.admin() as http:
            answer = http.post("/api/v1/channels", json={"channel_id": channel_id, "name": "Test channel"})
        assert answer.status_code == 201, answer.text
        return channel_id

    def scalar(self, statement: str, **params: Any) -> Any:
        with self.sessions() as session:
            return session.execute(sa.text(statement), params).scalar()

    def column(self, statement: str, **params: Any) -> list[Any]:
        with self.sessions() as session:
            return list(session.execute(sa.text(statement), params).scalars())

    def wait_status(self, donation_id: str, wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        with self.client() as http:
            while True:
                body: dict[str, Any] = http.get(f"/api/v1/donations/{donation_id}").json()
                if body["status"] == wanted or time.monotonic() > deadline:
                    return body
                time.sleep(0.05)


@contextmanager
def running_node(settings: Settings, *, do_migrate: bool = True) -> Iterator[Node]:
    """Start a node (and stop it, relay included) on `settings`, whose node_port must be free."""
    if do_migrate:
        migrate(settings)
    app = create_app(settings)
    server = ServerThread(app, settings.node_port).start()
    engine = make_engine(settings)
    try:
        yield Node(settings, server, app, make_session_factory(engine))
    finally:
        server.stop()
        engine.dispose()


# ---- helpers -----------------------------------------------------------------------------------------


def donate(
    node: Node, channel_id: str, *, key: str | None = None, token: str = "tok_success", **fields: Any
) -> httpx.Response:
    body = {
        "channel_id": channel_id,
        "amount_minor": 150_000,
        "currency": "RUB",
        "message": "gg",
        "donor_name": "viewer",
        "payment_token": token,
        **fields,
    }
    with node.client() as http:
        return http.post("/api/v1/donations", json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def signed_webhook(
    settings: Settings, body: dict[str, Any] | bytes, *, secret: str | None = None, ts: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = settings.webhook_secret.get_secret_value() if secret is None else secret
    header = sign(key, raw, int(time.time()) if ts is None else ts)
    return raw, {SIGNATURE_HEADER: header, "Content-Type": "application/json"}


def webhook_body(donation: dict[str, Any], payment_id: str, kind: str, **data: Any) -> dict[str, Any]:
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "type": kind,
        "created": int(time.time()),
        "data": {
            "payment_id": payment_id,
            "reference": donation["donation_id"],
            "amount_minor": donation["amount_minor"],
            "currency": donation["currency"],
            "reason": "",
            **data,
        },
    }


def read_events(
    settings: Settings, done: Callable[[list[Envelope]], bool], topic: str = "donations"
) -> list[Envelope]:
    """Read `topic` from the beginning with a group-less consumer until `done(events)` (or time runs out).

    Events are deduplicated by event_id, as every consumer of Efir does: the relay may publish twice.
    """
    consumer = bus.make_consumer(settings, None)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.1)
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        seen: dict[str, Envelope] = {}
        while time.monotonic() < deadline:
            for records in consumer.poll(200).values():
                for record in records:
                    env = Envelope.from_json(record.value)
                    assert record.key == env.channel_id.encode()
                    seen.setdefault(env.event_id, env)
            if done(list(seen.values())):
                break
        return list(seen.values())
    finally:
        consumer.close()


def events_of(events: list[Envelope], donation_id: str) -> list[Envelope]:
    return [e for e in events if e.payload.get("donation_id") == donation_id]


def wait_for_types(settings: Settings, donation_id: str, types: set[str]) -> list[Envelope]:
    found = read_events(settings, lambda evs: {e.event_type for e in events_of(evs, donation_id)} >= types)
    return events_of(found, donation_id)
