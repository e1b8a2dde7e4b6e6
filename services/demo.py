"""Demo traffic: believable donations sent to a REAL node over its public HTTP API.

`efir up` runs it so that a fresh machine shows revenue in the dashboards within minutes; `efir demo`
runs it alone against any node. The draws are pure and seeded (`DonationFactory`), so tests check the
distribution without a network; the sender (`DemoSender`) does only HTTP. Each donation gets a fresh
Idempotency-Key, and a retry after a connection error reuses that same key: the node answers the
stored response instead of charging twice.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from services.fx import FxTable
from services.money import Currency, round_half_up

# Log-normal amounts: median 450 RUB (45,000 kopecks); sigma 1.0 puts the middle half between
# ~230 and ~880 RUB with a long tail of big donations, as real donation streams look.
RUB_MEDIAN_MINOR = 45_000
AMOUNT_SIGMA = 1.0
# Most people type whole roubles (or dollars); a few amounts keep kopecks.
WHOLE_UNITS_SHARE = 0.9
ANONYMOUS_SHARE = 0.25
CURRENCY_WEIGHTS: dict[Currency, float] = {Currency.RUB: 0.86, Currency.USD: 0.09, Currency.EUR: 0.05}
# Sandbox payment tokens (docs/contracts.md): a few percent of each unhappy path.
TOKEN_WEIGHTS: dict[str, float] = {
    "tok_success": 0.91,
    "tok_fail": 0.03,
    "tok_refund": 0.03,
    "tok_chargeback": 0.03,
}

DONOR_NAMES = (
    "Алексей",
    "Мария",
    "Дмитрий",
    "Анна",
    "Сергей",
    "Екатерина",
    "Иван Петров",
    "Ольга",
    "Никита",
    "Татьяна",
    "Kirill_Pro",
    "Alex",
    "Emily",
    "John Smith",
    "Sophie",
    "Max Power",
    "NightOwl",
    "pixel_cat",
)
MESSAGES = (
    "",
    "",
    "Привет из Казани!",
    "Спасибо за стрим!",
    "Лучший стример!",
    "На новый микрофон",
    "Сыграй ещё раз этот уровень",
    "Удачи в турнире!",
    "GG WP",
    "Great stream, keep it up!",
    "Greetings from Berlin",
    "For the new camera",
    "That clutch was insane",
    "Happy birthday!",
)
# (channel_id, display name); channel ids are lowercase slugs.
CHANNEL_NAMES = (
    ("kotik-plays", "Котик играет"),
    ("speedrun-sasha", "Speedrun Sasha"),
    ("babushka-gamer", "Бабушка-геймер"),
    ("pixel-knight", "Pixel Knight"),
    ("severnoe-siyanie", "Северное сияние"),
    ("retro-vova", "Retro Vova"),
    ("chess-masha", "Шахматы с Машей"),
    ("night-raid", "Night Raid"),
)


@dataclass(frozen=True)
class DemoChannel:
    channel_id: str
    name: str


def demo_channels(count: int) -> list[DemoChannel]:
    """The first `count` demo channels: named ones first, then demo-9, demo-10, ..."""
    if count < 1:
        raise ValueError("at least one demo channel is needed")
    named = [DemoChannel(cid, name) for cid, name in CHANNEL_NAMES[:count]]
    extra = [DemoChannel(f"demo-{i}", f"Demo channel {i}") for i in range(len(named) + 1, count + 1)]
    return named + extra


@dataclass(frozen=True)
class DonationDraft:
    """One donation as the public API takes it (POST /api/v1/donations)."""

    channel_id: str
    amount_minor: int
    currency: Currency
    message: str
    donor_name: str | None
    payment_token: str

    def body(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency.value,
            "message": self.message,
            "donor_name": self.donor_name,
            "payment_token": self.payment_token,
        }


def current_rates() -> dict[Currency, Decimal]:
    """Roubles per unit from the dated FX table, today's row: close enough to scale demo amounts."""
    table = FxTable.load()
    today = datetime.now(UTC).date()
    return {cur: table.rate(cur, today) for cur in Currency}


class DonationFactory:
    """Seeded random donations: amounts, currencies, donors, messages and payment tokens.

    Channels are weighted 1, 1/2, 1/3, ... so the dashboards show a clear leader and a long tail.
    """

    def __init__(
        self,
        channels: Sequence[str],
        *,
        seed: int | None = None,
        min_minor: int = 1_000,
        max_minor: int = 5_000_000,
        rates: dict[Currency, Decimal] | None = None,
    ):
        if not channels:
            raise ValueError("at least one channel is needed")
        if not 0 < min_minor <= max_minor:
            raise ValueError("need 0 < min_minor <= max_minor")
        self.rng = random.Random(seed)
        self.channels = list(channels)
        self.channel_weights = [1 / (i + 1) for i in range(len(self.channels))]
        self.min_minor, self.max_minor = min_minor, max_minor
        self.rates = rates if rates is not None else current_rates()

    def amount(self, currency: Currency = Currency.RUB) -> int:
        """Minor units of `currency`: a log-normal rouble draw scaled by the rate, rounded, clamped."""
        draw = self.rng.lognormvariate(math.log(RUB_MEDIAN_MINOR), AMOUNT_SIGMA)
        # The draw is a float only until here: money from now on is Decimal, then int minor units.
        value = Decimal(draw) / self.rates.get(currency, Decimal(1))
        if self.rng.random() < WHOLE_UNITS_SHARE:
            minor = round_half_up(value / 100) * 100
        else:
            minor = round_half_up(value)
        return min(max(minor, self.min_minor), self.max_minor)

    def currency(self) -> Currency:
        return self.rng.choices(list(CURRENCY_WEIGHTS), weights=list(CURRENCY_WEIGHTS.values()))[0]

    def payment_token(self) -> str:
        return self.rng.choices(list(TOKEN_WEIGHTS), weights=list(TOKEN_WEIGHTS.values()))[0]

    def donor_name(self) -> str | None:
        return None if self.rng.random() < ANONYMOUS_SHARE else self.rng.choice(DONOR_NAMES)

    def message(self) -> str:
        return self.rng.choice(MESSAGES)

    def channel(self) -> str:
        return self.rng.choices(self.channels, weights=self.channel_weights)[0]

    def draft(self) -> DonationDraft:
        currency = self.currency()
        return DonationDraft(
            channel_id=self.channel(),
            amount_minor=self.amount(currency),
            currency=currency,
            message=self.message(),
            donor_name=self.donor_name(),
            payment_token=self.payment_token(),
        )


@dataclass
class DemoStats:
    """What the demo did so far; `line()` is the progress line it prints."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    errors: int = 0

    def line(self) -> str:
        return (
            f"demo: sent {self.sent}, accepted {self.accepted}, rejected {self.rejected}, "
            f"gave up {self.errors}"
        )


class DemoError(RuntimeError):
    """The demo cannot go on (e.g. the admin token is refused); the message says what to do."""


RETRY_STATUSES = frozenset({429, 502, 503, 504})


class DemoSender:
    """HTTP side of the demo: creates channels, posts donations with retries on the same key."""

    def __init__(
        self,
        node_url: str,
        admin_token: str,
        *,
        attempts: int = 6,
        backoff: float = 0.25,
        timeout: float = 10.0,
        echo: Callable[[str], None] = print,
    ):
        self.client = httpx.Client(base_url=node_url.rstrip("/"), timeout=timeout)
        self.admin_token = admin_token
        self.attempts, self.backoff, self.echo = attempts, backoff, echo
        self.run_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self._shown_rejections = 0

    def close(self) -> None:
        self.client.close()

    def ensure_channels(self, channels: Sequence[DemoChannel]) -> None:
        """Create the demo channels through the admin API; 409 (exists already) is fine."""
        if not self.admin_token:
            raise DemoError(
                "no admin token: pass --admin-token or set EFIR_ADMIN_TOKEN to the node's token "
                "(`efir up` makes one and passes it on)"
            )
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        for channel in channels:
            body = {"channel_id": channel.channel_id, "name": channel.name}
            resp = self._send("POST", "/api/v1/channels", json=body, headers=headers)
            if resp is None:
                raise DemoError(f"node at {self.client.base_url} did not answer; is it running?")
            if resp.status_code in (401, 403):
                raise DemoError(
                    f"the node refused the admin token ({resp.status_code}); check EFIR_ADMIN_TOKEN"
                )
            if resp.status_code not in (200, 201, 409):
                raise DemoError(
                    f"creating channel {channel.channel_id} failed: {resp.status_code} {resp.text[:200]}"
                )

    def next_key(self) -> str:
        self.seq += 1
        return f"demo-{self.run_id}-{self.seq:09d}"

    def donate(self, draft: DonationDraft, stats: DemoStats) -> None:
        """Post one donation; connection errors and 429/5xx are retried with the SAME key."""
        key = self.next_key()
        stats.sent += 1
        resp = self._send("POST", "/api/v1/donations", json=draft.body(), headers={"Idempotency-Key": key})
        if resp is None:
            stats.errors += 1
        elif resp.status_code in (200, 201):
            stats.accepted += 1
        else:
            stats.rejected += 1
            if self._shown_rejections < 5:  # say why, but don't flood the log
                self._shown_rejections += 1
                self.echo(f"demo: donation rejected: {resp.status_code} {resp.text[:200]}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """Send with retries; None when every attempt failed to get a usable answer."""
        for attempt in range(self.attempts):
            try:
                resp = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}"
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                reason = f"HTTP {resp.status_code}"
            if attempt + 1 < self.attempts:
                time.sleep(min(5.0, self.backoff * 2**attempt))
        self.echo(f"demo: giving up on {method} {path} after {self.attempts} attempts ({reason})")
        return None


def run_demo(
    node_url: str,
    admin_token: str,
    *,
    rate: float,
    channels: int,
    count: int | None = None,
    duration: float | None = None,
    seed: int | None = None,
    progress_every: int = 50,
    min_minor: int = 1_000,
    max_minor: int = 5_000_000,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] = print,
) -> DemoStats:
    """Create the channels, then send donations at `rate` per second until count/duration/stop."""
    if rate <= 0:
        raise DemoError("--rate must be positive")
    stop = stop or threading.Event()
    chans = demo_channels(channels)
    factory = DonationFactory(
        [c.channel_id for c in chans], seed=seed, min_minor=min_minor, max_minor=max_minor
    )
    sender = DemoSender(node_url, admin_token, echo=echo)
    stats = DemoStats()
    try:
        sender.ensure_channels(chans)
        echo(f"demo: {len(chans)} channels ready on {node_url}; sending {rate:g} donations/s")
        started = time.monotonic()
        next_at = started
        while not stop.is_set():
            if count is not None and stats.sent >= count:
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            sender.donate(factory.draft(), stats)
            if progress_every and stats.sent % progress_every == 0:
                echo(stats.line())
            # Pace on a fixed schedule so slow answers don't lower the average rate.
            next_at = max(next_at + 1 / rate, time.monotonic() - 1.0)
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        sender.close()
    echo(stats.line())
    return stats
