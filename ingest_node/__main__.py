"""`python -m ingest_node`: migrate the node database, then serve the node with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from ingest_node.app import create_app
from ingest_node.db import migrate
from services.settings import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python logs every connect and close at INFO: at the node's default level that buried the
    # one line saying why the node stopped (e.g. a port it cannot bind) under the clients' shutdown.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    migrate(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.node_host,
        port=settings.node_port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
