"""The hash stored with an Idempotency-Key is over what the client sent, so adding a field with a default
to a request schema (the donation's `tts: bool = True`) never changes the hash of a request that does not
send it: its retry across that upgrade replays instead of being refused as another request."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, create_model

from ingest_node.idempotency import request_digest, request_hash
from ingest_node.routes.sponsorships import RefundIn
from ingest_node.schemas import DonationIn

OLD_REQUEST: dict[str, Any] = {
    "channel_id": "speedrun",
    "amount_minor": 50_000,
    "currency": "RUB",
    "message": "gg",
    "payment_token": "tok_success",
}


def _before_tts() -> type[BaseModel]:
    """DonationIn as it was before `tts` was added: every other field, same types and defaults."""
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in DonationIn.model_fields.items() if n != "tts"}
    return create_model("DonationInBeforeTts", __config__=DonationIn.model_config, **fields)


def test_a_defaulted_field_added_later_leaves_an_old_requests_hash_alone() -> None:
    before = request_digest(_before_tts().model_validate(OLD_REQUEST))
    after = request_digest(DonationIn.model_validate(OLD_REQUEST))
    assert after.value == before.value == request_hash(OLD_REQUEST)  # what the client sent, no defaults
    assert after.matches(before.value)


def test_sending_the_new_field_is_another_request() -> None:
    old = request_digest(DonationIn.model_validate(OLD_REQUEST)).value
    opted_out = request_digest(DonationIn.model_validate({**OLD_REQUEST, "tts": False}))
    assert opted_out.value != old and not opted_out.matches(old)
    # Sending the default's value is sending something too: only a byte-for-byte retry replays.
    assert request_digest(DonationIn.model_validate({**OLD_REQUEST, "tts": True})).value != old


def test_keys_stored_before_this_rule_still_replay() -> None:
    """Before, the hash was over the parsed model with its defaults; a retry across the deployment that
    changed the rule matches that stored hash too (and nothing else does)."""
    parsed = DonationIn.model_validate(OLD_REQUEST)
    stored_by_the_old_node = request_hash(parsed.model_dump(mode="json"))
    assert request_digest(parsed).matches(stored_by_the_old_node)
    assert not request_digest(DonationIn.model_validate({**OLD_REQUEST, "message": "other"})).matches(
        stored_by_the_old_node
    )
    assert not request_digest(parsed).matches(None)


def test_path_context_is_part_of_the_request() -> None:
    body = RefundIn.model_validate({"reason": "the integration was not aired"})
    assert request_digest(body, sponsorship_id="a").value != request_digest(body, sponsorship_id="b").value
