"""Sponsorships: a brand's paid invoice for an integration on a channel, recorded by finance.

Revision ID: 0004_sponsorships
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0004_sponsorships"
down_revision = "0001"  # its own branch: it needs only `channels`
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sponsorships",
        sa.Column("sponsorship_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("sponsor_name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_reference", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("refunded_at", UTCDateTime, nullable=True),
        sa.Column("refunded_by", sa.String(128), nullable=True),
        sa.Column("refund_reason", sa.String(300), nullable=True),
        sa.Column("idempotency_key", sa.String(140), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("refund_idempotency_key", sa.String(140), nullable=True),
        sa.Column("refund_request_hash", sa.String(64), nullable=True),
        sa.Column("refund_response_body", sa.Text, nullable=True),
        sa.CheckConstraint("status IN ('paid', 'refunded')", name="ck_sponsorships_status"),
        sa.CheckConstraint("amount_minor > 0", name="ck_sponsorships_amount"),
        sa.CheckConstraint("currency IN ('RUB', 'USD', 'EUR')", name="ck_sponsorships_currency"),
        sa.UniqueConstraint("channel_id", "payment_reference", name="uq_sponsorships_reference"),
        sa.UniqueConstraint("idempotency_key", name="uq_sponsorships_idempotency_key"),
        sa.UniqueConstraint("refund_idempotency_key", name="uq_sponsorships_refund_idempotency_key"),
    )
    op.create_index("ix_sponsorships_channel_id", "sponsorships", ["channel_id"])


def downgrade() -> None:
    op.drop_index("ix_sponsorships_channel_id", "sponsorships")
    op.drop_table("sponsorships")
