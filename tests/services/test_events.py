from datetime import UTC, datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from services.events import (
    PAYLOADS,
    TOPICS,
    DonationProcessed,
    Envelope,
    arrow_schema,
    envelope_from_row,
    to_row,
)
from services.ids import uuid7


def _processed() -> Envelope:
    payload = DonationProcessed(
        donation_id="d1",
        payment_id="p1",
        amount_minor=45000,
        currency="RUB",
        donor_name=None,
        message="привет",
        settled_at=datetime(2026, 11, 28, 12, tzinfo=UTC),
    )
    return Envelope.wrap(payload, channel_id="chan", node_id="node-1")


def test_json_round_trip_keeps_every_field() -> None:
    env = _processed()
    back = Envelope.from_json(env.to_json())
    assert back == env
    assert back.topic == "donations"
    assert isinstance(back.typed_payload(), DonationProcessed)


def test_event_ids_are_uuid7_and_sort_by_time() -> None:
    a, b = uuid7(), uuid7()
    assert a.version == 7 and b.version == 7
    assert str(a) <= str(b) or a.int >> 80 == b.int >> 80


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"event_type": "donation.processed"}',
        _processed().to_json().replace(b'"donation.processed"', b'"donation.unknown"'),
        _processed().to_json().replace(b'"amount_minor":45000', b'"amount_minor":"lots"'),
        _processed().to_json().replace(b'"currency":"RUB"', b'"currency":"XXX"'),
    ],
)
def test_malformed_events_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json(raw)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope(
            event_type="donation.created",
            occurred_at=datetime(2026, 1, 1),
            channel_id="c",
            node_id="n",
            payload={},
        )


def test_row_matches_the_typed_arrow_schema_and_round_trips() -> None:
    env = _processed()
    row = to_row(env, partition=2, offset=41)
    table = pa.Table.from_pylist([row], schema=arrow_schema("donations"))
    assert table.column("kafka_offset").to_pylist() == [41]
    assert table.schema.field("amount_minor").type == pa.int64()
    restored = Envelope.model_validate(envelope_from_row(table.to_pylist()[0]))
    assert restored == env


def test_every_event_type_belongs_to_a_known_topic() -> None:
    assert {cls.topic for cls in PAYLOADS.values()} == set(TOPICS)
    for topic in TOPICS:
        names = arrow_schema(topic).names
        assert names[0] == "event_id" and names[-2:] == ["kafka_partition", "kafka_offset"]


def test_interactive_reversals_share_a_public_base_with_unchanged_schemas() -> None:
    """`InteractiveReversal` is public (the node types its reversal table with it); renaming it from
    `_InteractiveReversal` must not touch the wire: same event types, topic and payload fields."""
    from services.events import (
        BoostChargedBack,
        BoostRefunded,
        InteractiveReversal,
        RequestChargedBack,
        RequestRefunded,
    )

    common = {
        "payment_id", "amount_minor", "currency", "settled_at", "reason",
        "streamer_share_minor", "platform_fee_minor", "charge_id", "payer_id",
    }  # fmt: skip
    expected = {
        BoostRefunded: ("boost.refunded", common | {"boost_id"}),
        BoostChargedBack: ("boost.charged_back", common | {"boost_id"}),
        RequestRefunded: ("request.refunded", common | {"request_id"}),
        RequestChargedBack: ("request.charged_back", common | {"request_id"}),
    }
    for cls, (event_type, fields) in expected.items():
        assert issubclass(cls, InteractiveReversal)
        assert cls.event_type == event_type and PAYLOADS[event_type] is cls
        assert cls.topic == "interactive"
        assert set(cls.model_fields) == fields
