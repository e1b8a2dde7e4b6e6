"""Donation rules per channel, the edge record of each donation, and flagged donors.

Revision ID: 0003_donation_rules
Revises: 0001
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0003_donation_rules"
down_revision = "0001"
branch_labels = None
depends_on = None


STATUSES = "'pending', 'succeeded', 'failed', 'refunded', 'charged_back'"


def upgrade() -> None:
    # `held`: a donation waiting for review before it is charged (batch mode rebuilds it on SQLite).
    with op.batch_alter_table("donations") as batch:
        batch.drop_constraint("ck_donations_status", type_="check")
        batch.create_check_constraint("ck_donations_status", f"status IN ({STATUSES}, 'held')")
    op.create_table(
        "donation_rules",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("presets", sa.JSON, nullable=False),
        sa.Column("tts_enabled", sa.Boolean, nullable=False),
        sa.Column("requires_approval", sa.Boolean, nullable=False),
        sa.Column("donor_covers_fee", sa.Boolean, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "donation_edges",
        sa.Column("donation_id", sa.String(36), sa.ForeignKey("donations.donation_id"), primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("ip_hash", sa.String(64), nullable=False),
        sa.Column("card_hash", sa.String(64), nullable=False),
        sa.Column("device_hash", sa.String(64), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("charged_minor", sa.BigInteger, nullable=False),
        sa.Column("hidden_message", sa.String(300), nullable=True),
        sa.Column("moderation", sa.String(200), nullable=True),
        sa.Column("review", sa.String(16), nullable=False),
        sa.Column("held_reason", sa.String(200), nullable=True),
        sa.Column("held_token", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    for column in ("channel_id", "ip_hash", "card_hash", "device_hash", "created_at"):
        op.create_index(f"ix_donation_edges_{column}", "donation_edges", [column])
    op.create_table(
        "flagged_donors",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("donation_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("flagged_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flagged_donors")
    op.drop_table("donation_edges")
    op.drop_table("donation_rules")
    with op.batch_alter_table("donations") as batch:
        batch.drop_constraint("ck_donations_status", type_="check")
        batch.create_check_constraint("ck_donations_status", f"status IN ({STATUSES})")
