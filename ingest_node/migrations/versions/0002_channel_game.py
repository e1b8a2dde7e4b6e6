"""The game a channel is playing: display name and slug (services/games.py normalises both).

Revision ID: 0002_channel_game
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_channel_game"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A table of its own rather than a column on `channels`: no copy of the channels table on SQLite,
    # and a channel without a game simply has no row.
    op.create_table(
        "channel_game",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("game", sa.String(100), nullable=False),
        sa.Column("game_slug", sa.String(100), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_channel_game_slug", "channel_game", ["game_slug"])


def downgrade() -> None:
    op.drop_index("ix_channel_game_slug", table_name="channel_game")
    op.drop_table("channel_game")
