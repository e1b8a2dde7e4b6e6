"""The batch client of the social service against its test double (a real HTTP server speaking the
documented contract): friends, unknown users, and every kind of failure counted, never raised."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.settings import Settings
from services.social import SocialClient
from tests.conftest import free_port
from tests.ingest_node.chat.social_double import SocialServiceDouble

TOKEN = "social-batch-test-token"


@pytest.fixture(scope="module")
def social() -> Iterator[SocialServiceDouble]:
    double = SocialServiceDouble(free_port(), TOKEN, slow_seconds=1.0).start()
    double.friends = {
        "u1": ["u2", "u3", "u1"],  # the service listing someone as their own friend is dropped
        "u2": ["u1"],
        "u3": ["u1", 7],  # type: ignore[list-item]  # a numeric id is read as text
        "user/with space": ["u1"],
    }
    double.broken = {"broken"}
    double.garbled = {"garbled"}
    double.slow = {"slow"}
    yield double
    double.stop()


def test_friends_of_many_reads_friends_and_counts_failures(
    social: SocialServiceDouble, caplog: pytest.LogCaptureFixture
) -> None:
    client = SocialClient(social.url + "/", SecretStr(TOKEN), timeout=0.3, concurrency=3)
    asked = ["u1", "u2", "u3", "user/with space", "stranger", "broken", "garbled", "slow", "u1"]
    with caplog.at_level(logging.WARNING, logger="services.social"):
        batch = client.friends_of_many(asked)
    assert batch.friends == {
        "u1": frozenset({"u2", "u3"}),
        "u2": frozenset({"u1"}),
        "u3": frozenset({"u1", "7"}),
        "user/with space": frozenset({"u1"}),
        "stranger": frozenset(),  # 404: unknown, no friends (not a failure)
    }
    assert (batch.asked, batch.unknown, batch.failed) == (8, 1, 3)  # u1 is asked once
    assert dict(batch.errors) == {"status 500": 1, "malformed": 1, "timeout": 1}
    assert "friends of 3 of 8 viewers unavailable" in caplog.text
    # Every request carried the service token; no log line and no repr shows it.
    assert all(auth == f"Bearer {TOKEN}" for _, auth in social.requests)
    assert "/v1/users/user%2Fwith%20space/friends" in {path for path, _ in social.requests}
    assert TOKEN not in caplog.text and TOKEN not in repr(client)


def test_a_wrong_token_fails_each_viewer_without_raising(social: SocialServiceDouble) -> None:
    batch = SocialClient(social.url, SecretStr("wrong"), timeout=2.0).friends_of_many(["u1", "u2"])
    assert (batch.friends, batch.failed, dict(batch.errors)) == ({}, 2, {"status 401": 2})


def test_an_unreachable_service_is_a_counted_failure() -> None:
    batch = SocialClient(f"http://127.0.0.1:{free_port()}", SecretStr(TOKEN), timeout=2.0).friends_of_many(
        ["u1"]
    )
    assert batch.failed == 1 and batch.friends == {} and set(batch.errors) == {"ConnectError"}


def test_the_client_comes_from_the_chat_settings() -> None:
    assert SocialClient.from_settings(Settings(chat_social_url=None)) is None
    client = SocialClient.from_settings(
        Settings(
            chat_social_url="http://social.example/",
            chat_social_token=SecretStr("s3cret"),
            social_graph_timeout_seconds=7.0,
        )
    )
    assert client is not None and client.base == "http://social.example" and client.timeout == 7.0
    assert "s3cret" not in repr(client)
    assert SocialClient("http://x", SecretStr("")).friends_of_many([]).asked == 0
    with pytest.raises(ValueError, match="concurrency"):
        SocialClient("http://x", SecretStr(""), concurrency=0)
