"""Interactive donations and widgets: boosted messages, the request queue, challenges, donation tags,
stream moments, the goal bar's goal and the alert box settings.

Revision ID: 0002_interactive
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_interactive"
down_revision = "0001"
branch_labels = None
# No depends_on 0002_money: a dependency drops 0002_money from alembic_version, which readiness
# (`at_head`) then reads as "not at head". So `charge_id` is a plain unique column, not a foreign key
# to money_charges (whose branch may be applied after this one).
depends_on = None


def _channel() -> sa.Column[str]:
    return sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "boosted_messages",
        sa.Column("boost_id", sa.String(36), primary_key=True),
        _channel(),
        sa.Column("charge_id", sa.String(36), nullable=False, unique=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("message", sa.String(300), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("pin_seconds", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pin_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_boosted_messages_channel_id", "boosted_messages", ["channel_id"])
    op.create_table(
        "request_queues",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("is_open", sa.Boolean, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("min_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "media_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        _channel(),
        sa.Column("charge_id", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("url", sa.String(500), nullable=True),
        sa.Column("requester_id", sa.String(64), nullable=True),
        sa.Column("requester_name", sa.String(100), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("manual_order", sa.Integer, nullable=True),
        sa.Column("refund", sa.String(16), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("queued_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_media_requests_channel_id", "media_requests", ["channel_id"])
    op.create_index("ix_media_requests_status", "media_requests", ["status"])
    op.create_table(
        "challenges",
        sa.Column("challenge_id", sa.String(36), primary_key=True),
        _channel(),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("target_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("raised_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_challenges_channel_id", "challenges", ["channel_id"])
    op.create_table(
        "donation_tags",
        sa.Column("donation_id", sa.String(36), sa.ForeignKey("donations.donation_id"), primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("challenge_id", sa.String(36), sa.ForeignKey("challenges.challenge_id"), nullable=True),
        sa.Column("counted", sa.Boolean, nullable=False),
        sa.Column("moment_broadcast_id", sa.String(36), nullable=True),
        sa.Column("moment_offset_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_donation_tags_channel_id", "donation_tags", ["channel_id"])
    op.create_index("ix_donation_tags_challenge_id", "donation_tags", ["challenge_id"])
    op.create_table(
        "stream_moments",
        sa.Column("moment_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("broadcast_id", sa.String(36), nullable=False),
        sa.Column("donation_id", sa.String(36), nullable=False, unique=True),
        sa.Column("offset_ms", sa.BigInteger, nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_stream_moments_channel_id", "stream_moments", ["channel_id"])
    op.create_index("ix_stream_moments_broadcast_id", "stream_moments", ["broadcast_id"])
    op.create_table(
        "stream_goals",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("target_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "alert_settings",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "alert_settings",
        "stream_goals",
        "stream_moments",
        "donation_tags",
        "challenges",
        "media_requests",
        "request_queues",
        "boosted_messages",
    ):
        op.drop_table(table)
