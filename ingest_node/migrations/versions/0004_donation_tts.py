"""One TTS switch per channel (the alert settings') and the donor's own choice per donation.

`donation_rules.tts_enabled` was a second switch that the alert box never read, so it could say "on"
while the overlay stayed silent (or the reverse). It is dropped; the alert settings' `tts.enabled` is
the only one. Where a streamer had turned it off in the donation rules while the alert settings had it
on, the alert settings are turned off: a streamer who said "no speech" in either place gets none.
`donations.tts` holds the donor's checkbox ("read my message aloud"), true for earlier donations.

Revision ID: 0004_donation_tts
Revises: 0003_donation_rules
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004_donation_tts"
# On the donation-rules branch (it drops that branch's column), not a depends_on: a dependency drops
# the other branch's revision from alembic_version, which readiness (`at_head`) reads as "not at head".
down_revision = "0003_donation_rules"
branch_labels = None
depends_on = None


def _turn_off_alert_tts(connection: sa.Connection) -> None:
    """Carry a donation-rules "off" into the alert settings. When the interactive branch has not made
    `alert_settings` yet there is nothing to carry: a channel without alert settings has TTS off."""
    if not sa.inspect(connection).has_table("alert_settings"):
        return
    off = connection.execute(
        sa.text("SELECT channel_id FROM donation_rules WHERE tts_enabled = :f"), {"f": False}
    ).scalars()
    for channel_id in list(off):
        stored = connection.execute(
            sa.text("SELECT settings FROM alert_settings WHERE channel_id = :c"), {"c": channel_id}
        ).scalar_one_or_none()
        if stored is None:
            continue
        settings = json.loads(stored)
        tts = settings.get("tts") or {}
        if tts.get("enabled"):
            settings["tts"] = {**tts, "enabled": False}
            connection.execute(
                sa.text("UPDATE alert_settings SET settings = :s WHERE channel_id = :c"),
                {"s": json.dumps(settings), "c": channel_id},
            )


def upgrade() -> None:
    _turn_off_alert_tts(op.get_bind())
    with op.batch_alter_table("donation_rules") as batch:
        batch.drop_column("tts_enabled")
    op.add_column("donations", sa.Column("tts", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("donations") as batch:
        batch.drop_column("tts")
    with op.batch_alter_table("donation_rules") as batch:
        batch.add_column(sa.Column("tts_enabled", sa.Boolean, nullable=False, server_default=sa.true()))
