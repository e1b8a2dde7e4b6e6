"""The event envelope and every event schema: one definition each, used by producer, lander and tests.

Events travel as JSON with key = channel_id, so one channel's events stay ordered. Each event type
belongs to one topic; the lander maps a topic to a typed Arrow schema built from these models.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ids import new_id
from services.money import Currency

SCHEMA_VERSION = 1


class Payload(BaseModel):
    """Base of every event payload; subclasses declare `event_type` and `topic`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]
    topic: ClassVar[str]


class DonationCreated(Payload):
    """A viewer started a donation; the payment is pending at the provider."""

    event_type: ClassVar[str] = "donation.created"
    topic: ClassVar[str] = "donations"
    donation_id: str
    amount_minor: int
    currency: Currency
    donor_name: str | None = None
    message: str = ""
    # The donor's choice to have `message` read aloud by the alert box (the channel's alert settings
    # and TTS filter decide too); True on events from nodes before the choice existed.
    tts: bool = True


class DonationProcessed(Payload):
    """DonationReceived in the plan: the provider settled the payment, money is ours."""

    event_type: ClassVar[str] = "donation.processed"
    topic: ClassVar[str] = "donations"
    donation_id: str
    payment_id: str
    amount_minor: int
    currency: Currency
    donor_name: str | None = None
    message: str = ""
    settled_at: datetime
    # The edge's keyed fingerprints (HMAC under EFIR_FINGERPRINT_SECRET, never the raw value), so the
    # fraud features can count velocity and diversity per IP, card and device; None when not stamped.
    ip_hash: str | None = None
    card_hash: str | None = None
    device_hash: str | None = None
    # The split of `amount_minor` by the one rule in services.revenue (in the event's currency) and the
    # fee the donor covered on top (charged = amount + donor fee), so the lake reconciles with the
    # provider's charges without re-deriving them; None on events written before they were stamped.
    streamer_share_minor: int | None = None
    platform_fee_minor: int | None = None
    donor_fee_minor: int | None = None
    # The donor's choice to have `message` read aloud (see DonationCreated.tts); the overlay speaks only
    # when it is true, the channel's alert settings allow TTS and the message passes their filter.
    tts: bool = True


class DonationFailed(Payload):
    """The provider declined the payment; nothing moves."""

    event_type: ClassVar[str] = "donation.failed"
    topic: ClassVar[str] = "donations"
    donation_id: str
    amount_minor: int
    currency: Currency
    reason: str


class _SettledCharge(Payload):
    """Fields every event about an already settled payment carries (donation, subscription or gift):
    `settled_at` is the original settlement, so a reversal converts at the same FX rate and undoes the
    streamer's share exactly; the split fields are the share and fee the reversal takes back (None on
    events written before they were stamped)."""

    payment_id: str
    amount_minor: int
    currency: Currency
    settled_at: datetime
    reason: str = ""
    streamer_share_minor: int | None = None
    platform_fee_minor: int | None = None


class _SettledReversal(_SettledCharge):
    """A settled donation's reversal or dispute (`donor_fee_minor`: what the donor paid on top)."""

    donation_id: str
    donor_fee_minor: int | None = None


class DonationRefunded(_SettledReversal):
    """A settled donation was refunded."""

    event_type: ClassVar[str] = "donation.refunded"
    topic: ClassVar[str] = "donations"


class DonationChargedBack(_SettledReversal):
    """The payer's bank reversed a settled donation; same reversal rule as a refund."""

    event_type: ClassVar[str] = "donation.charged_back"
    topic: ClassVar[str] = "donations"


class DonationHeld(Payload):
    """A donation is held for review before it is charged (card testing, a flagged donor, the channel's
    manual approval or a held message); `reason` names the rule. Approval charges it, rejection fails it."""

    event_type: ClassVar[str] = "donation.held"
    topic: ClassVar[str] = "donations"
    donation_id: str
    amount_minor: int
    currency: Currency
    reason: str


class ChargebackReceived(_SettledReversal):
    """DESIGN.md's `chargeback.*`: a bank dispute arrived for a donation (its donor is now flagged); the
    reversal itself is `donation.charged_back`, so money marts never count this event."""

    event_type: ClassVar[str] = "chargeback.received"
    topic: ClassVar[str] = "donations"


# ---- chat (topic `chat`): messages and every moderation action --------------------------------


class ChatMessagePosted(Payload):
    """A chat message the node accepted; `status` is visible, hidden or held (with the automod `rule`)."""

    event_type: ClassVar[str] = "chat.message"
    topic: ClassVar[str] = "chat"
    message_id: str
    display_name: str
    text: str
    status: str
    rule: str | None = None
    # "chat", "sticker", "donation" or "subscription" (highlighted messages the money flows caused).
    kind: str = "chat"


class ChatMessageDeleted(Payload):
    """A message disappeared for everyone (deleted, its author timed out or banned, chat cleared)."""

    event_type: ClassVar[str] = "chat.deleted"
    topic: ClassVar[str] = "chat"
    message_id: str
    reason: str = ""
    actor_user_id: str | None = None


class ChatMention(Payload):
    """`@name` in a message: the mentioned name (the envelope's user_id is the author)."""

    event_type: ClassVar[str] = "chat.mention"
    topic: ClassVar[str] = "chat"
    message_id: str
    mentioned: str


class ModerationPayload(Payload):
    """One moderation action; `actor_user_id` is "automod" for automatic ones."""

    topic: ClassVar[str] = "chat"
    actor_user_id: str
    target_user_id: str | None = None
    message_id: str | None = None
    seconds: int | None = None
    enabled: bool | None = None
    reason: str = ""


class ModerationTimeout(ModerationPayload):
    event_type: ClassVar[str] = "moderation.timeout"


class ModerationBan(ModerationPayload):
    event_type: ClassVar[str] = "moderation.ban"


class ModerationUnban(ModerationPayload):
    event_type: ClassVar[str] = "moderation.unban"


class ModerationDelete(ModerationPayload):
    event_type: ClassVar[str] = "moderation.delete"


class ModerationSlow(ModerationPayload):
    event_type: ClassVar[str] = "moderation.slow"


class ModerationSubOnly(ModerationPayload):
    event_type: ClassVar[str] = "moderation.subonly"


class ModerationEmoteOnly(ModerationPayload):
    event_type: ClassVar[str] = "moderation.emoteonly"


class ModerationClear(ModerationPayload):
    event_type: ClassVar[str] = "moderation.clear"


class ModerationMod(ModerationPayload):
    event_type: ClassVar[str] = "moderation.mod"


class ModerationUnmod(ModerationPayload):
    event_type: ClassVar[str] = "moderation.unmod"


class ModerationApproved(ModerationPayload):
    event_type: ClassVar[str] = "moderation.approved"


class ModerationRejected(ModerationPayload):
    event_type: ClassVar[str] = "moderation.rejected"


class ModerationIpBan(ModerationPayload):
    """A ban that also blocks the keyed fingerprints of the addresses the user chatted from."""

    event_type: ClassVar[str] = "moderation.ipban"


class ChatPinned(Payload):
    """A paid (boosted) message pinned above the chat until `expires_at`; `source_event_id` is the
    settling payment's idempotency key (one pin per key)."""

    event_type: ClassVar[str] = "chat.pinned"
    topic: ClassVar[str] = "chat"
    pin_id: str
    source_event_id: str
    display_name: str
    text: str
    amount_minor: int
    currency: Currency
    expires_at: datetime


class ChatUnpinned(Payload):
    """A pinned boosted message taken down before `expires_at` because its payment was reversed
    (`reason`: the reversal's event type, e.g. `boost.charged_back`); a pin that simply expires has
    no event."""

    event_type: ClassVar[str] = "chat.unpinned"
    topic: ClassVar[str] = "chat"
    pin_id: str
    source_event_id: str
    reason: str


CHAT_PAYLOADS: tuple[type[Payload], ...] = (
    ChatMessagePosted,
    ChatMessageDeleted,
    ChatMention,
    ModerationTimeout,
    ModerationBan,
    ModerationUnban,
    ModerationDelete,
    ModerationSlow,
    ModerationSubOnly,
    ModerationEmoteOnly,
    ModerationClear,
    ModerationMod,
    ModerationUnmod,
    ModerationApproved,
    ModerationRejected,
    ModerationIpBan,
    ChatPinned,
    ChatUnpinned,
)
#: moderation verb -> its payload class (the chat hub emits `moderation.<verb>`).
MODERATION_PAYLOADS: dict[str, type[ModerationPayload]] = {
    cls.event_type.split(".", 1)[1]: cls for cls in CHAT_PAYLOADS if issubclass(cls, ModerationPayload)
}


# ---- subscriptions (topic `subscriptions`) and virtual gifts (topic `gifts`) ---------------------


class SubscriptionPayload(Payload):
    """One change of a subscription; amounts in kopecks (RUB). The envelope's user_id is the subscriber.

    `amount_minor` is what was charged by this change (0 when nothing was), `period_end` the end of the
    paid period after it, `streak_months` the consecutive paid months.
    """

    topic: ClassVar[str] = "subscriptions"
    subscription_id: str
    subscriber_id: str
    tier: str
    amount_minor: int = 0
    currency: Currency = Currency.RUB
    period_end: datetime | None = None
    streak_months: int = 0
    previous_tier: str | None = None
    gifted_by: str | None = None
    payment_id: str | None = None
    reason: str = ""


class SubscriptionCreated(SubscriptionPayload):
    """SubscriptionCreated in the plan: the first month is paid."""

    event_type: ClassVar[str] = "subscription.created"


class SubscriptionRenewed(SubscriptionPayload):
    event_type: ClassVar[str] = "subscription.renewed"


class SubscriptionUpgraded(SubscriptionPayload):
    """SubscriptionUpgraded in the plan: the prorated difference is paid, the new tier applies now."""

    event_type: ClassVar[str] = "subscription.upgraded"


class SubscriptionDowngraded(SubscriptionPayload):
    """A downgrade was scheduled: `tier` applies from the next renewal (nothing charged or credited)."""

    event_type: ClassVar[str] = "subscription.downgraded"


class SubscriptionCancelled(SubscriptionPayload):
    """SubscriptionCancelled in the plan: no renewal; perks stay until `period_end`."""

    event_type: ClassVar[str] = "subscription.cancelled"


class SubscriptionPaused(SubscriptionPayload):
    event_type: ClassVar[str] = "subscription.paused"


class SubscriptionResumed(SubscriptionPayload):
    event_type: ClassVar[str] = "subscription.resumed"


class SubscriptionExpired(SubscriptionPayload):
    """The paid period ended without a renewal (cancelled, gifted, or the renewal charge failed)."""

    event_type: ClassVar[str] = "subscription.expired"


class SubscriptionGifted(SubscriptionPayload):
    """Someone (`gifted_by`) paid a month for the subscriber."""

    event_type: ClassVar[str] = "subscription.gifted"


class SubscriptionRenewalNotice(SubscriptionPayload):
    """A renewal of `amount_minor` will be charged at `period_end`: a notifier tells the subscriber."""

    event_type: ClassVar[str] = "subscription.renewal_notice"


class GiftSent(Payload):
    """VirtualGiftSent in the plan: a paid gift reached the channel (and `recipient_id`, if any)."""

    event_type: ClassVar[str] = "gift.sent"
    topic: ClassVar[str] = "gifts"
    gift_id: str
    item_id: str
    item_name: str
    rarity: str
    kind: str
    quantity: int
    amount_minor: int
    currency: Currency
    sender_id: str | None = None
    sender_name: str | None = None
    recipient_id: str | None = None
    message: str = ""
    payment_id: str
    settled_at: datetime


class _SubscriptionReversal(_SettledCharge):
    """A settled subscription charge was taken back: the subscription it paid for ended at once
    (`subscription.expired` follows) and the streamer's share of `amount_minor` is reversed. A charge
    for N gifted subscriptions is reversed as N events, one per subscription, mirroring its N
    `subscription.gifted` credits so each split cancels to the kopeck."""

    topic: ClassVar[str] = "subscriptions"
    charge_id: str
    charge_kind: str
    subscription_id: str
    subscriber_id: str
    tier: str
    gifted_by: str | None = None


class SubscriptionRefunded(_SubscriptionReversal):
    event_type: ClassVar[str] = "subscription.refunded"


class SubscriptionChargedBack(_SubscriptionReversal):
    """The payer's bank reversed a subscription charge; the payer is flagged like a donor who charged back."""

    event_type: ClassVar[str] = "subscription.charged_back"


class _GiftReversal(_SettledCharge):
    """A settled gift's payment was taken back: the gift leaves the collection, the share is reversed."""

    topic: ClassVar[str] = "gifts"
    gift_id: str
    item_id: str
    quantity: int
    sender_id: str | None = None
    recipient_id: str | None = None


class GiftRefunded(_GiftReversal):
    event_type: ClassVar[str] = "gift.refunded"


class GiftChargedBack(_GiftReversal):
    """The payer's bank reversed a gift's payment; the sender is flagged like a donor who charged back."""

    event_type: ClassVar[str] = "gift.charged_back"


class InteractiveReversal(_SettledCharge):
    """A settled boost or request payment was taken back: the streamer's share of `amount_minor` is
    reversed exactly as its credit (`boost.pinned` / `request.submitted`) was split, at the donations'
    share, since interactive payments are donations with a purpose."""

    topic: ClassVar[str] = "interactive"
    charge_id: str
    payer_id: str | None = None


class BoostRefunded(InteractiveReversal):
    event_type: ClassVar[str] = "boost.refunded"
    boost_id: str


class BoostChargedBack(InteractiveReversal):
    """The payer's bank reversed a boost's payment; the payer is flagged like a donor who charged back."""

    event_type: ClassVar[str] = "boost.charged_back"
    boost_id: str


class RequestRefunded(InteractiveReversal):
    """A request's payment was refunded (the streamer skipped or removed it with a refund, or support did)."""

    event_type: ClassVar[str] = "request.refunded"
    request_id: str


class RequestChargedBack(InteractiveReversal):
    """The payer's bank reversed a request's payment; the payer is flagged like a donor who charged back."""

    event_type: ClassVar[str] = "request.charged_back"
    request_id: str


# ---- sponsored content (topic `sponsorships`): a brand pays for an integration on a channel ---------


class SponsorshipPaid(_SettledCharge):
    """A sponsor's invoice for content on the channel was paid (finance records it from the bank
    statement, so `payment_id` is the invoice or bank reference): 90% to the streamer."""

    event_type: ClassVar[str] = "sponsorship.paid"
    topic: ClassVar[str] = "sponsorships"
    sponsorship_id: str
    sponsor_name: str
    title: str


class SponsorshipRefunded(_SettledCharge):
    """A paid sponsorship was refunded to the sponsor (the integration did not air, a dispute): its
    credit is reversed exactly, at the original settlement's FX rate."""

    event_type: ClassVar[str] = "sponsorship.refunded"
    topic: ClassVar[str] = "sponsorships"
    sponsorship_id: str
    sponsor_name: str
    title: str


MONEY_PAYLOADS: tuple[type[Payload], ...] = (
    SubscriptionCreated,
    SubscriptionRenewed,
    SubscriptionUpgraded,
    SubscriptionDowngraded,
    SubscriptionCancelled,
    SubscriptionPaused,
    SubscriptionResumed,
    SubscriptionExpired,
    SubscriptionGifted,
    SubscriptionRenewalNotice,
    GiftSent,
    SubscriptionRefunded,
    SubscriptionChargedBack,
    GiftRefunded,
    GiftChargedBack,
    SponsorshipPaid,
    SponsorshipRefunded,
)


# ---- payouts (topic `payouts`): emitted by finance when a payout batch is approved -----------------


class PayoutScheduled(Payload):
    """PayoutScheduled in the plan: an approved batch will pay the channel `net_minor` (RUB kopecks) by
    `method`; `gross_minor - tax_minor == net_minor`. `payout_id` is `<period>:<channel_id>`, unique."""

    event_type: ClassVar[str] = "payout.scheduled"
    topic: ClassVar[str] = "payouts"
    payout_id: str
    period: str
    schedule: str
    method: str
    gross_minor: int
    tax_minor: int
    net_minor: int
    currency: Currency = Currency.RUB
    tax_status: str
    approved_by: str


FINANCE_PAYLOADS: tuple[type[Payload], ...] = (PayoutScheduled,)


# ---- live streams (topic `streams`) and viewers (topic `views`) ----------------------------------


class StreamPayload(Payload):
    """One step in the life of a broadcast: a publisher went live on a channel until it stopped.

    `broadcast_id` stays the same across a reconnect within the grace period; `renditions` is the
    comma-separated list of rendition names playing (the master playlist's variants). `game` is the slug
    of the game the channel says it is playing when the event is made (`services.games`: a stable key,
    "" when none is set or from nodes before games); `stream.game_changed` marks a change while live.
    """

    topic: ClassVar[str] = "streams"
    broadcast_id: str
    renditions: str = ""
    reason: str = ""
    restarts: int = 0
    duration_seconds: int | None = None
    game: str = ""


class StreamStarted(StreamPayload):
    """A publisher's key was accepted and its stream's worker started."""

    event_type: ClassVar[str] = "stream.started"


class StreamEnded(StreamPayload):
    """The publisher stopped (and did not come back within the grace period)."""

    event_type: ClassVar[str] = "stream.ended"


class StreamErrored(StreamPayload):
    """The stream ended because its pipeline failed: refused media, or a worker that kept crashing."""

    event_type: ClassVar[str] = "stream.errored"


class StreamLadderChanged(StreamPayload):
    """The pipeline shed or restored renditions (load, encoder fallback); new viewers see the new set."""

    event_type: ClassVar[str] = "stream.ladder_changed"


class StreamGameChanged(StreamPayload):
    """The channel's owner changed its game while it was live: `game` is the new slug ("" cleared)."""

    event_type: ClassVar[str] = "stream.game_changed"


class RecordingReady(Payload):
    """A broadcast's recording (the source, remuxed, never re-encoded) is a VOD in the recording store.

    `duration_ms` is the sum of its segments' durations; `size_bytes` the bytes of its segments;
    `playlist_url` the node path of its VOD playlist (`/vod/<channel>/<broadcast>/index.m3u8`).
    """

    event_type: ClassVar[str] = "recording.ready"
    topic: ClassVar[str] = "streams"
    broadcast_id: str
    duration_ms: int
    size_bytes: int
    segments: int
    playlist_url: str


class ViewHeartbeat(Payload):
    """What one viewer session fetched of one rendition since the previous heartbeat (summed in memory).

    `user_agent_class` is browser, mobile, tv, bot, headless, player or other; `region` comes from the
    header named by EFIR_VIEW_REGION_HEADER. Concurrent viewers and watch time are computed downstream.
    The envelope's user_id is the signed-in viewer (the session's verified chat token), None when
    anonymous; it is not repeated here, because the lake's `views` columns already hold it.
    """

    event_type: ClassVar[str] = "view.heartbeat"
    topic: ClassVar[str] = "views"
    session_id: str
    rendition: str
    bytes: int
    requests: int
    segments: int
    user_agent_class: str
    region: str | None = None
    window_start: datetime
    window_end: datetime
    # A keyed hash of the client IP (never the IP), so analytics can spot many sessions from one address;
    # None from nodes that do not send it yet.
    ip_hash: str | None = None


STREAM_PAYLOADS: tuple[type[Payload], ...] = (
    StreamStarted,
    StreamEnded,
    StreamErrored,
    StreamLadderChanged,
    RecordingReady,
    ViewHeartbeat,
    StreamGameChanged,
)


# ---- interactive donations (topic `interactive`): boosts, the request queue, challenges, moments -------


class BoostPinned(Payload):
    """A boosted chat message was paid for: it is pinned in the channel's chat for `pin_seconds`."""

    event_type: ClassVar[str] = "boost.pinned"
    topic: ClassVar[str] = "interactive"
    boost_id: str
    charge_id: str
    amount_minor: int
    currency: Currency
    display_name: str | None = None
    message: str
    pin_seconds: int
    payment_id: str
    settled_at: datetime


class _RequestPayload(Payload):
    """One step of a music/game request in the streamer's queue (`request.*` in the issue)."""

    topic: ClassVar[str] = "interactive"
    request_id: str
    kind: str
    title: str
    requester_name: str | None = None
    amount_minor: int
    currency: Currency


class RequestSubmitted(_RequestPayload):
    """The request's payment settled: it joined the queue."""

    event_type: ClassVar[str] = "request.submitted"
    charge_id: str
    payment_id: str
    settled_at: datetime


class RequestPlayed(_RequestPayload):
    event_type: ClassVar[str] = "request.played"


class RequestSkipped(_RequestPayload):
    """The streamer skipped it; `refund` says whether they chose to refund the viewer."""

    event_type: ClassVar[str] = "request.skipped"
    refund: bool


class RequestRemoved(_RequestPayload):
    """The streamer removed it from the queue (unsuitable, duplicate); `refund` as for a skip."""

    event_type: ClassVar[str] = "request.removed"
    refund: bool


class _ChallengePayload(Payload):
    topic: ClassVar[str] = "interactive"
    challenge_id: str
    title: str
    target_minor: int
    raised_minor: int
    currency: Currency


class ChallengeCreated(_ChallengePayload):
    event_type: ClassVar[str] = "challenge.created"


class ChallengeProgress(_ChallengePayload):
    """A tagged donation settled (or was reversed): `raised_minor` is the new total."""

    event_type: ClassVar[str] = "challenge.progress"
    donation_id: str
    delta_minor: int


class ChallengeCompleted(_ChallengePayload):
    """`raised_minor` reached `target_minor` for the first time."""

    event_type: ClassVar[str] = "challenge.completed"
    donation_id: str


class MomentMarked(Payload):
    """A donor's highlighted stream moment: `offset_ms` into broadcast `broadcast_id` when they asked."""

    event_type: ClassVar[str] = "moment.marked"
    topic: ClassVar[str] = "interactive"
    moment_id: str
    broadcast_id: str
    donation_id: str
    offset_ms: int
    label: str = ""


INTERACTIVE_PAYLOADS: tuple[type[Payload], ...] = (
    BoostPinned,
    RequestSubmitted,
    RequestPlayed,
    RequestSkipped,
    RequestRemoved,
    ChallengeCreated,
    ChallengeProgress,
    ChallengeCompleted,
    MomentMarked,
    BoostRefunded,
    BoostChargedBack,
    RequestRefunded,
    RequestChargedBack,
)

_DONATION_PAYLOADS: tuple[type[Payload], ...] = (
    DonationCreated,
    DonationProcessed,
    DonationFailed,
    DonationRefunded,
    DonationChargedBack,
    DonationHeld,
    ChargebackReceived,
)
PAYLOADS: dict[str, type[Payload]] = {
    cls.event_type: cls
    for cls in (
        *_DONATION_PAYLOADS,
        *CHAT_PAYLOADS,
        *MONEY_PAYLOADS,
        *FINANCE_PAYLOADS,
        *STREAM_PAYLOADS,
        *INTERACTIVE_PAYLOADS,
    )
}
TOPICS: tuple[str, ...] = tuple(sorted({cls.topic for cls in PAYLOADS.values()}))


class Envelope(BaseModel):
    """What every topic carries. `event_id` is a UUIDv7 made where the event happened."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str = Field(default_factory=new_id)
    event_type: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    channel_id: str
    user_id: str | None = None
    node_id: str
    schema_version: int = SCHEMA_VERSION
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone")
        return value.astimezone(UTC)

    @field_validator("event_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PAYLOADS:
            raise ValueError(f"unknown event type {value!r}")
        return value

    @classmethod
    def wrap(
        cls, payload: Payload, *, channel_id: str, node_id: str, user_id: str | None = None, **kw: Any
    ) -> Envelope:
        return cls(
            event_type=payload.event_type,
            channel_id=channel_id,
            user_id=user_id,
            node_id=node_id,
            payload=payload.model_dump(mode="json"),
            **kw,
        )

    @property
    def topic(self) -> str:
        return PAYLOADS[self.event_type].topic

    def typed_payload(self) -> Payload:
        return PAYLOADS[self.event_type].model_validate(self.payload)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse and validate envelope and payload; raises ValueError on anything malformed."""
        env = cls.model_validate_json(raw)
        env.typed_payload()
        return env


# ---- Arrow mapping: one typed schema per topic -------------------------------------------------

_TS = pa.timestamp("us", tz="UTC")
ENVELOPE_FIELDS: list[pa.Field] = [
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("occurred_at", _TS, nullable=False),
    pa.field("channel_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string()),
    pa.field("node_id", pa.string(), nullable=False),
    pa.field("schema_version", pa.int32(), nullable=False),
]
KAFKA_FIELDS: list[pa.Field] = [
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
]


def _arrow_type(annotation: Any) -> pa.DataType:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if annotation is bool:
        return pa.bool_()
    if annotation is int:
        return pa.int64()
    if annotation is datetime:
        return _TS
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, str)):
        return pa.string()
    raise TypeError(f"no Arrow type for {annotation!r}")


def payload_fields(topic: str) -> list[pa.Field]:
    """Union of the payload fields of the topic's event types, all nullable, in a stable order."""
    seen: dict[str, pa.DataType] = {}
    for cls in PAYLOADS.values():
        if cls.topic != topic:
            continue
        for name, info in cls.model_fields.items():
            typ = _arrow_type(info.annotation)
            if seen.setdefault(name, typ) != typ:
                raise TypeError(f"{topic}.{name} has two types")
    return [pa.field(name, seen[name]) for name in sorted(seen)]


def arrow_schema(topic: str) -> pa.Schema:
    return pa.schema(ENVELOPE_FIELDS + payload_fields(topic) + KAFKA_FIELDS)


def to_row(env: Envelope, partition: int, offset: int) -> dict[str, Any]:
    """Flatten an envelope into one lake row (payload fields become columns)."""
    row: dict[str, Any] = env.model_dump(exclude={"payload"})
    row.update(env.typed_payload().model_dump())
    row["kafka_partition"] = partition
    row["kafka_offset"] = offset
    return row


def envelope_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `to_row` for tests and tools: the JSON-able envelope a lake row came from."""
    cls = PAYLOADS[row["event_type"]]
    env = {f.name: row[f.name] for f in ENVELOPE_FIELDS}
    env["payload"] = cls.model_validate({k: row[k] for k in cls.model_fields}).model_dump(mode="json")
    result: dict[str, Any] = json.loads(Envelope.model_validate(env).model_dump_json())
    return result
