"""Fraud at the donation edge: block lists, token-bucket rate limits, and card-testing velocity rules.

Order of the checks (each a clear answer): a blocked IP or card is refused (403); a client IP or donor
over its token bucket is refused with Retry-After (429); then the velocity rules, kept as data, count
recent small payments from the same IP, card or device in the database (so every node sharing it sees
them) and, past the limit, the donation is held for review before any payment is asked for.
Clients in `donation_edge_exempt_ips` (loopback by default: local tools, benchmarks) skip the limits
and the rules, never the block lists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ingest_node.models import utcnow
from ingest_node.money.donation_rules import DonationEdge
from services.settings import Settings

DEVICE_HEADER = "X-Device-Id"


class TokenBucket:
    """`capacity` requests at once, refilled at `per_second`; the clock is the caller's (monotonic)."""

    def __init__(self, capacity: int, per_second: float, now: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = float(capacity)
        self.stamp = now

    def take(self, now: float) -> float:
        """Spend one token: 0 when allowed, else seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class RateLimiter:
    """Token buckets per key (client IP, donor), in memory; idle full buckets are forgotten."""

    def __init__(self, capacity: int, per_minute: float) -> None:
        self.capacity = capacity
        self.per_second = per_minute / 60
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> int:
        """0 when allowed, else whole seconds to wait (the Retry-After value, at least 1)."""
        with self._lock:
            if len(self._buckets) > 100_000:
                self._forget_full(now)
            bucket = self._buckets.setdefault(key, TokenBucket(self.capacity, self.per_second, now))
            wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def _forget_full(self, now: float) -> None:
        full_after = self.capacity / self.per_second
        for key in [k for k, b in self._buckets.items() if now - b.stamp >= full_after]:
            del self._buckets[key]


@dataclass(frozen=True)
class VelocityRule:
    """More than `max_count` payments of at most `small_minor` from one `key` within `window` is card
    testing; the current payment included."""

    name: str
    key: Literal["ip_hash", "card_hash", "device_hash"]
    max_count: int
    small_minor: int
    window: timedelta


def velocity_rules(settings: Settings) -> tuple[VelocityRule, ...]:
    window = timedelta(seconds=settings.donation_velocity_window_seconds)
    limit, small = settings.donation_velocity_max_small, settings.donation_velocity_small_minor
    return tuple(
        VelocityRule(f"card_testing_{what}", key, limit, small, window)  # type: ignore[arg-type]
        for what, key in (("ip", "ip_hash"), ("card", "card_hash"), ("device", "device_hash"))
    )


def tripped_rule(
    session: Session, rules: tuple[VelocityRule, ...], amount_minor: int, keys: dict[str, str | None]
) -> VelocityRule | None:
    """The first rule the new payment (not yet stored) would break, or None."""
    now = utcnow()
    for rule in rules:
        value = keys.get(rule.key)
        if value is None or amount_minor > rule.small_minor:
            continue
        column = getattr(DonationEdge, rule.key)
        seen = session.execute(
            sa.select(sa.func.count())
            .select_from(DonationEdge)
            .where(
                column == value,
                DonationEdge.amount_minor <= rule.small_minor,
                DonationEdge.created_at >= now - rule.window,
            )
        ).scalar_one()
        if int(seen) + 1 > rule.max_count:
            return rule
    return None


def client_ip(peer: str | None, forwarded_for: str | None, settings: Settings) -> str:
    """The peer's address, or the last X-Forwarded-For hop when the peer is a trusted proxy."""
    ip = peer or "unknown"
    if forwarded_for and ip in settings.donation_trusted_proxies:
        hop = forwarded_for.split(",")[-1].strip()
        with contextlib.suppress(ValueError):  # a garbled header leaves the peer's address
            ip = str(ipaddress.ip_address(hop))
    return ip


class EdgeGuard:
    """The node's per-process limiters (built once per app from its settings)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_ip = RateLimiter(settings.donation_ip_burst, settings.donation_ip_per_minute)
        self.by_donor = RateLimiter(settings.donation_donor_burst, settings.donation_donor_per_minute)
        self.rules = velocity_rules(settings)

    def exempt(self, ip: str) -> bool:
        return ip in self.settings.donation_edge_exempt_ips

    def blocked(self, ip: str, token: str) -> str | None:
        if ip in self.settings.donation_blocked_ips:
            return "donations from this network address are blocked"
        if token in self.settings.donation_blocked_tokens:
            return "donations with this payment method are blocked"
        return None

    def retry_after(self, ip: str, donor: str, now: float) -> int:
        """0 when both buckets allow the request, else the longer wait in seconds."""
        return max(self.by_ip.take(ip, now), self.by_donor.take(donor, now))
