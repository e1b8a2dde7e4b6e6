"""Money: subscriptions, gift purchases, their charges and webhook ids, overlay keys and alert feed.

Revision ID: 0002_money
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ingest_node.models import UTCDateTime

revision = "0002_money"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("subscriber_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("pending_tier", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("auto_renew", sa.Boolean, nullable=False),
        sa.Column("gifted_by", sa.String(64), nullable=True),
        sa.Column("period_no", sa.Integer, nullable=False),
        sa.Column("period_start", UTCDateTime, nullable=True),
        sa.Column("period_end", UTCDateTime, nullable=True),
        sa.Column("paused_at", UTCDateTime, nullable=True),
        sa.Column("notice_period_no", sa.Integer, nullable=False),
        sa.Column("streak_months", sa.Integer, nullable=False),
        sa.Column("manage_token_hash", sa.String(64), nullable=False),
        sa.Column("payment_token", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("tier IN ('supporter', 'vip', 'champion')", name="ck_subscriptions_tier"),
        sa.CheckConstraint(
            "status IN ('pending', 'failed', 'active', 'paused', 'cancelled', 'expired')",
            name="ck_subscriptions_status",
        ),
    )
    op.create_index("ix_subscriptions_channel_id", "subscriptions", ["channel_id"])
    op.create_index("ix_subscriptions_subscriber_id", "subscriptions", ["subscriber_id"])
    op.create_index("ix_subscriptions_period_end", "subscriptions", ["period_end"])
    op.create_table(
        "gift_purchases",
        sa.Column("gift_id", sa.String(36), primary_key=True),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("sender_id", sa.String(64), nullable=True),
        sa.Column("sender_name", sa.String(100), nullable=True),
        sa.Column("recipient_id", sa.String(64), nullable=True),
        sa.Column("message", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("amount_minor > 0 AND quantity > 0", name="ck_gift_purchases_positive"),
    )
    op.create_index("ix_gift_purchases_channel_id", "gift_purchases", ["channel_id"])
    op.create_index("ix_gift_purchases_sender_id", "gift_purchases", ["sender_id"])
    op.create_index("ix_gift_purchases_recipient_id", "gift_purchases", ["recipient_id"])
    op.create_table(
        "money_charges",
        sa.Column("charge_id", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), nullable=False),
        sa.Column(
            "subscription_id", sa.String(36), sa.ForeignKey("subscriptions.subscription_id"), nullable=True
        ),
        sa.Column("gift_id", sa.String(36), sa.ForeignKey("gift_purchases.gift_id"), nullable=True),
        sa.Column("tier", sa.String(16), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_payment_id", sa.String(128), nullable=True, unique=True),
        sa.Column("idempotency_key", sa.String(160), nullable=False, unique=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("failure_reason", sa.String(300), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("amount_minor > 0", name="ck_money_charges_amount_positive"),
    )
    op.create_index("ix_money_charges_subscription_id", "money_charges", ["subscription_id"])
    op.create_table(
        "money_webhook_events",
        sa.Column("webhook_id", sa.String(128), primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("charge_id", sa.String(36), sa.ForeignKey("money_charges.charge_id"), nullable=False),
        sa.Column("processed_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "overlay_keys",
        sa.Column("channel_id", sa.String(64), sa.ForeignKey("channels.channel_id"), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "overlay_alerts",
        sa.Column("seq", BIGINT_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_overlay_alerts_channel_id", "overlay_alerts", ["channel_id"])


def downgrade() -> None:
    for table in (
        "overlay_alerts",
        "overlay_keys",
        "money_webhook_events",
        "money_charges",
        "gift_purchases",
        "subscriptions",
    ):
        op.drop_table(table)
