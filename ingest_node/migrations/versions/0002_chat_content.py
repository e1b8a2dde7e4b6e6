"""Chat content: message kinds (sticker, donation, subscription), channel emotes and stickers, pinned
(boosted) messages, and IP-fingerprint blocks of banned users.

Continues the chat branch (it adds columns to `chat_messages`, which `0002_chat` creates), so its
down revision is `0002_chat` rather than `0001`.

Revision ID: 0002_chat_content
Revises: 0002_chat
Create Date: 2025-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_chat_content"
down_revision = "0002_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="chat"))
        batch.add_column(sa.Column("meta", sa.Text, nullable=True))
    op.create_table(
        "chat_emotes",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("min_tier", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "chat_pins",
        sa.Column("pin_id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("pinned_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_chat_pins_channel_expires", "chat_pins", ["channel_id", "expires_at"])
    op.create_table(
        "chat_seen_addresses",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("ip_hash", sa.String(64), nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "chat_address_blocks",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("ip_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_chat_address_blocks_user_id", "chat_address_blocks", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_chat_address_blocks_user_id", "chat_address_blocks")
    op.drop_table("chat_address_blocks")
    op.drop_table("chat_seen_addresses")
    op.drop_index("ix_chat_pins_channel_expires", "chat_pins")
    op.drop_table("chat_pins")
    op.drop_table("chat_emotes")
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("meta")
        batch.drop_column("kind")
