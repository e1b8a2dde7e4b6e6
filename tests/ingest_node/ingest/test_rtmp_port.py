"""A taken RTMP port costs the node its RTMP ingest only: it says so in its log and serves HTTP."""

from __future__ import annotations

import logging
import socket

import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.live_node import ServerThread, running_node

pytestmark = pytest.mark.db


def test_a_node_whose_rtmp_port_is_taken_still_serves_http(
    node_settings: Settings, sandbox: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ingest_node.ingest.service")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = free_port()
        settings = node_settings.model_copy(
            update={
                "node_id": "port-taken-node",
                "node_port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "rtmp_enabled": True,
                "rtmp_host": "127.0.0.1",
                "rtmp_port": holder.getsockname()[1],
            }
        )
        with running_node(settings) as node, node.client() as http:
            assert http.get("/healthz").status_code == 200
            assert node.app.state.ingest.rtmp is None
    assert "RTMP ingest is NOT running" in caplog.text
