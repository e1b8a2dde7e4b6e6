"""A node of the chat tests' own: same broker and database as the session node, a long flood window
(3 messages in 60 s) so the flood test never depends on how fast this machine sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import Node, ServerThread, running_node


@pytest.fixture(scope="module")
def chat_node(node_settings: Settings, sandbox: ServerThread) -> Iterator[Node]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "chat-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "chat_flood_seconds": 60.0,
            "chat_history_size": 5,
        }
    )
    with running_node(settings) as started:
        yield started
