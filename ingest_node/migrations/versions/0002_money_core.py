"""Money core: the recipients of a 'gift subscriptions to N random viewers' charge.

Revision ID: 0002_money_core
Revises: 0002_money
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_money_core"
# A child of 0002_money (not a branch off 0001 with depends_on): its table references money_charges and
# subscriptions, and a depends_on would leave 0002_money a script head that the database never reports,
# so /readyz's "at head" would never hold.
down_revision = "0002_money"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_batch_members",
        sa.Column("charge_id", sa.String(36), sa.ForeignKey("money_charges.charge_id"), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.String(36),
            sa.ForeignKey("subscriptions.subscription_id"),
            primary_key=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("subscription_batch_members")
