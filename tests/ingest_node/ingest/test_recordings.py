"""Recordings and thumbnails: a real publish becomes a VOD that ffprobe plays over HTTP from the node,
the source untouched (remuxed, never re-encoded); retention prunes old recordings; a live channel
has a JPEG thumbnail.
"""

from __future__ import annotations

import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.orm import sessionmaker

from ingest_node.ingest.recordings import MANIFEST, RecordingService
from services.events import Envelope
from services.object_store import LocalStore, ObjectStoreError, open_store
from services.settings import Settings
from tests.ingest_node.ingest.conftest import FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import read_events

PUBLISHED_SECONDS = 4.0


def _probe(url: str, entries: str) -> dict[str, object]:
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", entries, "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    result: dict[str, object] = json.loads(probe.stdout)
    return result


@pytest.mark.slow
@pytest.mark.db
def test_a_broadcast_becomes_a_vod_of_the_source_and_has_a_live_thumbnail(ingest_node: IngestNode) -> None:
    channel_id, key = ingest_node.channel_with_key()
    publisher = ingest_node.publish(key, seconds=PUBLISHED_SECONDS)
    thumb = ingest_node.hls_dir(channel_id) / "thumbnail.jpg"
    wait_until(thumb.exists, "the live thumbnail")
    stream = ingest_node.live(channel_id)
    assert stream is not None, "the thumbnail came after the stream ended"
    broadcast_id = stream.broadcast_id

    with ingest_node.node.client() as http:
        answer = http.get(f"/live/{channel_id}/thumbnail.jpg")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/jpeg"
    assert "max-age=" in answer.headers["cache-control"]
    assert answer.headers["access-control-allow-origin"] == "*"
    image = Image.open(io.BytesIO(answer.content))
    assert image.format == "JPEG" and image.size == (640, 360)  # the source's size
    image.verify()

    code, err = finish(publisher)
    assert code == 0, err

    def listed() -> list[dict[str, object]]:
        with ingest_node.node.client() as http:
            found = http.get(f"/api/v1/channels/{channel_id}/recordings")
        assert found.status_code == 200, found.text
        return [r for r in found.json() if r["broadcast_id"] == broadcast_id]

    (recording,) = wait_until(listed, "the recording to be listed")
    playlist_url = f"/vod/{channel_id}/{broadcast_id}/index.m3u8"
    assert recording["playlist_url"] == playlist_url
    with ingest_node.node.client() as http:
        answer = http.get(playlist_url)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert "max-age=" in answer.headers["cache-control"]
    text = answer.text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(segments) == recording["segments"] >= 2

    url = f"{ingest_node.node.url}{playlist_url}"
    probed = _probe(url, "format=duration:stream=codec_type,codec_name,width,height")
    duration = float(probed["format"]["duration"])  # type: ignore[index]
    assert abs(duration - PUBLISHED_SECONDS) < 1.5, duration
    assert abs(recording["duration_ms"] / 1000 - PUBLISHED_SECONDS) < 1.5
    streams = {s["codec_type"]: s for s in probed["streams"]}  # type: ignore[attr-defined]
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
    assert streams["audio"]["codec_name"] == "aac"

    with ingest_node.node.client() as http:
        first = http.get(f"/vod/{channel_id}/{broadcast_id}/{segments[0]}")
    assert first.status_code == 200
    assert first.headers["content-type"] == "video/mp2t"
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The publisher's own encoder settings (x264 ultrafast: no CABAC) are in the recording: the
    # source's packets, not a re-encode.
    assert b"x264 - core" in first.content and b"cabac=0" in first.content
    assert len(first.content) < recording["size_bytes"]

    events = read_events(
        ingest_node.settings,
        lambda found: any(
            e.event_type == "recording.ready" and e.payload.get("broadcast_id") == broadcast_id for e in found
        ),
        topic="streams",
    )
    (ready,) = [
        e for e in events if e.event_type == "recording.ready" and e.payload["broadcast_id"] == broadcast_id
    ]
    assert isinstance(ready, Envelope) and ready.channel_id == channel_id
    assert ready.payload["size_bytes"] == recording["size_bytes"] > 0
    assert ready.payload["duration_ms"] == recording["duration_ms"]
    assert ready.payload["playlist_url"] == playlist_url
    assert not ingest_node.service.recordings.staging_dir(channel_id, broadcast_id).exists()


@pytest.mark.slow
@pytest.mark.db
def test_vod_and_thumbnail_requests_that_do_not_fit_are_refused(ingest_node: IngestNode) -> None:
    channel_id = ingest_node.node.new_channel()
    with ingest_node.node.client() as http:
        assert http.get(f"/live/{channel_id}/thumbnail.jpg").status_code == 404  # not live
        assert http.get("/api/v1/channels/no-such-channel/recordings").status_code == 404
        assert http.get(f"/api/v1/channels/{channel_id}/recordings").json() == []
        assert http.get(f"/vod/{channel_id}/nothing-here/index.m3u8").status_code == 404
        assert http.get(f"/vod/{channel_id}/b1/..%2F..%2Fnode.db").status_code in (400, 404)
        assert http.get(f"/vod/{channel_id}/b1/recording.json").status_code == 400
        assert http.get(f"/vod/{channel_id}/b1/seg.mp4").status_code == 400
        assert http.get("/healthz").status_code == 200


def _recording(store: LocalStore, channel: str, broadcast: str, ended: datetime) -> None:
    store.put_bytes(f"{channel}/{broadcast}/index.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n")
    store.put_bytes(f"{channel}/{broadcast}/seg-000000.ts", b"\x47" * 188)
    manifest = {
        "channel_id": channel,
        "broadcast_id": broadcast,
        "duration_ms": 1000,
        "size_bytes": 188,
        "segments": 1,
        "ended_at": ended.isoformat(),
        "playlist_url": f"/vod/{channel}/{broadcast}/index.m3u8",
    }
    store.put_bytes(f"{channel}/{broadcast}/{MANIFEST}", json.dumps(manifest).encode())


def test_retention_prunes_recordings_older_than_the_configured_days(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, recording_retention_days=7)
    service = RecordingService(settings, sessionmaker())  # pruning never touches the database
    store = service.store
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "recordings").resolve()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    _recording(store, "chan", "old", now - timedelta(days=8))
    _recording(store, "chan", "recent", now - timedelta(days=6))
    store.put_bytes("chan/unfinished/seg-000000.ts", b"\x47" * 188)  # no manifest: being assembled

    assert service.prune(now) == ["chan/old"]
    assert [r.broadcast_id for r in service.recordings("chan")] == ["recent"]
    assert not (store.root / "chan" / "old").exists()
    assert (store.root / "chan" / "unfinished" / "seg-000000.ts").exists()

    keep_all = RecordingService(settings.model_copy(update={"recording_retention_days": 0}), sessionmaker())
    assert keep_all.prune(now + timedelta(days=3650)) == []
    assert [r.broadcast_id for r in keep_all.recordings("chan")] == ["recent"]


def test_a_broadcast_without_segments_leaves_no_recording(tmp_path: Path) -> None:
    service = RecordingService(Settings(data_dir=tmp_path), sessionmaker())
    staging = service.staging_dir("chan", "b1")
    staging.mkdir(parents=True)
    assert service.finalize("chan", "b1") is None
    assert not staging.exists()
    assert service.recordings("chan") == []


def test_the_object_store_refuses_keys_that_leave_it_and_unknown_urls(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "", "a/.hidden", "a/b c"):
        with pytest.raises(ValueError):
            store.put_bytes(bad, b"x")
        with pytest.raises(ValueError):
            store.get(bad)
    assert not (tmp_path / "x").exists()
    assert store.put_bytes("a/b.ts", b"xyz") == 3 and store.get("a/b.ts") == b"xyz"
    with pytest.raises(FileNotFoundError):
        store.get("a/missing.ts")
    assert list(store.list("a")) == ["a/b.ts"]
    assert store.delete_prefix("a") == 1 and list(store.list()) == []
    with pytest.raises(ObjectStoreError, match="bucket"):
        open_store("s3:///prefix")
    with pytest.raises(ObjectStoreError, match="scheme"):
        open_store("ftp://host/x")
