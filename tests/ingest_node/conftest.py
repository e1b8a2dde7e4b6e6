"""Fixtures of the node's tests: the sandbox provider and the node as real uvicorn servers in threads.

Settings derive from the session's `base_settings` (its broker and database) with model_copy; helpers
live in `live_node.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingest_node import payments_sandbox
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import Node, ServerThread, fresh_database_url, running_node


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(tmp_path)


@pytest.fixture(scope="session")
def node_settings(base_settings: Settings) -> Settings:
    node_port, payments_port = free_port(), free_port()
    return base_settings.model_copy(
        update={
            "node_id": "test-node",
            "node_port": node_port,
            "public_url": f"http://127.0.0.1:{node_port}",
            "payments_port": payments_port,
            "payments_url": f"http://127.0.0.1:{payments_port}",
            "payments_api_key": SecretStr("test-payments-key"),
        }
    )


@pytest.fixture(scope="session")
def sandbox(node_settings: Settings) -> Iterator[ServerThread]:
    server = ServerThread(payments_sandbox.create_app(node_settings), node_settings.payments_port).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node(node_settings: Settings, sandbox: ServerThread) -> Iterator[Node]:
    with running_node(node_settings) as started:
        yield started
