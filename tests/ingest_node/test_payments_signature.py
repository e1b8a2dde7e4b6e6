"""The webhook signature scheme shared by the node and the sandbox provider."""

from __future__ import annotations

import pytest

from services.payments import SignatureError, sign, verify

BODY = b'{"id": "evt_1"}'


def test_a_signature_verifies_and_returns_its_timestamp() -> None:
    header = sign("s3cret", BODY, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("s3cret", BODY, header, tolerance=300, now=1_700_000_100) == 1_700_000_000


def test_any_of_several_signatures_may_match_for_key_rotation() -> None:
    good = sign("new", BODY, 1000).split(",")[1]
    header = f"t=1000,v1={'0' * 64},{good}"
    assert verify("new", BODY, header, tolerance=10, now=1000) == 1000


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        ("t=abc,v1=00", "timestamp"),
        ("t=1000", "no v1"),
        (sign("other", BODY, 1000), "does not match"),
        (sign("s3cret", BODY + b" ", 1000).replace("t=1000", "t=1000"), "does not match"),
        (sign("s3cret", BODY, 500), "tolerance"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(header: str | None, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify("s3cret", BODY, header, tolerance=300, now=1000)
