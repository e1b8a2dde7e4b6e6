"""Probes, metrics and the admin API's guard."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import Node, donate, running_node

pytestmark = pytest.mark.db


def test_healthz_and_readyz(node: Node) -> None:
    with node.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"broker": True, "database": True}


def test_readyz_is_503_without_broker_or_migrations(node_settings: Settings, fresh_db: str) -> None:
    settings = node_settings.model_copy(
        update={
            "database_url": fresh_db,
            "node_port": free_port(),
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        }
    )
    with running_node(settings, do_migrate=False) as unready, unready.client() as http:
        answer = http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {"broker": False, "database": False}
        assert http.get("/healthz").status_code == 200


def test_metrics_count_the_money_path(node: Node) -> None:
    channel = node.new_channel()
    created = donate(node, channel, currency="EUR").json()
    node.wait_status(created["donation_id"], "succeeded")
    with node.client() as http:
        text = http.get("/metrics").text
    assert 'efir_donations_created_total{currency="EUR"}' in text
    assert 'efir_webhooks_total{outcome="applied"}' in text
    for name in ("efir_outbox_published_total", "efir_outbox_lag_seconds", "efir_outbox_pending_events"):
        assert name in text
    published = next(line for line in text.splitlines() if line.startswith("efir_outbox_published_total"))
    assert float(published.split()[-1]) >= 1


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic dGVzdA==", "Bearer"])
def test_admin_api_refuses_a_missing_or_wrong_token(node: Node, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with node.client(headers=headers) as http:
        created = http.post("/api/v1/channels", json={"channel_id": "intruder", "name": "x"})
        listed = http.get("/api/v1/channels")
    assert created.status_code == listed.status_code == 401
    assert "token" in created.json()["detail"]
    assert node.scalar("SELECT count(*) FROM channels WHERE channel_id = 'intruder'") == 0


def test_admin_creates_lists_and_refuses_duplicates(node: Node) -> None:
    channel = node.new_channel()
    with node.admin() as http:
        again = http.post("/api/v1/channels", json={"channel_id": channel, "name": "Other"})
        bad = http.post("/api/v1/channels", json={"channel_id": "Not A Slug!", "name": "x"})
        listed = http.get("/api/v1/channels").json()
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    assert bad.status_code == 422
    assert channel in {c["channel_id"] for c in listed}
    assert node.scalar("SELECT actor FROM audit_log WHERE entity = :e", e=f"channel:{channel}") == "admin"


def test_empty_admin_token_disables_the_admin_api(node_settings: Settings, fresh_db: str) -> None:
    settings = node_settings.model_copy(
        update={"database_url": fresh_db, "node_port": free_port(), "admin_token": SecretStr("")}
    )
    with running_node(settings) as closed, closed.client(headers={"Authorization": "Bearer x"}) as http:
        answer = http.get("/api/v1/channels")
        assert answer.status_code == 403
        assert "disabled" in answer.json()["detail"]
