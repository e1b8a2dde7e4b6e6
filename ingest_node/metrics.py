"""Prometheus metrics of one node app, on a registry of its own.

A registry per app (not the process-global default) lets several apps live in one test process, and
keeps what /metrics shows exactly what this node counted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class NodeMetrics:
    """Counters of the money path and the outbox; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.donations_created = Counter(
            "efir_donations_created",
            "Donations accepted (pending at the provider).",
            ["currency"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "efir_webhooks", "Payment webhooks received, by outcome.", ["outcome"], registry=self.registry
        )
        self.outbox_published = Counter(
            "efir_outbox_published", "Outbox events acknowledged by the broker.", registry=self.registry
        )
        self.outbox_republished = Counter(
            "efir_outbox_republished",
            "Outbox events sent again because the broker's cluster id changed.",
            registry=self.registry,
        )
        self.outbox_failures = Counter(
            "efir_outbox_relay_failures", "Relay rounds that failed (broker down).", registry=self.registry
        )
        self.outbox_pending = Gauge(
            "efir_outbox_pending_events", "Outbox events not yet acknowledged.", registry=self.registry
        )
        self.outbox_lag = Gauge(
            "efir_outbox_lag_seconds", "Age of the oldest unpublished outbox event.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
