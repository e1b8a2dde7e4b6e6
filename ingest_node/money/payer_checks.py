"""Who may pay and who may receive: chat bans (read from the chat's tables, never written here) and the
flags a chargeback leaves on its payer.

A chargeback of a subscription or gift charge flags the payer the way a donation's chargeback flags its
donor (`flagged_donors`): the user id (kind `user`) and, when the node kept one, the saved payment
token's fingerprint (kind `card`, the same keyed fingerprint the donation edge computes, so the card's
next donation is held for review too). A flagged payer's next subscription or gift is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.chat.models import ChatRestriction
from ingest_node.models import utcnow
from ingest_node.money.donation_rules import FlaggedDonor, fingerprint
from services.settings import Settings

BAN = "ban"


class RecipientBanned(Exception):
    """The recipient is banned from the channel's chat: gifts to them are refused (answered 409)."""


class PayerFlagged(Exception):
    """The payer charged back before: their subscriptions and gifts are refused (answered 403)."""


def banned_among(session: Session, channel_id: str, users: Iterable[str]) -> set[str]:
    """Users of `users` banned from the channel's chat (a ban has no end; timeouts do not count)."""
    wanted = list(users)
    if not wanted:
        return set()
    rows = session.execute(
        sa.select(ChatRestriction.user_id, ChatRestriction.until).where(
            ChatRestriction.channel_id == channel_id,
            ChatRestriction.user_id.in_(wanted),
            ChatRestriction.kind == BAN,
        )
    ).all()
    now = utcnow()
    return {user for user, until in rows if until is None or until > now}


def refuse_banned_recipient(session: Session, channel_id: str, recipient_id: str | None) -> None:
    if recipient_id is not None and banned_among(session, channel_id, [recipient_id]):
        raise RecipientBanned(
            f"{recipient_id!r} is banned from {channel_id!r}: gifts to a banned user are refused, "
            "nothing was charged"
        )


def _user_key(user_id: str, settings: Settings) -> tuple[str, str]:
    return ("user", fingerprint(f"user:{user_id}", settings))


def refuse_flagged_payer(session: Session, settings: Settings, payer_id: str | None) -> None:
    if payer_id is not None and session.get(FlaggedDonor, _user_key(payer_id, settings)) is not None:
        raise PayerFlagged(
            f"payments from {payer_id!r} are suspended after a chargeback; contact support. "
            "Nothing was charged"
        )


def flag_payer(
    session: Session,
    settings: Settings,
    charge_id: str,
    reason: str,
    *,
    user_id: str | None,
    payment_token: str | None,
) -> int:
    """Flag the payer of a charged-back charge (caller's transaction); returns how many new flags."""
    keys: list[tuple[str, str]] = []
    if user_id is not None:
        keys.append(_user_key(user_id, settings))
    if payment_token:
        keys.append(("card", fingerprint(payment_token, settings)))
    added = 0
    for kind, value in keys:
        if session.get(FlaggedDonor, (kind, value)) is None:
            session.add(
                FlaggedDonor(kind=kind, fingerprint=value, donation_id=charge_id, reason=reason[:300])
            )
            added += 1
    return added
