"""The synthetic fraud generator: reproducible, valid events, and rings that look like their pattern."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from services.events import DonationChargedBack, DonationProcessed, Envelope, to_row
from services.fraud_patterns import (
    background_events,
    charged_back_ids,
    fingerprint,
    fraud_ring_events,
    labelled_donations,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=2)
PROCESSED = DonationProcessed.event_type


def test_same_seed_same_events_and_every_event_is_valid() -> None:
    first = labelled_donations(9, ["alpha", "beta"], START, 2, donations=200, rings=6)
    again = labelled_donations(9, ["alpha", "beta"], START, 2, donations=200, rings=6)
    assert [e.to_json() for e in first] == [e.to_json() for e in again]
    assert [e.to_json() for e in labelled_donations(10, ["alpha"], START, 2, donations=200, rings=6)] != [
        e.to_json() for e in first
    ]
    assert [e.occurred_at for e in first] == sorted(e.occurred_at for e in first)
    assert len({e.event_id for e in first}) == len(first)
    for env in first:
        assert Envelope.from_json(env.to_json()) == env  # payload validates against its schema
        to_row(env, 0, 0)  # and flattens into a lake row


def test_chargebacks_reverse_an_earlier_settled_donation_in_full() -> None:
    events = labelled_donations(4, ["alpha"], START, 2, donations=300, rings=9)
    settled = {e.payload["donation_id"]: e for e in events if e.event_type == PROCESSED}
    chargebacks = [e for e in events if e.event_type == DonationChargedBack.event_type]
    assert chargebacks and charged_back_ids(events) == {c.payload["donation_id"] for c in chargebacks}
    for cb in chargebacks:
        original = settled[cb.payload["donation_id"]]
        assert cb.occurred_at > original.occurred_at
        assert (cb.payload["amount_minor"], cb.payload["currency"], cb.payload["settled_at"]) == (
            original.payload["amount_minor"],
            original.payload["currency"],
            original.payload["settled_at"],
        )


def test_each_ring_pattern_looks_like_itself() -> None:
    def ring(pattern: str) -> list[Envelope]:
        events = fraud_ring_events(random.Random(1), ["alpha"], START, END, rings=1, patterns=[pattern])
        return [e for e in events if e.event_type == PROCESSED]

    testing = ring("card_testing")
    cards = {e.payload["card_hash"] for e in testing}
    assert (
        len({e.payload["device_hash"] for e in testing}) == 1
        and len({e.payload["ip_hash"] for e in testing}) == 1
    )
    assert len(cards) >= 6 and all(e.payload["amount_minor"] <= 5_000 and e.user_id is None for e in testing)
    assert testing[-1].occurred_at - testing[0].occurred_at < timedelta(minutes=61)

    many = ring("many_cards_device")
    assert (
        len({e.payload["device_hash"] for e in many}) == 1
        and len({e.payload["card_hash"] for e in many}) >= 4
    )
    assert all(100_000 <= e.payload["amount_minor"] <= 500_000 for e in many)

    large = ring("new_account_large")
    assert len({e.user_id for e in large}) == 1
    assert all(e.payload["amount_minor"] >= 1_000_000 for e in large)
    assert large[-1].occurred_at - large[0].occurred_at <= timedelta(hours=1)


def test_regular_donors_keep_their_card_device_and_account() -> None:
    events = background_events(random.Random(2), ["alpha"], START, END, donations=400, donors=40)
    cards_per_user: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.event_type == PROCESSED and e.user_id:
            cards_per_user[e.user_id].add(e.payload["card_hash"])
    assert cards_per_user and max(len(c) for c in cards_per_user.values()) <= 2
    assert any(len(c) == 1 for c in cards_per_user.values())


def test_fingerprints_are_keyed_hashes_not_the_values() -> None:
    value = "203.0.113.7"
    print_ = fingerprint("ip", value)
    assert len(print_) == 64 and value not in print_ and print_ == fingerprint("ip", value)
    assert print_ != fingerprint("device", value)


def test_bad_arguments_are_refused() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError, match="unknown fraud patterns"):
        fraud_ring_events(rng, ["alpha"], START, END, rings=1, patterns=["phishing"])
    with pytest.raises(ValueError, match="start < end"):
        fraud_ring_events(rng, ["alpha"], END, START, rings=1)
    with pytest.raises(ValueError, match="channels"):
        background_events(rng, [], START, END, donations=1, donors=1)
