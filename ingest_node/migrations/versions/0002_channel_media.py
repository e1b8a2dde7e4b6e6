"""Per-channel media settings: latency level, quality preset, codec and segment format.

Revision ID: 0002_channel_media
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_channel_media"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Values are validated by the API against presets.yaml (one source of truth); the database only
    # keeps the codec and format to the names the pipeline knows.
    op.create_table(
        "channel_media",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("latency_level", sa.Integer, nullable=False),
        sa.Column("quality_preset", sa.String(16), nullable=False),
        sa.Column("codec", sa.String(8), nullable=False),
        sa.Column("segment_format", sa.String(8), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("codec IN ('h264', 'hevc', 'av1')", name="ck_channel_media_codec"),
        sa.CheckConstraint(
            "segment_format IS NULL OR segment_format IN ('ts', 'fmp4')", name="ck_channel_media_format"
        ),
    )


def downgrade() -> None:
    op.drop_table("channel_media")
