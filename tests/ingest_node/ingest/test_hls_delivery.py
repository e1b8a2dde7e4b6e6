"""HLS delivery from the node: MIME types, cache headers, CORS, refused paths, viewer sessions, and
`view.heartbeat` events summed in memory and flushed in batches (no database write per request)."""

from __future__ import annotations

import uuid

import pytest

from ingest_node.ingest.viewers import ViewerAggregator, user_agent_class
from ingest_node.money.donation_rules import fingerprint
from services.events import Envelope
from tests.ingest_node.ingest.conftest import IngestNode
from tests.ingest_node.live_node import read_events

pytestmark = pytest.mark.db

MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"\n'
    "source/index.m3u8\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=284x160,CODECS="avc1.42c00c,mp4a.40.2"\n'
    "160p/index.m3u8\n"
)
MEDIA = (
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
    '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:1.0,\nseg_000000.ts\n#EXTINF:1.0,\nseg_000001.m4s\n'
)
SEGMENT = bytes(range(256)) * 40


@pytest.fixture
def channel(ingest_node: IngestNode) -> str:
    """A channel with HLS files on disk, as a worker writes them."""
    channel_id = f"ch-{uuid.uuid4().hex[:12]}"
    root = ingest_node.hls_dir(channel_id)
    (root / "source").mkdir(parents=True)
    (root / "master.m3u8").write_text(MASTER)
    (root / "source" / "index.m3u8").write_text(MEDIA)
    (root / "source" / "seg_000000.ts").write_bytes(SEGMENT)
    (root / "source" / "seg_000001.m4s").write_bytes(SEGMENT[:1000])
    (root / "source" / "init.mp4").write_bytes(b"\x00" * 100)
    return channel_id


def test_playlists_and_segments_carry_mime_cache_and_cors_headers(
    ingest_node: IngestNode, channel: str
) -> None:
    with ingest_node.node.client() as http:
        master = http.get(f"/live/{channel}/master.m3u8")
        assert master.status_code == 200
        assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert master.headers["cache-control"] == "private, max-age=1"
        assert master.headers["access-control-allow-origin"] == "*"
        session = http.cookies["efir_session"]
        assert f"source/index.m3u8?session={session}" in master.text
        assert f"160p/index.m3u8?session={session}" in master.text
        assert 'CODECS="avc1.64001e,mp4a.40.2"' in master.text

        media = http.get(f"/live/{channel}/source/index.m3u8", params={"session": session})
        assert media.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert media.headers["cache-control"] == "max-age=1"
        assert f"seg_000000.ts?session={session}" in media.text
        assert f'URI="init.mp4?session={session}"' in media.text

        ts = http.get(f"/live/{channel}/source/seg_000000.ts", params={"session": session})
        assert ts.status_code == 200 and ts.content == SEGMENT
        assert ts.headers["content-type"] == "video/mp2t"
        assert ts.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert ts.headers["access-control-allow-origin"] == "*"
        fmp4 = http.get(f"/live/{channel}/source/seg_000001.m4s", params={"session": session})
        assert fmp4.headers["content-type"] == "video/mp4"

        missing = http.get(f"/live/{channel}/source/seg_000099.ts")
        assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
        not_live = http.get("/live/no-such-channel/master.m3u8")
        assert not_live.status_code == 404 and "not live" in not_live.json()["detail"]

        preflight = http.options(
            f"/live/{channel}/source/seg_000000.ts",
            headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
        assert "Range" in preflight.headers["access-control-allow-headers"]


def test_a_given_session_is_kept_and_a_malformed_one_refused(ingest_node: IngestNode, channel: str) -> None:
    given = str(uuid.uuid4())
    with ingest_node.node.client() as http:
        kept = http.get(f"/live/{channel}/master.m3u8", params={"session": given})
        assert kept.status_code == 200 and f"?session={given}" in kept.text
        assert "efir_session" not in kept.headers.get("set-cookie", "")
        bad = http.get(f"/live/{channel}/master.m3u8", params={"session": "<script>"})
        assert bad.status_code == 400 and "malformed session" in bad.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/live/{c}/..%2F..%2Fnode.db",
        "/live/{c}/source/..%2Fmaster.m3u8",
        "/live/{c}/source/%2Fetc%2Fpasswd",
        "/live/{c}/..%2F..%2F/index.m3u8",
        "/live/{c}/source/passwd",
        "/live/{c}/source/seg.ts.exe",
        "/live/..%2F{c}/master.m3u8",
        "/live/{c}/../../node.db",
    ],
)
def test_paths_outside_the_hls_folder_are_refused(ingest_node: IngestNode, channel: str, path: str) -> None:
    with ingest_node.node.client() as http:
        answer = http.get(path.format(c=channel))
    assert answer.status_code in (400, 404, 422)
    assert SEGMENT not in answer.content and b"SQLite" not in answer.content


def _heartbeats(ingest_node: IngestNode, session: str, total: int) -> list[Envelope]:
    def done(events: list[Envelope]) -> bool:
        sent = sum(int(e.payload["bytes"]) for e in events if e.payload["session_id"] == session)
        return sent >= total

    found = read_events(ingest_node.settings, done, topic="views")
    return [e for e in found if e.payload["session_id"] == session]


def test_viewing_emits_heartbeats_per_session_with_bytes_agent_class_and_region(
    ingest_node: IngestNode, channel: str
) -> None:
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
    headers = {"User-Agent": agent, "X-Viewer-Region": "DE"}
    with ingest_node.node.client(headers=headers) as http:
        session = http.get(f"/live/{channel}/master.m3u8").cookies["efir_session"]
        playlist = http.get(f"/live/{channel}/source/index.m3u8?session={session}")
        sizes = [len(playlist.content)]
        for _ in range(3):
            sizes.append(len(http.get(f"/live/{channel}/source/seg_000000.ts?session={session}").content))
    beats = _heartbeats(ingest_node, session, sum(sizes))
    assert sum(e.payload["bytes"] for e in beats) == sum(sizes)
    assert sum(e.payload["segments"] for e in beats) == 3
    assert sum(e.payload["requests"] for e in beats) == 4
    for beat in beats:
        assert beat.event_type == "view.heartbeat" and beat.channel_id == channel
        assert beat.payload["rendition"] == "source"
        assert beat.payload["user_agent_class"] == "mobile"
        assert beat.payload["region"] == "DE"
        # The client's address travels only as its fingerprint (the test client connects from loopback).
        assert beat.payload["ip_hash"] == fingerprint("127.0.0.1", ingest_node.settings)


def test_the_aggregator_writes_nothing_until_it_flushes_then_one_row_per_session(
    ingest_node: IngestNode,
) -> None:
    node = ingest_node.node
    aggregator = ViewerAggregator(ingest_node.settings, node.sessions)  # not started: flushed by hand
    session = str(uuid.uuid4())
    for _ in range(200):
        aggregator.record(
            channel_id="ch-agg",
            session_id=session,
            rendition="720p",
            size=1000,
            segment=True,
            user_agent="VLC/3.0.20 LibVLC/3.0.20",
            region=None,
        )
    count = "SELECT count(*) FROM outbox WHERE value LIKE :s"
    assert node.scalar(count, s=f"%{session}%") == 0
    assert aggregator.flush() == 1
    assert node.scalar(count, s=f"%{session}%") == 1
    row = node.column("SELECT value FROM outbox WHERE value LIKE :s", s=f"%{session}%")[0]
    payload = Envelope.from_json(row).payload
    assert (payload["bytes"], payload["segments"], payload["user_agent_class"]) == (200_000, 200, "player")
    assert aggregator.flush() == 0


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
            "browser",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
            "mobile",
        ),
        (
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 SamsungBrowser/4.0 TV Safari/537.36",
            "tv",
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0 Safari/537.36", "headless"),
        ("Lavf/61.7.100", "player"),
        ("", "other"),
        (None, "other"),
        ("something-else/1.0", "other"),
    ],
)
def test_user_agent_classes(agent: str | None, kind: str) -> None:
    assert user_agent_class(agent) == kind
