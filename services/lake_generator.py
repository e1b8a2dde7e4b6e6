"""A synthetic lake at any size (10 million events by default), written exactly as the lander writes it.

Why: the assets, dashboards and notebooks must be measured and exercised on realistic volume without
running the node for weeks. The generator draws whole days of platform life, vectorised with NumPy and
PyArrow (no per-event pydantic), and lands them with the lander's layout (`services.lake`): one Parquet
file per topic, Kafka partition (key = channel_id) and event date, consecutive offsets, and a manifest
per file as the commit point. Rows follow `services.events.arrow_schema`, so every row is a valid event.

The model (seeded, deterministic):
* channels with Zipf popularity; each live channel broadcasts once a day (start 10-21 UTC, ~3 h);
* signed-in viewers join over time and come back with a personal engagement that decays with age
  (so cohorts and retention curves look real); channels belong to genres and each viewer has three
  favourite channels, mostly in one genre (co-watching structure for recommendations), plus anonymous
  sessions; view heartbeats every 30 s of a session, as the node emits them;
* farming that the loyalty rules must reject: bot/headless agents, idle tabs, IP farms;
* chat messages from signed-in sessions (visible, held, hidden);
* donations with the demo's distributions (`services.demo`: log-normal amounts around 450 RUB,
  currencies, anonymous share, 3% failed / refunded / charged back), held donations, the edge's
  fingerprints (ip, card, device hashes), and the fraud rings of `services.fraud_patterns` (card
  testing, many cards on one device, new accounts giving large sums; 70-80% charged back later);
* subscriptions (created, gifted, renewal notices, renewals, cancellations, expiries) and virtual gifts
  from the catalogue;
* interactive donations (topic `interactive`, ~0.5% of events, half boosts, half requests): boosts
  (`boost.pinned`) and requests (`request.submitted`, then played, skipped or removed), settled when
  emitted; 2% refunded (a skip or removal with a refund too) and 0.8% charged back weeks later, each
  reversal carrying its credit's charge, amount and `settled_at`, as `interactive_payments` values them;
* sponsored content (topic `sponsorships`): about three paid integrations per channel a month (popular
  channels more), 20,000-300,000 RUB in whole thousands, 4% refunded days later at the same settlement;
* the stream lifecycle (started, ladder changed, ended or errored, recording ready), each stream event
  naming the game then played: the channel's fixed main game (`services.games.main_games`: mostly a
  game of its genre, with the catalogue's skew), so viewers' favourite genres make them prefer games,
  except that about 12% of broadcasts switch part-way to another catalogue game (`stream.game_changed`; the
  events after it carry the new game), as `game_analytics_daily` splits live minutes by game.

Proportions are shares of the requested event count; chat takes the remainder (drawn inside the
window, so it always lands), so exactly `events` rows land when every share fits. Events falling after
the last day (late chargebacks) are dropped, as a lake cut at that moment would not have them yet. The
ground truth of the fraud patterns is written to `LAKE/_generator/fraud_truth.parquet` (outside every
topic glob), for evaluating fraud scores.
"""

from __future__ import annotations

import math
import os
import random
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.demo import (
    AMOUNT_SIGMA,
    ANONYMOUS_SHARE,
    CURRENCY_WEIGHTS,
    DONOR_NAMES,
    MESSAGES,
    RUB_MEDIAN_MINOR,
    TOKEN_WEIGHTS,
    WHOLE_UNITS_SHARE,
    demo_channels,
)
from services.events import (
    PAYLOADS,
    BoostChargedBack,
    BoostPinned,
    BoostRefunded,
    ChargebackReceived,
    ChatMessagePosted,
    DonationChargedBack,
    DonationCreated,
    DonationFailed,
    DonationHeld,
    DonationProcessed,
    DonationRefunded,
    GiftSent,
    RecordingReady,
    RequestChargedBack,
    RequestPlayed,
    RequestRefunded,
    RequestRemoved,
    RequestSkipped,
    RequestSubmitted,
    SponsorshipPaid,
    SponsorshipRefunded,
    StreamEnded,
    StreamErrored,
    StreamGameChanged,
    StreamLadderChanged,
    StreamStarted,
    SubscriptionCancelled,
    SubscriptionCreated,
    SubscriptionExpired,
    SubscriptionGifted,
    SubscriptionRenewalNotice,
    SubscriptionRenewed,
    ViewHeartbeat,
    arrow_schema,
    to_row,
)
from services.fraud_patterns import PATTERNS, charged_back_ids, fraud_ring_events
from services.fx import FxTable
from services.games import catalogue as game_catalogue
from services.games import main_games
from services.gifts import catalogue
from services.lake import Manifest, epoch_of, file_name, partition_dir, tmp_path
from services.money import Currency
from services.subscriptions import TIER_PRICE_MINOR, Tier

# NumPy's stubs cannot follow dtypes through fancy indexing; the aliases document what each array holds.
Arr = npt.NDArray[Any]
I64 = Arr
F64 = Arr

US = 1_000_000  # microseconds per second
DAY_US = 86_400 * US
HEARTBEAT_S = 30  # services.settings view_heartbeat_seconds default
SEGMENT_S = 4
GENERATOR_DIR = "_generator"
FRAUD_TRUTH_FILE = "fraud_truth.parquet"
NODE_ID = "node-gen"
_TS = pa.timestamp("us", tz="UTC")

#: Target shares of all events per topic; chat takes what is left (about 0.22), streams are a few per
#: channel-day. Views dominate as on every streaming platform (one heartbeat per viewer per 30 s).
SHARES: dict[str, float] = {
    "views": 0.70,
    "donations": 0.045,
    "gifts": 0.015,
    "subscriptions": 0.008,
    "interactive": 0.005,  # boosts and requests, half the events each
}
DONATION_EVENTS_PER_ATTEMPT = 2.05  # created + processed/failed, a few reversals and holds
SUBSCRIPTION_EVENTS_PER_NEW = 2.0  # created, then a notice and a renewal, or an expiry
HELD_SHARE = 0.01
ANONYMOUS_SESSIONS = 0.3
GENRES = 6
RENDITIONS = ("1080p", "720p", "480p", "360p")
RENDITION_WEIGHTS = (0.3, 0.4, 0.2, 0.1)
SEGMENT_BYTES = (3_000_000, 1_500_000, 600_000, 250_000)
AGENTS = ("browser", "mobile", "tv", "player", "other")
AGENT_WEIGHTS = (0.55, 0.32, 0.08, 0.03, 0.02)
REGIONS = ("RU", "KZ", "BY", "UZ", "DE", "US", "")  # "" -> no region header
REGION_WEIGHTS = (0.7, 0.07, 0.05, 0.04, 0.03, 0.03, 0.08)
CHAT_TEXTS = ("привет", "gg", "ахаха", "лол", "Pog", "го ещё катку", "hi chat", "nice", "F", "когда стрим?")
TIER_WEIGHTS: dict[Tier, float] = {Tier.SUPPORTER: 0.75, Tier.VIP: 0.2, Tier.CHAMPION: 0.05}
# Games: a broadcast sometimes switches from the channel's main game to another (`stream.game_changed`).
GAME_SWITCH_SHARE = 0.12
# Interactive donations: a boost is one event (a few reversed); a request is submitted, then played,
# skipped or removed (a skip or removal refunded sometimes), so about two events.
BOOST_EVENTS_PER_PAYMENT = 1.03
REQUEST_EVENTS_PER_PAYMENT = 2.05
BOOST_RUB_MEDIAN_MINOR = 20_000
REQUEST_RUB_MEDIAN_MINOR = 30_000
INTERACTIVE_SIGMA = 0.7
INTERACTIVE_REFUND_SHARE = 0.02
INTERACTIVE_CHARGEBACK_SHARE = 0.008
REQUEST_ENDINGS = ("played", "skipped", "removed")
REQUEST_ENDING_WEIGHTS = (0.85, 0.1, 0.05)
REQUEST_REFUND_ON_SKIP = 0.3
REQUEST_TITLES = (
    "Кино — Группа крови",
    "Daft Punk — Get Lucky",
    "Король и Шут — Лесник",
    "Rick Astley — Never Gonna Give You Up",
    "Сыграй катку на снайпере",
    "Пройди уровень без урона",
    "Linkin Park — Numb",
    "Земфира — Хочешь?",
)
BOOST_MESSAGES = ("Привет из Казани!", "GG WP", "Лучший стрим", "С днём рождения, чат!", "Pog", "Го дальше")
BOOST_PIN_SECONDS = 120  # services.settings boost_pin_seconds default
# Sponsored content: a few paid integrations per channel a month (busier for popular channels), large.
SPONSORSHIPS_PER_CHANNEL_DAY = 0.1
SPONSORSHIP_RUB_MIN, SPONSORSHIP_RUB_MAX = 20_000, 300_000
SPONSORSHIP_REFUND_SHARE = 0.04
SPONSORS = (
    "Тинькофф",
    "Яндекс Маркет",
    "Ozon",
    "HyperX",
    "Logitech G",
    "Пятёрочка",
    "VK Play",
    "Wildberries",
)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate: `events` rows over `days` days from `start` (a Monday by default)."""

    events: int = 10_000_000
    days: int = 35
    start: date = date(2026, 10, 5)
    seed: int = 20261128
    kafka_partitions: int = 3
    compression: str = "zstd"
    channels: int | None = None  # None: grows with the square root of `events`

    def channel_count(self) -> int:
        return self.channels or max(6, round(math.sqrt(self.events) / 15))


@dataclass
class GeneratorReport:
    """What landed: rows per topic and event type, files, manifests, bytes, seconds."""

    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    event_types: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    files: int = 0
    manifests: int = 0
    bytes: int = 0
    dropped_after_window: int = 0
    seconds: float = 0.0
    fraud_donations: dict[str, int] = field(default_factory=dict)
    users: int = 0
    channels: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _hex_table() -> npt.NDArray[np.bytes_]:
    return np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


_HEX = _hex_table()
_UUID_HEX_POS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def uuid7_strings(micros: I64, rng: np.random.Generator) -> Arr:
    """UUIDv7 strings (RFC 9562 layout: 48-bit Unix milliseconds, version 7, variant 10, random rest)."""
    n = len(micros)
    raw = np.empty((n, 16), dtype=np.uint8)
    ms = (micros // 1000).astype(np.uint64)
    for i in range(6):
        raw[:, i] = ((ms >> np.uint64(8 * (5 - i))) & np.uint64(0xFF)).astype(np.uint8)
    raw[:, 6:] = rng.integers(0, 256, size=(n, 10), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = _HEX[raw].view("S1").reshape(n, 32)
    out = np.full((n, 36), b"-", dtype="S1")
    out[:, _UUID_HEX_POS] = digits
    return out.view("S36").ravel().astype("U36")


def _hash_strings(values: I64, salt: int) -> Arr:
    """Stable 16-hex-digit stand-ins for the node's keyed hashes (of an IP, card or device number)."""
    mixed = (values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)) & np.uint64(
        0xFFFFFFFFFFFFFFFF
    )
    mixed ^= mixed >> np.uint64(29)
    return np.char.mod("%016x", mixed.astype(np.uint64))


def _choice(rng: np.random.Generator, options: tuple[str, ...], weights: tuple[float, ...], n: int) -> Arr:
    p = np.asarray(weights, dtype=np.float64)
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p / p.sum())]


def _concat(parts: list[pa.Table]) -> pa.Table:
    """Tables of one topic with different payload columns: missing columns become nulls."""
    full = [p for p in parts if p.num_rows]
    return pa.concat_tables(full, promote_options="default") if full else pa.table({})


def _with_defaults(column: Any, f: pa.Field, kinds: dict[str, Any]) -> Any:
    """Nulls where an event type's payload has a default become that default, as pydantic would dump
    it; so fields added to a payload later (with a default) land right without touching this module."""
    for event_type, mask in kinds.items():
        info = PAYLOADS[event_type].model_fields.get(f.name)
        if info is None or info.is_required():
            continue
        default = info.default.value if isinstance(info.default, Enum) else info.default
        if default is None or not isinstance(default, (str, int, bool)):
            continue
        column = pc.if_else(pc.and_(mask, pc.is_null(column)), pa.scalar(default, f.type), column)
    return column


def _where(mask: Arr, values: Any, other: Any = None) -> Arr:
    """`values` where `mask`, else `other` (None by default: a null in the lake), as an object array."""
    out = np.full(len(mask), other, dtype=object)
    picked = np.broadcast_to(np.asarray(values, dtype=object), (len(mask),))
    out[mask] = picked[mask]
    return out


def _day_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * US


@dataclass
class _Sessions:
    """One day's viewing sessions (signed-in, anonymous and farming ones), as parallel arrays."""

    channel: I64
    user: Arr  # object: user id or None
    user_idx: I64  # -1 for anonymous and farm accounts
    start: I64
    end: I64
    agent: Arr
    idle: npt.NDArray[np.bool_]
    ip: Arr

    def take(self, which: I64) -> _Sessions:
        return _Sessions(
            self.channel[which],
            self.user[which],
            self.user_idx[which],
            self.start[which],
            self.end[which],
            self.agent[which],
            self.idle[which],
            self.ip[which],
        )

    def beats(self) -> I64:
        """Heartbeats each session emits: one per started 30 s."""
        result: Arr = np.maximum(1, -(-(self.end - self.start) // (HEARTBEAT_S * US)))
        return result


class LakeGenerator:
    """Draws the days in order and lands each one as the lander would (see the module docstring)."""

    def __init__(
        self, config: GeneratorConfig, lake: Path, *, echo: Callable[[str], None] | None = None
    ) -> None:
        if config.events < 1000:
            raise ValueError("generate at least 1,000 events")
        if config.days < 1:
            raise ValueError("generate at least one day")
        if config.kafka_partitions < 1:
            raise ValueError("need at least one Kafka partition")
        self.config, self.lake, self.echo = config, lake, echo or (lambda _: None)
        self.rng = np.random.default_rng(config.seed)
        self.cluster_id = f"lake-generator-{config.seed}"
        self.epoch = epoch_of(self.cluster_id)
        self.channels = [c.channel_id for c in demo_channels(config.channel_count())]
        ranks = np.arange(1, len(self.channels) + 1, dtype=np.float64)
        self.popularity: F64 = 1 / ranks**0.9
        self.channel_part = np.array(
            [zlib.crc32(c.encode()) % config.kafka_partitions for c in self.channels], dtype=np.int32
        )
        # Each channel's fixed main game, mostly its genre's (genre = index mod GENRES, as in
        # `_favourites`); drawn from its own random stream, so every other draw stays as it was.
        self.channel_game = np.array(
            main_games([i % GENRES for i in range(len(self.channels))], GENRES, seed=config.seed),
            dtype=object,
        )
        games = game_catalogue()
        self.game_slugs = np.array([g.slug for g in games], dtype=object)
        self.game_weights: F64 = np.array([g.weight for g in games], dtype=np.float64)
        self.game_weights /= self.game_weights.sum()
        self.window_end_us = _day_us(config.start + timedelta(days=config.days))
        # Viewers: join day, engagement (how often they return), three favourite channels.
        self.join_day: I64 = np.empty(0, dtype=np.int64)
        self.engagement: F64 = np.empty(0, dtype=np.float64)
        self.favourites: I64 = np.empty((0, 3), dtype=np.int64)
        self.pending: dict[str, list[pa.Table]] = defaultdict(list)
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.truth: list[pa.Table] = []
        self.report = GeneratorReport(channels=len(self.channels))
        self.fx = FxTable.load()
        self.gifts = list(catalogue().values())
        self.in_window = 0  # rows drawn so far that fall inside the window (landed or still pending)

    # ---- the plan: how many events each day and topic gets --------------------------------------

    def day_targets(self) -> I64:
        """Events per day: slow growth, busier weekends; the rounding remainder goes to the last day."""
        d = np.arange(self.config.days)
        weekday = np.array([(self.config.start + timedelta(days=int(i))).weekday() for i in d])
        weights = (1 + 0.015 * d) * np.where(weekday >= 5, 1.25, 1.0)
        targets = np.floor(self.config.events * weights / weights.sum()).astype(np.int64)
        targets[-1] += self.config.events - int(targets.sum())
        result: Arr = targets
        return result

    def run(self) -> GeneratorReport:
        started = time.monotonic()
        cumulative = 0
        for index, target in enumerate(self.day_targets()):
            day = self.config.start + timedelta(days=index)
            cumulative += int(target)
            self._draw_day(index, day, int(target), cumulative)
            written = self._flush(day)
            self.echo(
                f"{day}: {written:>9,} rows landed, {self.report.total:>11,} / {self.config.events:,} "
                f"total, {time.monotonic() - started:6.1f} s"
            )
        self.report.dropped_after_window = sum(t.num_rows for ts in self.pending.values() for t in ts)
        self.pending.clear()
        self._write_truth()
        self.report.users = len(self.join_day)
        self.report.seconds = time.monotonic() - started
        return self.report

    # ---- one day ---------------------------------------------------------------------------------

    def _draw_day(self, index: int, day: date, target: int, cumulative: int) -> None:
        day0 = _day_us(day)
        live, b_start, b_end = self._broadcasts(day0)
        self._add("streams", self._stream_events(live, b_start, b_end))
        sessions = self._sessions(index, int(target * SHARES["views"]), live, b_start, b_end)
        self._add("views", self._heartbeats(sessions))
        signed = np.flatnonzero((sessions.user_idx >= 0) & ~sessions.idle)
        self._add("donations", self._donations(day0, sessions, signed, target))
        self._add("subscriptions", self._subscriptions(sessions, signed, target))
        self._add("gifts", self._gifts(sessions, signed, target))
        self._add("interactive", self._interactive(day0, sessions, signed, target))
        self._add("sponsorships", self._sponsorships(day0))
        # Chat takes the remainder (its messages are drawn inside the window, so they all land); draw
        # again should a draw come up short (no signed-in session today).
        for _ in range(5):
            if self.in_window >= cumulative:
                break
            self._add("chat", self._chat(sessions, signed, cumulative - self.in_window))

    def _broadcasts(self, day0: int) -> tuple[I64, I64, I64]:
        """Which channels go live today and when: popular channels stream more often."""
        n = len(self.channels)
        p_live = 0.5 + 0.3 * self.popularity / self.popularity.max()
        live = np.flatnonzero(self.rng.random(n) < p_live)
        if len(live) == 0:
            live = np.array([0])
        start = day0 + self.rng.integers(10 * 3600, 21 * 3600, size=len(live)) * US
        hours = np.clip(self.rng.lognormal(math.log(3.0), 0.4, size=len(live)), 0.7, 9.0)
        end = start + (hours * 3600 * US).astype(np.int64)
        return live, start, end

    def _stream_events(self, live: I64, start: I64, end: I64) -> pa.Table:
        n = len(live)
        ids = uuid7_strings(start, self.rng)
        errored = self.rng.random(n) < 0.03
        ladder = np.flatnonzero(self.rng.random(n) < 0.08)
        full = ",".join(RENDITIONS)
        duration_s = (end - start) // US
        segments = duration_s // SEGMENT_S
        # Some broadcasts switch from the main game to another one part-way (a catalogue game, by weight);
        # every stream event after the switch carries the new game.
        main = self.channel_game[live]
        other = self.game_slugs[self.rng.choice(len(self.game_slugs), size=n, p=self.game_weights)]
        switched = (self.rng.random(n) < GAME_SWITCH_SHARE) & (other != main)
        switch_at = start + ((0.2 + 0.6 * self.rng.random(n)) * (end - start)).astype(np.int64)
        ladder_at = (start[ladder] + end[ladder]) // 2
        ladder_game = np.where(
            switched[ladder] & (switch_at[ladder] <= ladder_at), other[ladder], main[ladder]
        )
        parts = [
            self._table(
                StreamStarted.event_type,
                start,
                live,
                None,
                broadcast_id=ids,
                renditions=[full] * n,
                restarts=0,
                game=main,
            ),
            self._table(
                np.where(errored, StreamErrored.event_type, StreamEnded.event_type),
                end,
                live,
                None,
                broadcast_id=ids,
                renditions=[full] * n,
                reason=np.where(errored, "worker kept crashing", ""),
                restarts=np.where(errored, 3, 0),
                duration_seconds=duration_s,
                game=np.where(switched, other, main),
            ),
            self._table(
                StreamGameChanged.event_type,
                switch_at[switched],
                live[switched],
                None,
                broadcast_id=ids[switched],
                renditions=[full] * int(switched.sum()),
                restarts=0,
                game=other[switched],
            ),
            self._table(
                StreamLadderChanged.event_type,
                ladder_at,
                live[ladder],
                None,
                broadcast_id=ids[ladder],
                renditions=[",".join(RENDITIONS[1:])] * len(ladder),
                reason="load",
                restarts=0,
                game=ladder_game,
            ),
            self._table(
                RecordingReady.event_type,
                end + 20 * US,
                live,
                None,
                broadcast_id=ids,
                duration_ms=duration_s * 1000,
                size_bytes=segments * SEGMENT_BYTES[0],
                segments=segments,
                playlist_url=[
                    f"/vod/{self.channels[c]}/{b}/index.m3u8" for c, b in zip(live, ids, strict=True)
                ],
            ),
        ]
        return _concat(parts)

    def _grow_viewers(self, index: int, wanted_active: int) -> npt.NDArray[np.bool_]:
        """Today's active signed-in viewers: returning ones by their decaying engagement, topped up
        with new ones (at least 15% of the day's viewers are new, so every week has a cohort)."""
        age = index - self.join_day
        p = self.engagement * (0.2 + 0.8 * np.exp(-age / 6.0))
        returning = int(p.sum())
        new = max(wanted_active - returning, int(0.15 * wanted_active), 1)
        n_old = len(self.join_day)
        self.join_day = np.concatenate([self.join_day, np.full(new, index, dtype=np.int64)])
        self.engagement = np.concatenate([self.engagement, self.rng.beta(2.0, 2.5, size=new)])
        favs = self._favourites(new)
        self.favourites = np.concatenate([self.favourites, favs])
        active = np.concatenate([self.rng.random(n_old) < p, np.ones(new, dtype=bool)])
        return active

    def _favourites(self, new: int) -> I64:
        """Three favourite channels per new viewer: 80% from the viewer's genre (popularity-weighted
        within it), the rest from anywhere, so channels of a genre are co-watched."""
        genre_of = np.arange(len(self.channels)) % GENRES
        genre = self.rng.integers(0, GENRES, size=new)
        anywhere = self.rng.choice(
            len(self.channels), size=(new, 3), p=self.popularity / self.popularity.sum()
        )
        favs = anywhere.copy()
        for g in range(GENRES):
            members = np.flatnonzero(genre_of == g)
            rows = np.flatnonzero(genre == g)
            if len(members) == 0 or len(rows) == 0:
                continue
            w = self.popularity[members]
            favs[rows] = members[self.rng.choice(len(members), size=(len(rows), 3), p=w / w.sum())]
        in_genre = self.rng.random((new, 3)) < 0.8
        return np.where(in_genre, favs, anywhere).astype(np.int64)

    def _pick_live(self, live: I64, n: int) -> I64:
        weights = self.popularity[live]
        return live[self.rng.choice(len(live), size=n, p=weights / weights.sum())]

    def _sessions(self, index: int, views: int, live: I64, b_start: I64, b_end: I64) -> _Sessions:
        """Sessions enough for about `views` heartbeats (mean ~36 per session, cut at broadcast end)."""
        wanted_sessions = max(2, round(views / 36))
        active = np.flatnonzero(self._grow_viewers(index, max(1, round(wanted_sessions * 0.7 / 1.25))))
        users = np.repeat(active, 1 + self.rng.poisson(0.25, size=len(active)))
        # Co-watching: most sessions go to one of the viewer's favourites when it is live today.
        fav = self.favourites[users, self.rng.choice(3, size=len(users), p=[0.6, 0.3, 0.1])]
        is_live = np.isin(fav, live)
        use_fav = is_live & (self.rng.random(len(users)) < 0.8)
        channel = np.where(use_fav, fav, self._pick_live(live, len(users)))
        n_anon = round(len(users) * ANONYMOUS_SESSIONS / (1 - ANONYMOUS_SESSIONS))
        anon_channel = self._pick_live(live, n_anon)
        # Farms: a handful of accounts on one IP, one channel, for the points (all rejected downstream).
        n_farms = max(1, round(len(users) / 3000))
        farm_size = self.rng.integers(7, 14, size=n_farms)
        farm_channel = np.repeat(self._pick_live(live, n_farms), farm_size)
        all_channel = np.concatenate([channel, anon_channel, farm_channel]).astype(np.int64)
        n_in, n_farm = len(users), len(farm_channel)
        farm_ids = [f"farm-{index}-{f}-{k}" for f, size in enumerate(farm_size) for k in range(size)]
        user_ids = np.concatenate(
            [np.char.mod("u%07d", users).astype(object), np.full(n_anon, None, dtype=object), farm_ids]
        )
        user_idx = np.concatenate([users, np.full(n_anon + n_farm, -1, dtype=np.int64)])
        # Each session sits inside its channel's broadcast.
        slot = np.searchsorted(live, all_channel)
        bs, be = b_start[slot], b_end[slot]
        start = bs + (self.rng.random(len(slot)) * np.maximum(be - bs - 60 * US, 1)).astype(np.int64)
        minutes = np.clip(self.rng.lognormal(math.log(12.0), 1.1, size=len(slot)), 1.0, 600.0)
        end = np.minimum(start + (minutes * 60 * US).astype(np.int64), be)
        agent = np.concatenate(
            [
                _choice(self.rng, AGENTS, AGENT_WEIGHTS, n_in),
                _choice(self.rng, (*AGENTS, "bot", "headless"), (*AGENT_WEIGHTS, 0.04, 0.03), n_anon),
                np.full(n_farm, "mobile", dtype=object),
            ]
        )
        idle = self.rng.random(len(slot)) < 0.02
        ip = np.concatenate(
            [
                _hash_strings(users, 1),
                _hash_strings(self.rng.integers(0, 2**40, size=n_anon), 2),
                np.repeat(_hash_strings(self.rng.integers(0, 2**40, size=n_farms), 3), farm_size),
            ]
        )
        drawn = _Sessions(all_channel, user_ids, user_idx, start, end, agent, idle, ip)
        # Keep a random subset that fits the day's heartbeat budget (farms and anonymous ones included).
        order = self.rng.permutation(len(slot))
        fits = np.cumsum(drawn.beats()[order]) <= max(views, 1)
        fits[0] = True
        return drawn.take(np.sort(order[fits]))

    def _heartbeats(self, s: _Sessions) -> pa.Table:
        """A heartbeat per 30 s of each session, its window the fetches of those 30 s."""
        beats = s.beats()
        idx = np.repeat(np.arange(len(beats)), beats)
        first = np.repeat(np.cumsum(beats) - beats, beats)
        k = np.arange(len(idx)) - first
        w_start = s.start[idx] + k * HEARTBEAT_S * US + self.rng.integers(0, 3 * US, size=len(idx))
        w_end = np.minimum(s.start[idx] + (k + 1) * HEARTBEAT_S * US, s.end[idx])
        w_end = np.maximum(w_end - self.rng.integers(0, 2 * US, size=len(idx)), w_start + US)
        rendition = self.rng.choice(len(RENDITIONS), size=len(s.channel), p=RENDITION_WEIGHTS)[idx]
        segments = np.maximum(1, (w_end - w_start) // (SEGMENT_S * US) + self.rng.integers(0, 2, len(idx)))
        stalled = s.idle[idx] | (self.rng.random(len(idx)) < 0.01)
        segments = np.where(stalled, 0, segments)
        size = np.asarray(SEGMENT_BYTES)[rendition] * (0.8 + 0.4 * self.rng.random(len(idx)))
        session_ids = np.char.add("s", _hash_strings(self.rng.integers(0, 2**62, size=len(s.channel)), 4))
        region = _choice(self.rng, REGIONS, REGION_WEIGHTS, len(s.channel))
        region = _where(region != "", region)
        return self._table(
            ViewHeartbeat.event_type,
            w_end + 5 * US,
            s.channel[idx],
            s.user[idx],
            session_id=session_ids[idx],
            rendition=np.asarray(RENDITIONS, dtype=object)[rendition],
            bytes=(segments * size).astype(np.int64),
            requests=segments + 1,
            segments=segments,
            user_agent_class=s.agent[idx],
            region=region[idx],
            window_start=pa.array(w_start, _TS),
            window_end=pa.array(w_end, _TS),
            ip_hash=s.ip[idx],
        )

    def _in_session(self, s: _Sessions, which: I64, until: int | None = None) -> I64:
        """A moment inside each of the given sessions (and before `until`, when given)."""
        end = s.end[which] if until is None else np.minimum(s.end[which], until)
        span = np.maximum(end - s.start[which], 1)
        result: Arr = s.start[which] + (self.rng.random(len(which)) * span).astype(np.int64)
        return result

    def _chat(self, s: _Sessions, signed: I64, count: int) -> pa.Table:
        """Visible, held and hidden messages from signed-in sessions, chattier in longer sessions."""
        if count == 0 or len(signed) == 0:
            return pa.table({})
        weight = (s.end[signed] - s.start[signed]).astype(np.float64) + 1
        which = signed[self.rng.choice(len(signed), size=count, p=weight / weight.sum())]
        # Inside the window: a message after the last midnight would not land, and chat must fill the count.
        at = self._in_session(s, which, until=self.window_end_us)
        status = _choice(self.rng, ("visible", "held", "hidden"), (0.965, 0.02, 0.015), count)
        rule = _where(status == "hidden", "caps", _where(status == "held", "links"))
        return self._table(
            ChatMessagePosted.event_type,
            at,
            s.channel[which],
            s.user[which],
            message_id=uuid7_strings(at, self.rng),
            display_name=s.user[which],
            text=_choice(self.rng, CHAT_TEXTS, (1.0,) * len(CHAT_TEXTS), count),
            status=status,
            rule=rule,
        )

    # ---- money -----------------------------------------------------------------------------------

    def _amounts(self, rub_minor: F64, currency: Arr, day: date) -> I64:
        """The demo's rule: a rouble draw scaled to the currency, whole units mostly, clamped."""
        rates = {c: float(self.fx.rate(c, day)) for c in Currency}
        rate = np.array([rates[Currency(c)] for c in currency])
        value = rub_minor / rate
        whole = self.rng.random(len(value)) < WHOLE_UNITS_SHARE
        minor = np.where(whole, np.round(value / 100) * 100, np.round(value))
        result: Arr = np.clip(minor, 1_000, 5_000_000).astype(np.int64)
        return result

    def _donations(self, day0: int, s: _Sessions, signed: I64, target: int) -> pa.Table:
        day = datetime.fromtimestamp(day0 / US, UTC).date()
        attempts = max(1, round(target * SHARES["donations"] / DONATION_EVENTS_PER_ATTEMPT))
        # Donors: signed-in viewers mostly (engaged ones give more often), the rest anonymous.
        n_signed = round(attempts * (1 - ANONYMOUS_SHARE)) if len(signed) else 0
        weight = self.engagement[s.user_idx[signed]] ** 2 + 1e-9
        which: Arr = np.empty(0, dtype=np.int64)
        if n_signed:
            which = signed[self.rng.choice(len(signed), size=n_signed, p=weight / weight.sum())]
        n_anon = attempts - n_signed
        anon = self.rng.choice(len(s.channel), size=n_anon)
        rows = np.concatenate([which, anon])
        channel = s.channel[rows]
        user = np.concatenate([s.user[which], np.full(n_anon, None, dtype=object)])
        user_key = np.concatenate([s.user_idx[which], -2 - self.rng.integers(0, 2**40, size=n_anon)])
        at = self._in_session(s, rows)
        currency = _choice(
            self.rng, tuple(c.value for c in CURRENCY_WEIGHTS), tuple(CURRENCY_WEIGHTS.values()), attempts
        )
        rub = self.rng.lognormal(math.log(RUB_MEDIAN_MINOR), AMOUNT_SIGMA, size=attempts)
        amount = self._amounts(rub, currency, day)
        outcome = _choice(self.rng, tuple(TOKEN_WEIGHTS), tuple(TOKEN_WEIGHTS.values()), attempts)
        named = self.rng.random(attempts) >= ANONYMOUS_SHARE
        donor = _where(named, _choice(self.rng, DONOR_NAMES, (1.0,) * len(DONOR_NAMES), attempts))
        message = _choice(self.rng, MESSAGES, (1.0,) * len(MESSAGES), attempts)
        cards = _hash_strings(np.abs(user_key), 5)
        parts = [
            self._donation_flow(at, channel, user, amount, currency, outcome, donor, message, user_key, cards)
        ]
        parts.extend(self._fraud(day0))
        return _concat(parts)

    def _donation_flow(
        self,
        at: I64,
        channel: I64,
        user: Arr,
        amount: I64,
        currency: Arr,
        outcome: Arr,
        donor: Arr,
        message: Arr,
        user_key: I64,
        cards: Arr,
    ) -> pa.Table:
        """created -> processed or failed (some held for review first) -> refunded or charged back."""
        n = len(at)
        donation_id = uuid7_strings(at, self.rng)
        device = _hash_strings(np.abs(user_key), 6)
        ip = _hash_strings(np.abs(user_key), 1)
        base = {"donation_id": donation_id, "amount_minor": amount, "currency": currency}
        held = (self.rng.random(n) < HELD_SHARE) & (outcome != "tok_fail")
        decided = at + self.rng.integers(1 * US, 4 * US, size=n)
        decided = np.where(held, at + self.rng.integers(5 * 60 * US, 120 * 60 * US, size=n), decided)
        rejected = held & (self.rng.random(n) < 0.2)
        failed = (outcome == "tok_fail") | rejected
        ok = ~failed
        payment = np.char.add("pay_", uuid7_strings(decided, self.rng))
        fingerprints = {"ip_hash": ip, "card_hash": cards, "device_hash": device}
        parts = [
            self._table(
                DonationCreated.event_type, at, channel, user, **base, donor_name=donor, message=message
            ),
            self._table(
                DonationHeld.event_type,
                (at + US)[held],
                channel[held],
                user[held],
                **{k: v[held] for k, v in base.items()},
                reason="new_donor_large_amount",
            ),
            self._table(
                DonationFailed.event_type,
                decided[failed],
                channel[failed],
                user[failed],
                **{k: v[failed] for k, v in base.items()},
                reason=np.where(rejected[failed], "rejected_by_moderator", "declined"),
            ),
            self._table(
                DonationProcessed.event_type,
                decided[ok],
                channel[ok],
                user[ok],
                **{k: v[ok] for k, v in base.items()},
                payment_id=payment[ok],
                donor_name=donor[ok],
                message=message[ok],
                settled_at=pa.array(decided[ok], _TS),
                **{k: v[ok] for k, v in fingerprints.items()},
            ),
        ]
        refund = ok & (outcome == "tok_refund")
        later = decided + np.maximum(self.rng.exponential(2 * DAY_US, size=n), 600 * US).astype(np.int64)
        parts.append(
            self._reversal(
                DonationRefunded.event_type,
                refund,
                later,
                decided,
                channel,
                user,
                base,
                payment,
                "requested_by_donor",
            )
        )
        chargeback = ok & (outcome == "tok_chargeback")
        disputed = decided + self.rng.integers(3 * DAY_US, 40 * DAY_US, size=n)
        for event_type in (ChargebackReceived.event_type, DonationChargedBack.event_type):
            parts.append(
                self._reversal(
                    event_type, chargeback, disputed, decided, channel, user, base, payment, "fraudulent"
                )
            )
        return _concat(parts)

    def _reversal(
        self,
        event_type: str,
        mask: npt.NDArray[np.bool_],
        at: I64,
        settled: I64,
        channel: I64,
        user: Arr,
        base: dict[str, Arr],
        payment: Arr,
        reason: str,
    ) -> pa.Table:
        return self._table(
            event_type,
            at[mask],
            channel[mask],
            user[mask],
            **{k: v[mask] for k, v in base.items()},
            payment_id=payment[mask],
            settled_at=pa.array(settled[mask], _TS),
            reason=reason,
        )

    def _fraud(self, day0: int) -> list[pa.Table]:
        """The day's fraud-ring episodes from `services.fraud_patterns` (the fraud model's own patterns:
        card testing, many cards on one device, new accounts giving large sums; most charged back),
        each pattern's donation ids recorded in the truth table."""
        start = datetime.fromtimestamp(day0 / US, UTC)
        rate = max(0.4, self.config.events / self.config.days / 100_000)
        out: list[pa.Table] = []
        for pattern in PATTERNS:
            episodes = int(self.rng.poisson(rate / len(PATTERNS)))
            if episodes == 0:
                continue
            rng = random.Random(int(self.rng.integers(0, 2**63)))
            envelopes = fraud_ring_events(
                rng,
                self.channels,
                start,
                start + timedelta(days=1),
                rings=episodes,
                patterns=[pattern],
                fx=self.fx,
            )
            rows = pa.Table.from_pylist(
                [to_row(e, 0, 0) for e in envelopes], schema=arrow_schema("donations")
            )
            rows = rows.drop_columns(["kafka_partition", "kafka_offset", "node_id", "schema_version"])
            index = {c: i for i, c in enumerate(self.channels)}
            channel = np.array([index[c] for c in rows["channel_id"].to_pylist()], dtype=np.int64)
            out.append(rows.append_column("_part", pa.array(self.channel_part[channel])))
            processed = [e for e in envelopes if e.event_type == DonationProcessed.event_type]
            disputed = charged_back_ids(envelopes)
            self.truth.append(
                pa.table(
                    {
                        "donation_id": [e.payload["donation_id"] for e in processed],
                        "pattern": [pattern] * len(processed),
                        "user_id": pa.array([e.user_id for e in processed], pa.string()),
                        "occurred_at": pa.array([e.occurred_at for e in processed], _TS),
                        "charged_back": [e.payload["donation_id"] in disputed for e in processed],
                    }
                )
            )
        return out

    def _subscriptions(self, s: _Sessions, signed: I64, target: int) -> pa.Table:
        """New subscriptions of the day and their futures: notice, renewal, cancellation, expiry."""
        new = max(1, round(target * SHARES["subscriptions"] / SUBSCRIPTION_EVENTS_PER_NEW))
        if len(signed) == 0:
            return pa.table({})
        which = signed[self.rng.choice(len(signed), size=new)]
        at = self._in_session(s, which)
        tier = _choice(self.rng, tuple(t.value for t in TIER_WEIGHTS), tuple(TIER_WEIGHTS.values()), new)
        price = np.array([TIER_PRICE_MINOR[Tier(t)] for t in tier], dtype=np.int64)
        gifted = self.rng.random(new) < 0.12
        gifter = signed[self.rng.choice(len(signed), size=new)]
        sub_id = uuid7_strings(at, self.rng)
        subscriber = s.user[which]
        channel = s.channel[which]
        month = 30 * DAY_US
        common = {"subscription_id": sub_id, "subscriber_id": subscriber, "tier": tier}
        parts = [
            self._table(
                np.where(gifted, SubscriptionGifted.event_type, SubscriptionCreated.event_type),
                at,
                channel,
                subscriber,
                **common,
                amount_minor=price,
                currency=Currency.RUB.value,
                period_end=pa.array(at + month, _TS),
                streak_months=1,
                gifted_by=_where(gifted, s.user[gifter]),
                payment_id=np.char.add("pay_", uuid7_strings(at, self.rng)),
            )
        ]
        alive = np.ones(new, dtype=bool)
        period_end = at + month
        streak = 1
        while alive.any() and period_end[alive].min() < self.window_end_us + month:
            renews = alive & ~gifted & (self.rng.random(new) < 0.75)
            m = renews
            parts.append(
                self._table(
                    SubscriptionRenewalNotice.event_type,
                    (period_end - 3 * DAY_US)[m],
                    channel[m],
                    subscriber[m],
                    **{k: v[m] for k, v in common.items()},
                    amount_minor=price[m],
                    currency=Currency.RUB.value,
                    period_end=pa.array(period_end[m], _TS),
                    streak_months=streak,
                )
            )
            streak += 1
            parts.append(
                self._table(
                    SubscriptionRenewed.event_type,
                    period_end[m],
                    channel[m],
                    subscriber[m],
                    **{k: v[m] for k, v in common.items()},
                    amount_minor=price[m],
                    currency=Currency.RUB.value,
                    period_end=pa.array(period_end[m] + month, _TS),
                    streak_months=streak,
                    payment_id=np.char.add("pay_", uuid7_strings(period_end[m], self.rng)),
                )
            )
            ends = alive & ~renews
            cancels = ends & ~gifted & (self.rng.random(new) < 0.5)
            cancel_at = period_end - (self.rng.random(new) * 20 * DAY_US).astype(np.int64)
            parts.append(
                self._table(
                    SubscriptionCancelled.event_type,
                    cancel_at[cancels],
                    channel[cancels],
                    subscriber[cancels],
                    **{k: v[cancels] for k, v in common.items()},
                    period_end=pa.array(period_end[cancels], _TS),
                    streak_months=streak - 1,
                )
            )
            parts.append(
                self._table(
                    SubscriptionExpired.event_type,
                    period_end[ends],
                    channel[ends],
                    subscriber[ends],
                    **{k: v[ends] for k, v in common.items()},
                    period_end=pa.array(period_end[ends], _TS),
                    streak_months=streak - 1,
                    reason=np.where(
                        cancels[ends], "cancelled", np.where(gifted[ends], "gift_ended", "payment_failed")
                    ),
                )
            )
            alive = renews
            period_end = period_end + month
        return _concat(parts)

    def _gifts(self, s: _Sessions, signed: I64, target: int) -> pa.Table:
        """Virtual gifts from the catalogue, cheap ones far more often; settled when sent."""
        count = max(1, round(target * SHARES["gifts"]))
        if len(signed) == 0:
            return pa.table({})
        which = signed[self.rng.choice(len(signed), size=count)]
        at = self._in_session(s, which)
        prices = np.array([g.price_minor for g in self.gifts], dtype=np.float64)
        item = self.rng.choice(len(self.gifts), size=count, p=(w := prices**-0.8) / w.sum())
        quantity = np.where(
            self.rng.random(count) < 0.75, 1, np.minimum(self.rng.geometric(0.3, count) + 1, 100)
        )
        price = prices[item].astype(np.int64)
        recipient = signed[self.rng.choice(len(signed), size=count)]
        return self._table(
            GiftSent.event_type,
            at,
            s.channel[which],
            s.user[which],
            gift_id=uuid7_strings(at, self.rng),
            item_id=np.array([self.gifts[i].id for i in item], dtype=object),
            item_name=np.array([self.gifts[i].name_en for i in item], dtype=object),
            rarity=np.array([self.gifts[i].rarity.value for i in item], dtype=object),
            kind=np.array([self.gifts[i].kind.value for i in item], dtype=object),
            quantity=quantity,
            amount_minor=price * quantity,
            currency=Currency.RUB.value,
            sender_id=s.user[which],
            sender_name=s.user[which],
            recipient_id=_where(self.rng.random(count) < 0.1, s.user[recipient]),
            payment_id=np.char.add("pay_", uuid7_strings(at, self.rng)),
            settled_at=pa.array(at, _TS),
        )

    def _interactive(self, day0: int, s: _Sessions, signed: I64, target: int) -> pa.Table:
        """Boosts and requests (donations with a purpose, topic `interactive`), half the share each.

        Each credit (`boost.pinned`, `request.submitted`) is emitted when its charge settles, so it carries
        `settled_at` = its time; a request is then played, skipped or removed; a few payments are refunded
        (a skip or removal with a refund, or support) or charged back weeks later, each reversal carrying
        the original settlement so the mart converts it at the credit's rate."""
        if len(signed) == 0:
            return pa.table({})
        day = datetime.fromtimestamp(day0 / US, UTC).date()
        budget = target * SHARES["interactive"] / 2
        parts = [
            self._boosts(day, s, signed, max(1, round(budget / BOOST_EVENTS_PER_PAYMENT))),
            self._requests(day, s, signed, max(1, round(budget / REQUEST_EVENTS_PER_PAYMENT))),
        ]
        return _concat(parts)

    def _interactive_payers(self, s: _Sessions, signed: I64, n: int) -> tuple[I64, I64, Arr]:
        """Who pays (engaged signed-in viewers more often), when it settles, and its charge id."""
        weight = self.engagement[s.user_idx[signed]] ** 2 + 1e-9
        which = signed[self.rng.choice(len(signed), size=n, p=weight / weight.sum())]
        settled = self._in_session(s, which) + self.rng.integers(1 * US, 4 * US, size=n)
        return which, settled, uuid7_strings(settled, self.rng)

    def _interactive_reversals(
        self,
        kinds: tuple[str, str],
        eligible: npt.NDArray[np.bool_],
        settled: I64,
        channel: I64,
        user: Arr,
        common: dict[str, Arr],
    ) -> list[pa.Table]:
        """Refunds (days later) and chargebacks (weeks later) of some settled payments, never both."""
        n = len(settled)
        draw = self.rng.random(n)
        refund = eligible & (draw < INTERACTIVE_REFUND_SHARE)
        chargeback = (
            eligible
            & (draw >= INTERACTIVE_REFUND_SHARE)
            & (draw < INTERACTIVE_REFUND_SHARE + INTERACTIVE_CHARGEBACK_SHARE)
        )
        refund_at = settled + np.maximum(self.rng.exponential(2 * DAY_US, size=n), 600 * US).astype(np.int64)
        disputed = settled + self.rng.integers(3 * DAY_US, 40 * DAY_US, size=n)
        out = []
        for event_type, mask, at, reason in (
            (kinds[0], refund, refund_at, "requested_by_customer"),
            (kinds[1], chargeback, disputed, "fraudulent"),
        ):
            out.append(
                self._table(
                    event_type,
                    at[mask],
                    channel[mask],
                    user[mask],
                    **{k: v[mask] for k, v in common.items()},
                    settled_at=pa.array(settled[mask], _TS),
                    payer_id=user[mask],
                    reason=reason,
                )
            )
        return out

    def _interactive_amounts(
        self, day: date, n: int, median_rub_minor: int, rub_only: bool
    ) -> tuple[I64, Arr]:
        if rub_only:
            currency = np.full(n, Currency.RUB.value, dtype=object)
        else:
            currency = _choice(
                self.rng, tuple(c.value for c in CURRENCY_WEIGHTS), tuple(CURRENCY_WEIGHTS.values()), n
            )
        rub = self.rng.lognormal(math.log(median_rub_minor), INTERACTIVE_SIGMA, size=n)
        return self._amounts(rub, currency, day), currency

    def _boosts(self, day: date, s: _Sessions, signed: I64, n: int) -> pa.Table:
        which, settled, charge = self._interactive_payers(s, signed, n)
        amount, currency = self._interactive_amounts(day, n, BOOST_RUB_MEDIAN_MINOR, rub_only=False)
        channel, user = s.channel[which], s.user[which]
        common = {
            "boost_id": uuid7_strings(settled, self.rng),
            "charge_id": charge,
            "amount_minor": amount,
            "currency": currency,
            "payment_id": np.char.add("pay_", uuid7_strings(settled, self.rng)),
        }
        pinned = self._table(
            BoostPinned.event_type,
            settled,
            channel,
            user,
            **common,
            display_name=user,
            message=_choice(self.rng, BOOST_MESSAGES, (1.0,) * len(BOOST_MESSAGES), n),
            pin_seconds=BOOST_PIN_SECONDS,
            settled_at=pa.array(settled, _TS),
        )
        reversals = self._interactive_reversals(
            (BoostRefunded.event_type, BoostChargedBack.event_type),
            np.ones(n, dtype=bool),
            settled,
            channel,
            user,
            common,
        )
        return _concat([pinned, *reversals])

    def _requests(self, day: date, s: _Sessions, signed: I64, n: int) -> pa.Table:
        """Requests are paid in the queue's currency (roubles here); music mostly, some game challenges."""
        which, settled, charge = self._interactive_payers(s, signed, n)
        amount, currency = self._interactive_amounts(day, n, REQUEST_RUB_MEDIAN_MINOR, rub_only=True)
        channel, user = s.channel[which], s.user[which]
        request = {
            "request_id": uuid7_strings(settled, self.rng),
            "kind": np.where(self.rng.random(n) < 0.8, "music", "game").astype(object),
            "title": _choice(self.rng, REQUEST_TITLES, (1.0,) * len(REQUEST_TITLES), n),
            "requester_name": user,
            "amount_minor": amount,
            "currency": currency,
        }
        payment = np.char.add("pay_", uuid7_strings(settled, self.rng))
        parts = [
            self._table(
                RequestSubmitted.event_type,
                settled,
                channel,
                user,
                **request,
                charge_id=charge,
                payment_id=payment,
                settled_at=pa.array(settled, _TS),
            )
        ]
        ending = _choice(self.rng, REQUEST_ENDINGS, REQUEST_ENDING_WEIGHTS, n)
        ended = settled + np.clip(self.rng.exponential(20 * 60 * US, size=n), 30 * US, 3 * 3600 * US).astype(
            np.int64
        )
        refunded_skip = (ending != "played") & (self.rng.random(n) < REQUEST_REFUND_ON_SKIP)
        for name, event_type in (
            ("played", RequestPlayed.event_type),
            ("skipped", RequestSkipped.event_type),
            ("removed", RequestRemoved.event_type),
        ):
            m = ending == name
            extra = {} if name == "played" else {"refund": refunded_skip[m]}
            parts.append(
                self._table(
                    event_type,
                    ended[m],
                    channel[m],
                    user[m],
                    **{k: v[m] for k, v in request.items()},
                    **extra,
                )
            )
        common = {
            "request_id": request["request_id"],
            "charge_id": charge,
            "amount_minor": amount,
            "currency": currency,
            "payment_id": payment,
        }
        # A skip or removal with a refund is refunded a few seconds after it.
        m = refunded_skip
        parts.append(
            self._table(
                RequestRefunded.event_type,
                (ended + 5 * US)[m],
                channel[m],
                user[m],
                **{k: v[m] for k, v in common.items()},
                settled_at=pa.array(settled[m], _TS),
                payer_id=user[m],
                reason=np.where(ending[m] == "skipped", "skipped", "removed").astype(object),
            )
        )
        parts.extend(
            self._interactive_reversals(
                (RequestRefunded.event_type, RequestChargedBack.event_type),
                ~refunded_skip,
                settled,
                channel,
                user,
                common,
            )
        )
        return _concat(parts)

    def _sponsorships(self, day0: int) -> pa.Table:
        """Paid integrations: a few per channel a month (popular channels more), 20,000-300,000 RUB,
        paid on a working-hours bank statement; a few refunded days later at the same settlement."""
        raw = 0.5 + self.popularity / self.popularity.max()
        lam = raw * (SPONSORSHIPS_PER_CHANNEL_DAY * len(raw) / raw.sum())  # mean stays the per-channel rate
        count = self.rng.poisson(lam)
        channel = np.repeat(np.arange(len(self.channels)), count)
        n = len(channel)
        if n == 0:
            return pa.table({})
        at = day0 + self.rng.integers(9 * 3600, 19 * 3600, size=n) * US
        rub = np.exp(self.rng.uniform(math.log(SPONSORSHIP_RUB_MIN), math.log(SPONSORSHIP_RUB_MAX), size=n))
        amount = (np.round(rub / 1000) * 1000 * 100).astype(np.int64)  # whole thousands of roubles
        sponsor = _choice(self.rng, SPONSORS, (1.0,) * len(SPONSORS), n)
        common = {
            "sponsorship_id": uuid7_strings(at, self.rng),
            "sponsor_name": sponsor,
            "title": np.char.add(sponsor.astype(str), ": интеграция в стриме").astype(object),
            "payment_id": np.char.add("inv_", uuid7_strings(at, self.rng)),
            "amount_minor": amount,
            "currency": Currency.RUB.value,
        }
        refund = self.rng.random(n) < SPONSORSHIP_REFUND_SHARE
        refund_at = at + self.rng.integers(3 * DAY_US, 20 * DAY_US, size=n)
        return _concat(
            [
                self._table(
                    SponsorshipPaid.event_type, at, channel, None, **common, settled_at=pa.array(at, _TS)
                ),
                self._table(
                    SponsorshipRefunded.event_type,
                    refund_at[refund],
                    channel[refund],
                    None,
                    **{k: v[refund] if isinstance(v, np.ndarray) else v for k, v in common.items()},
                    settled_at=pa.array(at[refund], _TS),
                    reason="integration_not_aired",
                ),
            ]
        )

    # ---- tables, landing ---------------------------------------------------------------------------

    def _table(self, event_type: Any, at: I64, channel: I64, user: Arr | None, **payload: Any) -> pa.Table:
        """Envelope columns (event id, node and offsets come at landing) plus payload columns; scalars
        broadcast. `_part` is the Kafka partition of the channel key."""
        n = len(at)
        if n == 0:
            return pa.table({})
        cols: dict[str, Any] = {
            "event_type": np.broadcast_to(np.asarray(event_type, dtype=object), (n,)),
            "occurred_at": pa.array(np.asarray(at, dtype=np.int64), _TS),
            "channel_id": np.asarray(self.channels, dtype=object)[channel]
            if n
            else np.empty(0, dtype=object),
            "user_id": user if user is not None else np.full(n, None, dtype=object),
            "_part": self.channel_part[channel] if n else np.empty(0, dtype=np.int32),
        }
        for name, value in payload.items():
            if isinstance(value, pa.Array):
                cols[name] = value
            elif isinstance(value, (str, int)) or value is None:
                cols[name] = np.full(n, value, dtype=object)
            else:
                cols[name] = value
        arrays = {
            k: v if isinstance(v, pa.Array) else pa.array(np.asarray(v), from_pandas=True)
            for k, v in cols.items()
        }
        return pa.table(arrays)

    def _add(self, topic: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        before = pc.less(table["occurred_at"], pa.scalar(self.window_end_us, _TS))
        self.in_window += int(pc.sum(before).as_py() or 0)
        self.pending[topic].append(table)

    def _flush(self, day: date) -> int:
        """Land every pending row of `day` (earlier days are landed already) per topic and partition."""
        end = pa.scalar(_day_us(day + timedelta(days=1)), _TS)
        written = 0
        for topic in sorted(self.pending):
            tables = self.pending[topic]
            if not tables:
                continue
            table = pa.concat_tables(tables, promote_options="default")
            due = pc.less(table["occurred_at"], end)
            self.pending[topic] = [table.filter(pc.invert(due))]
            today = table.filter(due).sort_by("occurred_at")
            for part in range(self.config.kafka_partitions):
                rows = today.filter(pc.equal(today["_part"], part))
                if rows.num_rows:
                    self._land(topic, part, day, rows)
                    written += rows.num_rows
        return written

    def _land(self, topic: str, part: int, day: date, rows: pa.Table) -> None:
        schema = arrow_schema(topic)
        n = rows.num_rows
        first = self.offsets[(topic, part)]
        self.offsets[(topic, part)] = first + n
        micros = rows["occurred_at"].cast(pa.int64()).to_numpy()
        ids = pa.array(uuid7_strings(micros, self.rng))
        fixed = {
            # Events drawn as envelopes (the fraud rings) keep their ids; the rest get UUIDv7s here.
            "event_id": pc.coalesce(rows["event_id"], ids) if "event_id" in rows.column_names else ids,
            "node_id": pa.array(np.full(n, NODE_ID, dtype=object)),
            "schema_version": pa.array(np.ones(n, dtype=np.int32)),
            "kafka_partition": pa.array(np.full(n, part, dtype=np.int32)),
            "kafka_offset": pa.array(np.arange(first, first + n, dtype=np.int64)),
        }
        names = set(rows.column_names)
        kinds = {str(t): pc.equal(rows["event_type"], t) for t in pc.unique(rows["event_type"]).to_pylist()}
        columns = []
        for f in schema:
            if f.name in fixed:
                columns.append(fixed[f.name])
                continue
            column = rows[f.name].cast(f.type) if f.name in names else pa.nulls(n, f.type)
            columns.append(_with_defaults(column, f, kinds))
        table = pa.Table.from_arrays(columns, schema=schema)
        final = partition_dir(self.lake, topic, day) / file_name(
            topic, self.epoch, part, first, first + n - 1
        )
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(final)
        pq.write_table(table, tmp, compression=self.config.compression)
        os.replace(tmp, final)
        Manifest(
            topic=topic,
            epoch=self.epoch,
            cluster_id=self.cluster_id,
            partition=part,
            first_offset=first,
            last_offset=first + n - 1,
            rows=n,
            files=[str(final.relative_to(self.lake))],
        ).write_atomically(self.lake)
        self.report.rows[topic] += n
        for event_type, count in zip(
            *np.unique(rows["event_type"].to_numpy(zero_copy_only=False), return_counts=True), strict=True
        ):
            self.report.event_types[str(event_type)] += int(count)
        self.report.files += 1
        self.report.manifests += 1
        self.report.bytes += final.stat().st_size

    def _write_truth(self) -> None:
        if not self.truth:
            return
        truth = pa.concat_tables(self.truth, promote_options="default")
        truth = truth.filter(pc.less(truth["occurred_at"], pa.scalar(self.window_end_us, _TS)))
        folder = self.lake / GENERATOR_DIR
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(truth, folder / FRAUD_TRUTH_FILE)
        patterns = truth["pattern"].to_pylist()
        self.report.fraud_donations = {p: patterns.count(p) for p in sorted(set(patterns))}


def generate_lake(
    lake: Path, config: GeneratorConfig | None = None, *, echo: Callable[[str], None] | None = None
) -> GeneratorReport:
    """Generate and land a whole lake under `lake` (which should be empty: offsets start at 0)."""
    return LakeGenerator(config or GeneratorConfig(), lake, echo=echo).run()
