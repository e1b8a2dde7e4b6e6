"""The landed lake as an external asset (the lander, not Dagster, writes it) and its integrity check."""

from collections.abc import Iterable

import dagster as dg

from assets.resources import LakeResource
from services.lake import Manifest, manifests


def lake_spec(topic: str, description: str) -> dg.AssetSpec:
    """A topic's landed files as an external asset: the lander, not Dagster, writes them."""
    return dg.AssetSpec(
        key=dg.AssetKey(["lake", topic]), description=description, group_name="lake", kinds={"parquet"}
    )


DONATIONS_TOPIC = "donations"
LAKE_DONATIONS = lake_spec(
    DONATIONS_TOPIC,
    "Donation events landed from Kafka by the lander (hive-partitioned Parquet, event dates).",
)

OFFSET_RANGES_DISJOINT = "offset_ranges_disjoint"


def overlapping_ranges(found: Iterable[Manifest]) -> list[tuple[Manifest, Manifest]]:
    """Pairs of manifests of the same topic, epoch and partition whose offset ranges overlap.

    Each offset is landed exactly once, so two committed ranges that share an offset mean the lander
    wrote some events twice (the marts would still dedupe by event_id, but the lake's recipe broke).
    """
    ordered = sorted(found, key=lambda m: (m.topic, m.epoch, m.partition, m.first_offset, m.last_offset))
    clashes: list[tuple[Manifest, Manifest]] = []
    previous: Manifest | None = None
    for current in ordered:
        same_log = previous is not None and (previous.topic, previous.epoch, previous.partition) == (
            current.topic,
            current.epoch,
            current.partition,
        )
        if previous is not None and same_log and current.first_offset <= previous.last_offset:
            clashes.append((previous, current))
        # Keep the range that reaches furthest, so a long range overlapping several short ones is caught.
        if previous is None or not same_log or current.last_offset > previous.last_offset:
            previous = current
    return clashes


def _describe(a: Manifest, b: Manifest) -> str:
    return f"e{a.epoch}/p{a.partition}: {a.first_offset}-{a.last_offset} vs {b.first_offset}-{b.last_offset}"


VIEWS_TOPIC = "views"
CHAT_TOPIC = "chat"
STREAMS_TOPIC = "streams"
SUBSCRIPTIONS_TOPIC = "subscriptions"
LAKE_VIEWS = lake_spec(
    VIEWS_TOPIC, "View heartbeats landed from Kafka by the lander (one per session, rendition and interval)."
)
LAKE_CHAT = lake_spec(CHAT_TOPIC, "Chat messages and moderation events landed from Kafka by the lander.")
LAKE_STREAMS = lake_spec(
    STREAMS_TOPIC,
    "Broadcast lifecycle events (started, ended, errored, ladder changed) landed by the lander.",
)
LAKE_SUBSCRIPTIONS = lake_spec(SUBSCRIPTIONS_TOPIC, "Subscription events landed from Kafka by the lander.")

# The money topics beyond donations; each feeds a money mart (assets/payment_marts.py).
GIFTS_TOPIC = "gifts"
INTERACTIVE_TOPIC = "interactive"
SPONSORSHIPS_TOPIC = "sponsorships"
LAKE_GIFTS = lake_spec(
    GIFTS_TOPIC, "Virtual gifts sent and their refunds and chargebacks, landed from Kafka by the lander."
)
LAKE_INTERACTIVE = lake_spec(
    INTERACTIVE_TOPIC,
    "Interactive donations (boosts, the request queue, challenges, moments) and the refunds "
    "and chargebacks of their payments, landed from Kafka by the lander.",
)
LAKE_SPONSORSHIPS = lake_spec(
    SPONSORSHIPS_TOPIC, "Sponsored-content payments and their refunds, landed from Kafka by the lander."
)

PAYOUTS_TOPIC = "payouts"
LAKE_PAYOUTS = lake_spec(
    PAYOUTS_TOPIC, "Payout events (payout.scheduled) that the finance jobs emit, landed back by the lander."
)

# Every topic the lander lands, with its external asset; a test holds this equal to services.events.TOPICS,
# so a new topic cannot land unchecked.
LAKE_SPECS: dict[str, dg.AssetSpec] = {
    CHAT_TOPIC: LAKE_CHAT,
    DONATIONS_TOPIC: LAKE_DONATIONS,
    GIFTS_TOPIC: LAKE_GIFTS,
    INTERACTIVE_TOPIC: LAKE_INTERACTIVE,
    PAYOUTS_TOPIC: LAKE_PAYOUTS,
    SPONSORSHIPS_TOPIC: LAKE_SPONSORSHIPS,
    STREAMS_TOPIC: LAKE_STREAMS,
    SUBSCRIPTIONS_TOPIC: LAKE_SUBSCRIPTIONS,
    VIEWS_TOPIC: LAKE_VIEWS,
}


def offset_ranges_check(topic: str) -> dg.AssetChecksDefinition:
    """The overlap check of one topic's landed offset ranges, attached to that topic's lake asset."""

    @dg.asset_check(asset=LAKE_SPECS[topic].key, name=OFFSET_RANGES_DISJOINT)
    def _check(lake: LakeResource) -> dg.AssetCheckResult:
        """Landed offset ranges never overlap per topic, epoch and Kafka partition."""
        found = manifests(lake.path, topic)
        clashes = overlapping_ranges(found)
        return dg.AssetCheckResult(
            passed=not clashes,
            metadata={
                "manifests": len(found),
                "overlaps": len(clashes),
                "first_overlaps": [_describe(a, b) for a, b in clashes[:10]],
            },
        )

    return _check


LAKE_OFFSET_CHECKS: dict[str, dg.AssetChecksDefinition] = {
    topic: offset_ranges_check(topic) for topic in LAKE_SPECS
}
