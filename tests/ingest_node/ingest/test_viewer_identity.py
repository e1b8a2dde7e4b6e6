"""Viewer identity on HLS: a chat token on the master playlist binds the session to the user, every
heartbeat of that session carries the user id (on the real broker), and the loyalty marts built from
those very events award the viewer watch points. Forged and expired tokens leave playback anonymous and
working, and the token never reaches a log, a playlist or an event."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.loyalty import LOYALTY_ASSETS
from assets.resources import LakeResource, MartsResource
from assets.revenue import SOURCE_MART_ASSETS, streamer_revenue_daily
from assets.stream_analytics import STREAM_ANALYTICS_ASSETS, LoyaltyRulesResource
from ingest_node.ingest.viewers import SessionIdentities
from ingest_node.log_redaction import RedactTokens
from services.chat.tokens import HmacTokens
from services.events import Envelope
from services.lake import mart_partition_path
from services.marts import LOYALTY_POINTS_MART
from tests.fixture_lake import land
from tests.ingest_node.ingest.conftest import IngestNode
from tests.ingest_node.live_node import read_events

pytestmark = pytest.mark.db

MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\nsource/index.m3u8\n"
MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nseg_000000.ts\n"
SEGMENT = bytes(range(256)) * 40
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"}


@pytest.fixture
def channel(ingest_node: IngestNode) -> str:
    channel_id = f"ch-{uuid.uuid4().hex[:12]}"
    root = ingest_node.hls_dir(channel_id)
    (root / "source").mkdir(parents=True)
    (root / "master.m3u8").write_text(MASTER)
    (root / "source" / "index.m3u8").write_text(MEDIA)
    (root / "source" / "seg_000000.ts").write_bytes(SEGMENT)
    return channel_id


def tokens(ingest_node: IngestNode, clock: float | None = None) -> HmacTokens:
    """The node's own token scheme under its secret (a clock in the past makes expired tokens)."""
    secret = ingest_node.settings.chat_token_secret
    return HmacTokens(secret, clock=(lambda: clock)) if clock is not None else HmacTokens(secret)


def watch(ingest_node: IngestNode, channel: str, **master_kw: object) -> tuple[str, str, int]:
    """Open the master playlist (with `master_kw`), then play like a player that drops cookies: a fresh
    client fetching the media playlist and three segments with only `?session=`. Returns the session,
    the master playlist's text and the bytes fetched after it."""
    with ingest_node.node.client(headers=BROWSER) as http:
        master = http.get(f"/live/{channel}/master.m3u8", **master_kw)  # type: ignore[arg-type]
        assert master.status_code == 200, master.text
        session = master.text.split("?session=")[1].split()[0]
    with ingest_node.node.client(headers=BROWSER) as player:
        fetched = len(player.get(f"/live/{channel}/source/index.m3u8", params={"session": session}).content)
        for _ in range(3):
            answer = player.get(f"/live/{channel}/source/seg_000000.ts", params={"session": session})
            assert answer.status_code == 200 and answer.content == SEGMENT
            fetched += len(answer.content)
    return session, master.text, fetched


def node_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the node (not the test's own HTTP client, which logs its URLs) wrote to the log."""
    mine = ("ingest_node", "services", "uvicorn")
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(mine))


def heartbeats(ingest_node: IngestNode, session: str, total: int) -> list[Envelope]:
    def done(events: list[Envelope]) -> bool:
        return sum(int(e.payload["bytes"]) for e in events if e.payload["session_id"] == session) >= total

    found = read_events(ingest_node.settings, done, topic="views")
    beats = [e for e in found if e.payload["session_id"] == session]
    assert sum(int(e.payload["bytes"]) for e in beats) == total
    return beats


def loyalty_points(lake: Path, beats: list[Envelope]) -> dict[tuple[str, str], int]:
    """Land the broker's heartbeats as the lander does and materialise the audience and loyalty marts."""
    land(lake, beats, topic="views")
    marts = lake.parent / "marts"
    points: dict[tuple[str, str], int] = {}
    for day in sorted({e.occurred_at.date() for e in beats}):
        result = dg.materialize(
            [*SOURCE_MART_ASSETS, streamer_revenue_daily, *STREAM_ANALYTICS_ASSETS, *LOYALTY_ASSETS],
            partition_key=day.isoformat(),
            resources={
                "lake": LakeResource(root=str(lake)),
                "marts": MartsResource(root=str(marts)),
                "loyalty_rules": LoyaltyRulesResource(expiry_days=90, max_sessions_per_ip=3),
            },
        )
        assert result.success
        path = mart_partition_path(marts, LOYALTY_POINTS_MART, day)
        for row in pq.read_table(path).to_pylist():
            key = (row["channel_id"], row["user_id"])
            points[key] = points.get(key, 0) + row["watch_points"]
    return points


def test_a_signed_in_viewer_is_identified_once_and_earns_watch_points(
    ingest_node: IngestNode, channel: str, lake: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = f"viewer-{uuid.uuid4().hex[:8]}"
    token, _ = tokens(ingest_node).issue(user, "Viewer", 600)
    with caplog.at_level(logging.DEBUG):
        session, master, fetched = watch(ingest_node, channel, params={"token": token})
    assert token not in master and "token" not in master  # never echoed into the playlists
    assert token not in node_log(caplog)
    beats = heartbeats(ingest_node, session, fetched)
    assert beats and {e.user_id for e in beats} == {user}
    assert all(token not in e.to_json().decode() for e in beats)
    # node -> broker -> lake -> loyalty: the identified session's minute(s) of playback earn points.
    points = loyalty_points(lake, beats)
    assert set(points) == {(channel, user)} and points[(channel, user)] >= 1


def test_a_bearer_header_identifies_too_and_anonymous_sessions_stay_anonymous(
    ingest_node: IngestNode, channel: str
) -> None:
    token, _ = tokens(ingest_node).issue("bearer-user", "B", 600)
    identified, _, fetched = watch(ingest_node, channel, headers={"Authorization": f"Bearer {token}"})
    assert {e.user_id for e in heartbeats(ingest_node, identified, fetched)} == {"bearer-user"}
    anonymous, _, fetched = watch(ingest_node, channel)
    assert {e.user_id for e in heartbeats(ingest_node, anonymous, fetched)} == {None}


@pytest.mark.parametrize("kind", ["forged", "expired", "garbage"])
def test_a_bad_token_plays_anonymously_and_logs_why_without_the_token(
    ingest_node: IngestNode, channel: str, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    if kind == "forged":
        good, _ = tokens(ingest_node).issue("victim", "V", 600)
        body, signature = good.split(".")
        token = f"{body}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
        reason = "bad token signature"
    elif kind == "expired":
        token, _ = tokens(ingest_node, clock=time.time() - 7200).issue("late", "L", 60)
        reason = "token expired"
    else:
        token, reason = "not a token at all" * 200, "malformed token"
    with caplog.at_level(logging.INFO, logger="ingest_node.routes.hls"):
        session, master, fetched = watch(ingest_node, channel, params={"token": token})
    refused = [r.getMessage() for r in caplog.records if "viewer token refused" in r.getMessage()]
    assert refused and reason in refused[0] and channel in refused[0]
    assert token not in node_log(caplog) and token not in master
    assert {e.user_id for e in heartbeats(ingest_node, session, fetched)} == {None}


def test_a_known_session_id_never_carries_someone_elses_identity(
    ingest_node: IngestNode, channel: str
) -> None:
    issuer = tokens(ingest_node)
    first, _ = issuer.issue("first", "F", 600)
    second, _ = issuer.issue("second", "S", 600)
    session, _, _ = watch(ingest_node, channel, params={"token": first})
    with ingest_node.node.client(headers=BROWSER) as http:
        # The same user reopening keeps the session.
        same = http.get(f"/live/{channel}/master.m3u8", params={"session": session, "token": first})
        assert f"?session={session}" in same.text
        # Another user (or a bad token) presenting that session id gets a fresh session instead.
        other = http.get(f"/live/{channel}/master.m3u8", params={"session": session, "token": second})
        forged = http.get(f"/live/{channel}/master.m3u8", params={"session": session, "token": "x.y"})
    for answer in (other, forged):
        assert answer.status_code == 200 and f"?session={session}" not in answer.text
    identities = ingest_node.service.viewers.identities
    assert identities.user_of(channel, session) == "first"
    fresh = other.text.split("?session=")[1].split()[0]
    assert identities.user_of(channel, fresh) == "second"
    assert identities.user_of(channel, forged.text.split("?session=")[1].split()[0]) is None


def test_bindings_are_forgotten_when_idle_and_bounded_in_number() -> None:
    now = [1000.0]
    ids = SessionIdentities(idle_seconds=60, max_entries=2, clock=lambda: now[0])
    ids.bind("c", "s1", "u1")
    ids.bind("c", "s2", "u2")
    now[0] += 50
    assert ids.user_of("c", "s1") == "u1"  # a lookup refreshes s1
    assert ids.user_of("other-channel", "s1") is None  # bound per channel
    ids.bind("c", "s3", "u3")  # over the cap: the least recently used (s2) goes
    assert (ids.user_of("c", "s2"), len(ids)) == (None, 2)
    now[0] += 61
    assert ids.expire() == 2 and len(ids) == 0


def test_access_log_lines_hide_url_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/live/c/master.m3u8?session=abc-12345&token=SECRET.SIG", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    line = record.getMessage()
    assert "SECRET" not in line and "token=***" in line and "session=abc-12345" in line
