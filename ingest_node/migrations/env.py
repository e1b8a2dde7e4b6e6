"""Alembic environment, configured in code by `ingest_node.db.alembic_config` (no alembic.ini).

`ingest_node.db.migrate` hands over an open connection; offline or CLI runs are not supported on
purpose: the node migrates itself on start.
"""

from __future__ import annotations

from alembic import context

from ingest_node.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ingest_node.db.migrate(settings)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
