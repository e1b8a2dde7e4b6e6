"""The end-to-end tests reuse the node's live fixtures (a real node and sandbox on free ports)."""

from tests.ingest_node.conftest import node, node_settings, sandbox  # noqa: F401
