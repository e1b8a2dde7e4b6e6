"""Ingest: hashed stream keys per channel and broadcasts (live sessions).

Revision ID: 0002_ingest
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_ingest"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_keys",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("lookup", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_stream_keys_channel_id", "stream_keys", ["channel_id"])
    op.create_index("ix_stream_keys_lookup", "stream_keys", ["lookup"])
    op.create_table(
        "broadcasts",
        sa.Column("broadcast_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("restarts", sa.Integer, nullable=False),
        sa.CheckConstraint("status IN ('live', 'ended', 'errored')", name="ck_broadcasts_status"),
    )
    op.create_index("ix_broadcasts_channel_id", "broadcasts", ["channel_id"])


def downgrade() -> None:
    op.drop_table("broadcasts")
    op.drop_table("stream_keys")
