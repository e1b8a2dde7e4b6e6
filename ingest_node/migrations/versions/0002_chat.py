"""Chat: messages, channel roles, bans and timeouts, channel modes and auto-moderation settings.

Revision ID: 0002_chat
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_chat"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    channel_fk = sa.ForeignKey("channels.channel_id")
    op.create_table(
        "chat_messages",
        sa.Column("id", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False, unique=True),
        sa.Column("channel_id", sa.String(64), channel_fk, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('visible', 'hidden', 'held', 'deleted', 'rejected')", name="ck_chat_messages_status"
        ),
    )
    op.create_index("ix_chat_messages_channel", "chat_messages", ["channel_id", "id"])
    op.create_table(
        "chat_roles",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("sub_tier", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "chat_restrictions",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("until", UTCDateTime, nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "chat_channel_settings",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("slow_seconds", sa.Integer, nullable=False),
        sa.Column("subs_only", sa.Boolean, nullable=False),
        sa.Column("emote_only", sa.Boolean, nullable=False),
        sa.Column("automod", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("chat_channel_settings", "chat_restrictions", "chat_roles", "chat_messages"):
        op.drop_table(table)
