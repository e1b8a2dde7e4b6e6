"""Viewer challenges and highlighted stream moments: what a donation can ask for beyond the money.

A donation may name a challenge (`challenge_id`) and/or ask for a moment marker (`mark_moment`).
Both are checked when the donation is made (an unknown or closed challenge, another channel's, another
currency, or a moment while the channel is offline are refused before anything is stored) and kept as
a `donation_tags` row in the donation's own transaction. They take effect when the donation's money
does: a session hook watches the outbox rows of `donation.processed` (count towards the challenge,
store the moment) and of `donation.refunded|charged_back` (take the amount back out), in the same
transaction as the donation's state change, so progress never counts a donation twice or misses one.
A challenge completes once, when it first reaches its target; a later reversal lowers its progress
but does not undo the completion (the streamer may have done the challenge already).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.audit import audit
from ingest_node.ingest.models import Broadcast, BroadcastStatus
from ingest_node.models import Channel, OutboxRow, utcnow
from ingest_node.money.alerts import AlertHub
from ingest_node.money.interactive import Refused
from ingest_node.money.interactive_models import Challenge, DonationTag, StreamMoment
from ingest_node.outbox import enqueue
from services import events
from services.ids import new_id
from services.money import Currency
from services.settings import Settings

SETTLED = "donation.processed"
REVERSED = frozenset({"donation.refunded", "donation.charged_back"})
_FLAG = "efir_interactive_changed"


@dataclass(frozen=True)
class Tag:
    """A checked tag, waiting for its donation's id."""

    channel_id: str
    challenge_id: str | None
    broadcast_id: str | None
    offset_ms: int | None

    def row(self, donation_id: str) -> DonationTag:
        return DonationTag(
            donation_id=donation_id,
            channel_id=self.channel_id,
            challenge_id=self.challenge_id,
            counted=False,
            moment_broadcast_id=self.broadcast_id,
            moment_offset_ms=self.offset_ms,
        )


def live_broadcast(session: Session, channel_id: str) -> Broadcast | None:
    return session.execute(
        sa.select(Broadcast)
        .where(Broadcast.channel_id == channel_id, Broadcast.status == BroadcastStatus.LIVE)
        .order_by(Broadcast.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def check_tag(
    session: Session,
    *,
    channel_id: str,
    currency: Currency,
    challenge_id: str | None,
    mark_moment: bool,
    now: datetime | None = None,
) -> Tag | None:
    """The tag a donation asks for, or a Refused naming what is wrong; None when it asks for nothing."""
    if challenge_id is None and not mark_moment:
        return None
    if challenge_id is not None:
        challenge = session.get(Challenge, challenge_id)
        if challenge is None or challenge.channel_id != channel_id:
            raise Refused(404, f"challenge {challenge_id!r} does not exist in channel {channel_id!r}")
        if challenge.status == "closed":
            raise Refused(409, f"challenge {challenge_id} is closed")
        if challenge.currency != currency.value:
            raise Refused(422, f"challenge {challenge_id} counts donations in {challenge.currency} only")
    broadcast_id, offset_ms = None, None
    if mark_moment:
        broadcast = live_broadcast(session, channel_id)
        if broadcast is None:
            raise Refused(409, "the channel is not live: a moment marks a time in the current broadcast")
        moment = now or utcnow()
        broadcast_id = broadcast.broadcast_id
        offset_ms = max(0, int((moment - broadcast.started_at).total_seconds() * 1000))
    return Tag(channel_id, challenge_id, broadcast_id, offset_ms)


# ---- challenges ---------------------------------------------------------------------------------


def create(
    session: Session,
    settings: Settings,
    *,
    channel_id: str,
    title: str,
    target_minor: int,
    currency: Currency,
    actor: str,
) -> Challenge:
    if session.get(Channel, channel_id) is None:
        raise Refused(404, f"channel {channel_id!r} does not exist")
    challenge = Challenge(
        challenge_id=new_id(),
        channel_id=channel_id,
        title=title,
        target_minor=target_minor,
        currency=currency.value,
        raised_minor=0,
        status="open",
    )
    session.add(challenge)
    session.flush()
    audit(
        session,
        actor=actor,
        action="challenge.created",
        entity=f"challenge:{challenge.challenge_id}",
        currency=currency.value,
        amount_after=0,
        status_after="open",
    )
    _emit(session, settings, events.ChallengeCreated(**_fields(challenge)), channel_id)
    return challenge


def close(session: Session, channel_id: str, challenge_id: str, *, actor: str) -> Challenge:
    challenge = _locked(session, challenge_id)
    if challenge is None or challenge.channel_id != channel_id:
        raise Refused(404, f"challenge {challenge_id!r} does not exist in channel {channel_id!r}")
    if challenge.status == "closed":
        raise Refused(409, f"challenge {challenge_id} is already closed")
    before = challenge.status
    challenge.status = "closed"
    audit(
        session,
        actor=actor,
        action="challenge.closed",
        entity=f"challenge:{challenge_id}",
        status_before=before,
        status_after="closed",
    )
    return challenge


def public(challenge: Challenge) -> dict[str, Any]:
    return {
        "challenge_id": challenge.challenge_id,
        "channel_id": challenge.channel_id,
        "title": challenge.title,
        "target_minor": challenge.target_minor,
        "raised_minor": challenge.raised_minor,
        "currency": challenge.currency,
        "status": challenge.status,
        "created_at": challenge.created_at.isoformat(),
        "completed_at": challenge.completed_at.isoformat() if challenge.completed_at else None,
    }


def _fields(challenge: Challenge) -> dict[str, Any]:
    return {
        "challenge_id": challenge.challenge_id,
        "title": challenge.title,
        "target_minor": challenge.target_minor,
        "raised_minor": challenge.raised_minor,
        "currency": Currency(challenge.currency),
    }


def _locked(session: Session, challenge_id: str) -> Challenge | None:
    return session.execute(
        sa.select(Challenge).where(Challenge.challenge_id == challenge_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).scalar_one_or_none()


def _emit(session: Session, settings: Settings, payload: events.Payload, channel_id: str) -> None:
    enqueue(session, events.Envelope.wrap(payload, channel_id=channel_id, node_id=settings.node_id))


# ---- the hook on donation events ------------------------------------------------------------------


def _on_donation_event(session: Session, settings: Settings, envelope: dict[str, Any]) -> bool:
    payload = envelope["payload"]
    tag = session.get(DonationTag, payload["donation_id"])
    if tag is None:
        return False
    amount = int(payload["amount_minor"])
    if envelope["event_type"] == SETTLED:
        if tag.challenge_id is not None and not tag.counted:
            _count(session, settings, tag, amount, payload["donation_id"])
        if tag.moment_broadcast_id is not None and tag.moment_offset_ms is not None:
            _mark(session, settings, tag, payload)
    elif tag.counted and tag.challenge_id is not None:
        _count(session, settings, tag, -amount, payload["donation_id"])
    return True


def _count(session: Session, settings: Settings, tag: DonationTag, delta: int, donation_id: str) -> None:
    assert tag.challenge_id is not None
    challenge = _locked(session, tag.challenge_id)
    assert challenge is not None
    before = challenge.raised_minor
    challenge.raised_minor = before + delta
    tag.counted = delta > 0
    audit(
        session,
        actor="payment-service",
        action="challenge.progress",
        entity=f"challenge:{challenge.challenge_id}",
        currency=challenge.currency,
        amount_before=before,
        amount_after=challenge.raised_minor,
    )
    fields = _fields(challenge)
    _emit(
        session,
        settings,
        events.ChallengeProgress(**fields, donation_id=donation_id, delta_minor=delta),
        challenge.channel_id,
    )
    if challenge.status == "open" and challenge.raised_minor >= challenge.target_minor:
        challenge.status, challenge.completed_at = "completed", utcnow()
        _emit(
            session,
            settings,
            events.ChallengeCompleted(**fields, donation_id=donation_id),
            challenge.channel_id,
        )


def _mark(session: Session, settings: Settings, tag: DonationTag, payload: dict[str, Any]) -> None:
    assert tag.moment_broadcast_id is not None and tag.moment_offset_ms is not None
    exists = session.execute(
        sa.select(StreamMoment.moment_id).where(StreamMoment.donation_id == tag.donation_id)
    ).scalar_one_or_none()
    if exists is not None:
        return
    moment = StreamMoment(
        moment_id=new_id(),
        channel_id=tag.channel_id,
        broadcast_id=tag.moment_broadcast_id,
        donation_id=tag.donation_id,
        offset_ms=tag.moment_offset_ms,
        label=str(payload.get("message") or "")[:300],
    )
    session.add(moment)
    marked = events.MomentMarked(
        moment_id=moment.moment_id,
        broadcast_id=moment.broadcast_id,
        donation_id=moment.donation_id,
        offset_ms=moment.offset_ms,
        label=moment.label,
    )
    _emit(session, settings, marked, tag.channel_id)


def install_interactive_feed(sessions: sessionmaker[Session], settings: Settings, hub: AlertHub) -> None:
    """Hook the node's sessions: settled and reversed donations move their challenge and mark their
    moment in the same flush; overlay widgets are woken after the commit."""

    def collect(session: Session, _context: Any, _instances: Any) -> None:
        changed = False
        with session.no_autoflush:
            for obj in list(session.new):
                if not isinstance(obj, OutboxRow):
                    continue
                envelope = json.loads(obj.value)
                kind = envelope["event_type"]
                if kind == SETTLED or kind in REVERSED:
                    changed = _on_donation_event(session, settings, envelope) or True
                elif obj.topic == "interactive":
                    changed = True
        if changed:
            session.info[_FLAG] = True

    def committed(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            hub.notify()

    def rolled_back(session: Session) -> None:
        session.info.pop(_FLAG, None)

    sa.event.listen(sessions, "before_flush", collect)
    sa.event.listen(sessions, "after_commit", committed)
    sa.event.listen(sessions, "after_rollback", rolled_back)
