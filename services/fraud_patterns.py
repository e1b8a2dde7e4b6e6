"""Synthetic donation traffic with known fraud in it, so the fraud model has labels to learn from.

Real chargebacks are rare and arrive weeks late; the demo's sandbox tokens charge back at random, which
teaches a model nothing. This module draws two populations, seeded and pure (no network, no clock):

- **Regular donors** (`background_events`): each keeps one account (a `user_id`, or anonymous), one or
  two cards, one device and a home IP or two, and donates the demo's log-normal amounts over the period,
  mostly in the (Moscow) evening;
  a few of their donations are refunded, and a few charged back ("friendly fraud": label noise that no
  model can explain, as in real data).
- **Fraud rings** (`fraud_ring_events`), three patterns seen at payment providers:
  card testing (one IP and device trying many stolen cards with tiny round amounts within minutes),
  many cards on one device (medium amounts from fresh accounts over an hour or two), and new accounts
  that give large amounts within their first hour; most episodes start at night. Most of a ring's
  donations are charged back one to twenty days later.

Every donation is a `donation.processed` envelope carrying the edge's fingerprints (`ip_hash`,
`card_hash`, `device_hash`, keyed HMACs as the node stamps them); a reversal is a `donation.refunded` or
`donation.charged_back` envelope at the later time. The label of a donation is "was it charged back",
read back from the events themselves, so tests and benchmarks need no side channel. Event ids are UUIDv7
built from the event time and the seeded generator, so the same seed gives the same events, byte for
byte, and they still sort by time. `docs/contracts.md` ("Fraud patterns") documents the signatures that
the 10-million-event generator imports.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.demo import CURRENCY_WEIGHTS, DONOR_NAMES, MESSAGES, RUB_MEDIAN_MINOR
from services.events import DonationChargedBack, DonationProcessed, DonationRefunded, Envelope, Payload
from services.fx import FxTable
from services.money import Currency, round_half_up

#: Key of the generator's fingerprints: synthetic data never sees the node's EFIR_FINGERPRINT_SECRET.
GENERATOR_KEY = b"efir-fraud-patterns"
NODE_ID = "node-synthetic"

#: Share of a regular donor's donations that are refunded / charged back (friendly fraud, label noise).
REGULAR_REFUND_SHARE = 0.02
REGULAR_CHARGEBACK_SHARE = 0.004
#: Share of a ring's donations that the card owners dispute.
RING_CHARGEBACK_SHARE = {"card_testing": 0.7, "many_cards_device": 0.75, "new_account_large": 0.8}
PATTERNS: tuple[str, ...] = tuple(RING_CHARGEBACK_SHARE)
#: How busy each Moscow hour (UTC+3) is for regular donors, relative to the evening peak.
HOURLY_ACTIVITY = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.6,
    0.6, 0.6, 0.7, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 0.8, 0.5,
)  # fmt: skip
#: Share of fraud episodes that start at night (00-06 Moscow), when fewer people watch the cards.
RING_NIGHT_SHARE = 0.6
MOSCOW_OFFSET = timedelta(hours=3)


def fingerprint(kind: str, value: str) -> str:
    """A keyed fingerprint like the edge's (hex HMAC-SHA256): stable per value, not reversible."""
    return hmac.new(GENERATOR_KEY, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def event_id(rng: random.Random, at: datetime) -> str:
    """A UUIDv7 of `at` with seeded random bits: reproducible, and time-sortable like the node's ids."""
    ms = int(at.timestamp() * 1000)
    rand = rng.getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | (rand & ((1 << 62) - 1))))


@dataclass(frozen=True)
class Identity:
    """What the edge sees of one payer: account (None = anonymous), display name, card, device, IP."""

    user_id: str | None
    donor_name: str | None
    card: str
    device: str | None
    ip: str


class _Drawer:
    """Seeded draws shared by both populations (ids, amounts, envelopes)."""

    def __init__(self, rng: random.Random, node_id: str, fx: FxTable | None) -> None:
        self.rng = rng
        self.node_id = node_id
        self.fx = fx if fx is not None else FxTable.load()

    def token(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"

    def ip(self) -> str:
        r = self.rng
        return f"{r.randint(2, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def regular_amount(self, currency: Currency, at: datetime) -> int:
        """The demo's log-normal rouble draw (median 450 ₽), in `currency`, mostly whole units."""
        draw = self.rng.lognormvariate(math.log(RUB_MEDIAN_MINOR), 1.0)
        value = Decimal(draw) / self.fx.rate(currency, at.date())
        minor = round_half_up(value / 100) * 100 if self.rng.random() < 0.9 else round_half_up(value)
        return min(max(minor, 1_000), 5_000_000)

    def donation(
        self, who: Identity, channel: str, at: datetime, amount_minor: int, currency: Currency
    ) -> Envelope:
        payload = DonationProcessed(
            donation_id=event_id(self.rng, at),
            payment_id=self.token("pay"),
            amount_minor=amount_minor,
            currency=currency,
            donor_name=who.donor_name,
            message=self.rng.choice(MESSAGES),
            settled_at=at,
            ip_hash=fingerprint("ip", who.ip),
            card_hash=fingerprint("card", who.card),
            device_hash=fingerprint("device", who.device) if who.device else None,
        )
        return self._wrap(payload, channel, who.user_id, at)

    def reversal(self, original: Envelope, at: datetime, *, chargeback: bool) -> Envelope:
        p = original.payload
        cls = DonationChargedBack if chargeback else DonationRefunded
        payload = cls(
            donation_id=p["donation_id"],
            payment_id=p["payment_id"],
            amount_minor=p["amount_minor"],
            currency=Currency(p["currency"]),
            settled_at=datetime.fromisoformat(p["settled_at"]),
            reason="disputed by the card holder" if chargeback else "refunded on request",
        )
        return self._wrap(payload, original.channel_id, original.user_id, at)

    def _wrap(self, payload: Payload, channel: str, user_id: str | None, at: datetime) -> Envelope:
        return Envelope.wrap(
            payload,
            channel_id=channel,
            node_id=self.node_id,
            user_id=user_id,
            occurred_at=at,
            event_id=event_id(self.rng, at),
        )

    def moment(self, start: datetime, end: datetime) -> datetime:
        """A uniform instant in [start, end), whole milliseconds (what Parquet and UUIDv7 keep)."""
        span_ms = int((end - start).total_seconds() * 1000)
        return start + timedelta(milliseconds=self.rng.randrange(max(span_ms, 1)))

    def busy_moment(self, start: datetime, end: datetime) -> datetime:
        """An instant in [start, end) drawn with the regular donors' daily rhythm (evenings busiest)."""
        while True:
            at = self.moment(start, end)
            if self.rng.random() < HOURLY_ACTIVITY[(at + MOSCOW_OFFSET).hour]:
                return at

    def ring_moment(self, start: datetime, end: datetime) -> datetime:
        """When a fraud episode starts: mostly at night (Moscow), otherwise any time."""
        night = self.rng.random() < RING_NIGHT_SHARE
        for _ in range(1000):  # a window without a night hour falls back to any time
            at = self.moment(start, end)
            if not night or (at + MOSCOW_OFFSET).hour < 6:
                return at
        return at


def background_events(
    rng: random.Random,
    channels: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    donations: int,
    donors: int,
    node_id: str = NODE_ID,
    fx: FxTable | None = None,
) -> list[Envelope]:
    """`donations` donations by `donors` regular donors in [start, end), with their later refunds and
    chargebacks, sorted by time. Channels are weighted 1, 1/2, 1/3, ... like the demo's."""
    if not channels or donations < 0 or donors < 1 or end <= start:
        raise ValueError("need channels, donations >= 0, donors >= 1 and start < end")
    d = _Drawer(rng, node_id, fx)
    weights = [1 / (i + 1) for i in range(len(channels))]
    people: list[tuple[Identity, ...]] = []
    for _ in range(donors):
        anonymous = rng.random() < 0.25
        user = None if anonymous else d.token("user")
        name = None if anonymous else rng.choice(DONOR_NAMES)
        device = d.token("dev") if rng.random() < 0.9 else None
        ips = [d.ip() for _ in range(rng.choice((1, 1, 1, 2)))]
        cards = [d.token("card") for _ in range(rng.choice((1, 1, 1, 1, 2)))]
        people.append(tuple(Identity(user, name, card, device, ip) for card in cards for ip in ips))
    # Donors are not equally generous: a Zipf-like weight gives regulars and one-off donors.
    activity = [1 / (i + 1) ** 0.8 for i in range(donors)]
    events: list[Envelope] = []
    currencies, currency_weights = list(CURRENCY_WEIGHTS), list(CURRENCY_WEIGHTS.values())
    for _ in range(donations):
        who = rng.choice(rng.choices(people, weights=activity)[0])
        at = d.busy_moment(start, end)
        currency = rng.choices(currencies, weights=currency_weights)[0]
        channel = rng.choices(list(channels), weights=weights)[0]
        original = d.donation(who, channel, at, d.regular_amount(currency, at), currency)
        events.append(original)
        fate = rng.random()
        if fate < REGULAR_CHARGEBACK_SHARE:
            events.append(d.reversal(original, at + timedelta(days=rng.uniform(1, 30)), chargeback=True))
        elif fate < REGULAR_CHARGEBACK_SHARE + REGULAR_REFUND_SHARE:
            events.append(d.reversal(original, at + timedelta(hours=rng.uniform(1, 72)), chargeback=False))
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def _disputes(d: _Drawer, originals: list[Envelope], share: float) -> list[Envelope]:
    return [
        d.reversal(o, o.occurred_at + timedelta(days=d.rng.uniform(1, 20)), chargeback=True)
        for o in originals
        if d.rng.random() < share
    ]


def card_testing_burst(d: _Drawer, channel: str, at: datetime) -> list[Envelope]:
    """One IP and device trying 6-20 stolen cards, 1-3 tiny round payments each, within ~15 minutes."""
    ip, device = d.ip(), d.token("dev")
    originals: list[Envelope] = []
    t = at
    for _ in range(d.rng.randint(6, 20)):
        who = Identity(None, None, d.token("card"), device, ip)
        for _ in range(d.rng.randint(1, 3)):
            t += timedelta(seconds=d.rng.uniform(5, 60))
            amount = d.rng.choice((1_000, 1_000, 1_500, 2_000, 5_000))
            originals.append(d.donation(who, channel, t, amount, Currency.RUB))
    return originals + _disputes(d, originals, RING_CHARGEBACK_SHARE["card_testing"])


def many_cards_device(d: _Drawer, channel: str, at: datetime) -> list[Envelope]:
    """One device cycling 4-8 cards on fresh accounts, medium amounts (1,000-5,000 ₽) over 1-3 hours."""
    device = d.token("dev")
    ips = [d.ip() for _ in range(d.rng.randint(1, 3))]
    originals: list[Envelope] = []
    span = timedelta(hours=d.rng.uniform(1, 3))
    for _ in range(d.rng.randint(4, 8)):
        who = Identity(d.token("user"), d.rng.choice(DONOR_NAMES), d.token("card"), device, d.rng.choice(ips))
        for _ in range(d.rng.randint(1, 2)):
            amount = d.rng.randrange(1_000, 5_001, 100) * 100
            originals.append(d.donation(who, channel, d.moment(at, at + span), amount, Currency.RUB))
    return originals + _disputes(d, originals, RING_CHARGEBACK_SHARE["many_cards_device"])


def new_account_large(d: _Drawer, channel: str, at: datetime) -> list[Envelope]:
    """A brand-new account giving 1-3 large amounts (10,000-50,000 ₽) within its first hour."""
    who = Identity(d.token("user"), d.rng.choice(DONOR_NAMES), d.token("card"), d.token("dev"), d.ip())
    originals = [
        d.donation(
            who,
            channel,
            d.moment(at, at + timedelta(hours=1)),
            d.rng.randrange(100, 501, 10) * 10_000,
            Currency.RUB,
        )
        for _ in range(d.rng.randint(1, 3))
    ]
    return originals + _disputes(d, originals, RING_CHARGEBACK_SHARE["new_account_large"])


_PATTERN_FUNCS = {
    "card_testing": card_testing_burst,
    "many_cards_device": many_cards_device,
    "new_account_large": new_account_large,
}


def fraud_ring_events(
    rng: random.Random,
    channels: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    rings: int,
    patterns: Sequence[str] = PATTERNS,
    node_id: str = NODE_ID,
    fx: FxTable | None = None,
) -> list[Envelope]:
    """`rings` fraud episodes in [start, end) (each one of `patterns`, drawn in turn at random times and
    channels), with their chargebacks (which may fall after `end`), sorted by time."""
    if not channels or rings < 0 or end <= start:
        raise ValueError("need channels, rings >= 0 and start < end")
    unknown = set(patterns) - set(_PATTERN_FUNCS)
    if unknown or not patterns:
        raise ValueError(f"unknown fraud patterns {sorted(unknown)}; known: {list(_PATTERN_FUNCS)}")
    d = _Drawer(rng, node_id, fx)
    events: list[Envelope] = []
    for i in range(rings):
        pattern = patterns[i % len(patterns)]
        events.extend(_PATTERN_FUNCS[pattern](d, rng.choice(list(channels)), d.ring_moment(start, end)))
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def labelled_donations(
    seed: int,
    channels: Sequence[str],
    start: datetime,
    days: int,
    *,
    donations: int,
    rings: int,
    donors: int | None = None,
    node_id: str = NODE_ID,
) -> list[Envelope]:
    """Regular traffic and fraud rings together over `days` days from `start`, sorted by time: what the
    fraud tests, the evaluation and the notebook land in a lake. Same seed, same events."""
    rng = random.Random(seed)
    fx = FxTable.load()
    end = start + timedelta(days=days)
    regular = background_events(
        rng,
        channels,
        start,
        end,
        donations=donations,
        donors=donors or max(1, donations // 4),
        node_id=node_id,
        fx=fx,
    )
    ring = fraud_ring_events(rng, channels, start, end, rings=rings, node_id=node_id, fx=fx)
    return sorted(regular + ring, key=lambda e: (e.occurred_at, e.event_id))


def charged_back_ids(events: Sequence[Envelope]) -> set[str]:
    """The donation ids that a `donation.charged_back` event reverses: the labels."""
    return {e.payload["donation_id"] for e in events if e.event_type == DonationChargedBack.event_type}
