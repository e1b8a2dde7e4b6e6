"""The S3-compatible recording store, against moto's S3 server: a test double speaking S3's real HTTP
protocol (SigV4, path-style URLs, XML answers) on a local port; boto3 talks to it exactly as to AWS or
MinIO, nothing in-process is patched.

- the store's put/get/list/delete and its key checks, over HTTP;
- retention pruning of recordings in a bucket;
- a missing bucket and refused credentials: a clear error that names what to fix (never a secret),
  the recording kept in staging, uploaded by the retry once the store is fixed;
- end to end: ffmpeg publishes to a node whose EFIR_RECORDINGS_URL is s3://, the broadcast becomes a VOD
  in the bucket, and ffprobe plays it through the node.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from ingest_node.db import make_engine, make_session_factory, migrate
from ingest_node.ingest.recordings import MANIFEST, VOD_PLAYLIST, RecordingService
from ingest_node.media.hls import MediaPlaylist, Segment, segment_uri
from ingest_node.media.recording import RECORD_PLAYLIST
from services.object_store import ObjectStoreUnavailable, S3Store, open_store
from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import FFMPEG, FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import ServerThread, running_node

ACCESS_KEY = "efir-test-access"
SECRET_KEY = "efir-test-secret-do-not-log"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server (a named test double for S3) on a free local port."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _client(endpoint: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def _bucket(endpoint: str, name: str) -> str:
    _client(endpoint).create_bucket(Bucket=name)  # type: ignore[attr-defined]
    return name


def _settings(tmp_path: Path, endpoint: str, url: str, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        recordings_url=url,
        s3_endpoint_url=endpoint,
        s3_access_key_id=SecretStr(ACCESS_KEY),
        s3_secret_access_key=SecretStr(SECRET_KEY),
        **extra,  # type: ignore[arg-type]
    )


def test_the_s3_store_puts_gets_lists_and_deletes_over_http(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = _bucket(s3_endpoint, "store-basics")
    store = open_store(f"s3://{bucket}/vods", _settings(tmp_path, s3_endpoint, ""))
    assert isinstance(store, S3Store) and store.url == f"s3://{bucket}/vods"
    source = tmp_path / "seg.ts"
    source.write_bytes(b"\x47" * 188 * 3)
    assert store.put_file("chan/b1/seg-000000.ts", source) == 564
    assert store.put_bytes("chan/b1/index.m3u8", b"#EXTM3U\n") == 8
    assert store.put_bytes("chan/b2/index.m3u8", b"#EXTM3U\n") == 8
    assert store.put_bytes("chanx/b1/index.m3u8", b"x") == 1  # shares a text prefix, not a folder
    assert store.get("chan/b1/seg-000000.ts") == b"\x47" * 564
    with pytest.raises(FileNotFoundError):
        store.get("chan/b1/missing.ts")
    assert list(store.list("chan")) == ["chan/b1/index.m3u8", "chan/b1/seg-000000.ts", "chan/b2/index.m3u8"]
    assert len(list(store.list())) == 4

    # The prefix is where the objects really are: another store on the bucket's root sees it.
    keys = [o["Key"] for o in _client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]  # type: ignore[attr-defined]
    assert "vods/chan/b1/seg-000000.ts" in keys

    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "", "a/.hidden", "a/b c"):
        with pytest.raises(ValueError):
            store.put_bytes(bad, b"x")
        with pytest.raises(ValueError):
            store.get(bad)

    assert store.delete_prefix("chan/b1/index.m3u8") == 1  # one object, as the local store does
    assert store.delete_prefix("chan") == 2
    assert store.delete_prefix("chan") == 0
    assert list(store.list()) == ["chanx/b1/index.m3u8"]


def _recording(store: object, channel: str, broadcast: str, ended: datetime) -> None:
    put = store.put_bytes  # type: ignore[attr-defined]
    put(f"{channel}/{broadcast}/index.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n")
    put(f"{channel}/{broadcast}/seg-000000.ts", b"\x47" * 188)
    manifest = {
        "channel_id": channel,
        "broadcast_id": broadcast,
        "duration_ms": 1000,
        "size_bytes": 188,
        "segments": 1,
        "ended_at": ended.isoformat(),
        "playlist_url": f"/vod/{channel}/{broadcast}/index.m3u8",
    }
    put(f"{channel}/{broadcast}/{MANIFEST}", json.dumps(manifest).encode())


def test_retention_prunes_recordings_in_a_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = _bucket(s3_endpoint, "retention")
    settings = _settings(tmp_path, s3_endpoint, f"s3://{bucket}/rec", recording_retention_days=7)
    service = RecordingService(settings, sessionmaker())  # pruning never touches the database
    now = datetime(2026, 6, 1, tzinfo=UTC)
    _recording(service.store, "chan", "old", now - timedelta(days=8))
    _recording(service.store, "chan", "recent", now - timedelta(days=6))
    service.store.put_bytes("chan/unfinished/seg-000000.ts", b"\x47" * 188)  # no manifest yet

    assert service.prune(now) == ["chan/old"]
    assert [r.broadcast_id for r in service.recordings("chan")] == ["recent"]
    assert not list(service.store.list("chan/old"))
    assert list(service.store.list("chan/unfinished")) == ["chan/unfinished/seg-000000.ts"]


@pytest.fixture
def sessions(fresh_db: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(data_dir=tmp_path, database_url=fresh_db)
    migrate(settings)
    engine = make_engine(settings)
    yield make_session_factory(engine)
    engine.dispose()


def _stage(service: RecordingService, channel: str, broadcast: str, seconds: int = 2) -> Path:
    """A staged recording as a worker leaves it: real MPEG-TS segments of 1 s and their playlist."""
    staging = service.staging_dir(channel, broadcast)
    staging.mkdir(parents=True)
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
            "-f", "segment", "-segment_time", "1", "-segment_format", "mpegts",
            str(staging / "seg-%06d.ts"),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    playlist = MediaPlaylist(path=staging / RECORD_PLAYLIST, target_seconds=1.0, window=None)
    origin = datetime.now(UTC)
    for n in range(seconds):
        path = staging / segment_uri(n)
        assert path.is_file()
        playlist.add(Segment(n, path.name, 1.0, float(n), origin, path.stat().st_size))
    return staging


def test_a_missing_bucket_is_a_clear_error_and_the_recording_waits_in_staging(
    s3_endpoint: str, tmp_path: Path, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, s3_endpoint, "s3://not-created-yet/rec")
    service = RecordingService(settings, sessions)
    staging = _stage(service, "chan", "b1")
    caplog.set_level(logging.INFO)

    with pytest.raises(ObjectStoreUnavailable, match=r"'not-created-yet'.*does not exist"):
        service.finalize("chan", "b1")
    assert sorted(p.name for p in staging.iterdir()) == [RECORD_PLAYLIST, "seg-000000.ts", "seg-000001.ts"]
    assert "NOT stored, kept in" in caplog.text and "does not exist" in caplog.text
    assert service.retry_pending() == []  # still no bucket: still staged
    assert staging.is_dir()

    first_segment = (staging / "seg-000000.ts").read_bytes()
    _bucket(s3_endpoint, "not-created-yet")
    (done,) = service.retry_pending()
    assert (done.channel_id, done.broadcast_id, done.segments) == ("chan", "b1", 2)
    assert not staging.exists()
    assert [r.broadcast_id for r in service.recordings("chan")] == ["b1"]
    vod = service.store.get(f"chan/b1/{VOD_PLAYLIST}").decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and "seg-000001.ts" in vod
    assert service.store.get("chan/b1/seg-000000.ts") == first_segment
    assert SECRET_KEY not in caplog.text


def test_refused_credentials_are_a_clear_error_that_never_shows_the_secret(
    s3_endpoint: str, tmp_path: Path, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    bucket = _bucket(s3_endpoint, "guarded")
    settings = _settings(tmp_path, s3_endpoint, f"s3://{bucket}/rec")
    service = RecordingService(settings, sessions)
    staging = _stage(service, "chan", "b2", seconds=1)
    caplog.set_level(logging.DEBUG)
    with (
        s3_auth_enforced(s3_endpoint),
        pytest.raises(ObjectStoreUnavailable, match="refused the credentials") as failure,
    ):
        service.finalize("chan", "b2")
    assert "EFIR_S3_SECRET_ACCESS_KEY" in str(failure.value)
    assert SECRET_KEY not in str(failure.value) and SECRET_KEY not in caplog.text
    assert SECRET_KEY not in repr(settings)
    assert (staging / "seg-000000.ts").is_file()

    (done,) = service.retry_pending()  # credentials accepted again
    assert done.broadcast_id == "b2" and not staging.exists()


class s3_auth_enforced:
    """moto checks credentials inside the block (no IAM user exists, so every key is refused)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()

    def __exit__(self, *exc: object) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"inf").raise_for_status()


@pytest.fixture(scope="module")
def s3_node(
    node_settings: Settings, sandbox: ServerThread, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    bucket = _bucket(s3_endpoint, "node-recordings")
    port, rtmp_port = free_port(), free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "s3-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "data_dir": tmp_path_factory.mktemp("s3-node"),
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": rtmp_port,
            "hls_dir": tmp_path_factory.mktemp("s3-live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "remux",
            "stream_reconnect_grace_seconds": 0.5,
            "recordings_url": f"s3://{bucket}/vod",
            "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": SecretStr(ACCESS_KEY),
            "s3_secret_access_key": SecretStr(SECRET_KEY),
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


@pytest.mark.slow
@pytest.mark.db
def test_a_broadcast_is_recorded_into_the_bucket_and_plays_through_the_node(
    s3_node: IngestNode, s3_endpoint: str
) -> None:
    channel_id, key = s3_node.channel_with_key()
    publisher = s3_node.publish(key, seconds=3)
    # The stream is listed as live a moment before its broadcast id is assigned: wait for both.
    stream = wait_until(
        lambda: (live := s3_node.live(channel_id)) is not None and live.broadcast_id and live,
        "the stream to go live",
    )
    broadcast_id = stream.broadcast_id
    code, err = finish(publisher)
    assert code == 0, err

    def listed() -> list[dict[str, object]]:
        with s3_node.node.client() as http:
            found = http.get(f"/api/v1/channels/{channel_id}/recordings")
        assert found.status_code == 200, found.text
        return [r for r in found.json() if r["broadcast_id"] == broadcast_id]

    (recording,) = wait_until(listed, "the recording to be listed")
    objects = _client(s3_endpoint).list_objects_v2(  # type: ignore[attr-defined]
        Bucket="node-recordings", Prefix=f"vod/{channel_id}/{broadcast_id}/"
    )["Contents"]
    names = {o["Key"].rsplit("/", 1)[1] for o in objects}
    assert {VOD_PLAYLIST, MANIFEST} <= names and sum(n.endswith(".ts") for n in names) == recording[
        "segments"
    ]

    url = f"{s3_node.node.url}{recording['playlist_url']}"
    with s3_node.node.client() as http:
        answer = http.get(str(recording["playlist_url"]))
    assert answer.status_code == 200 and "#EXT-X-ENDLIST" in answer.text
    probe = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    probed = json.loads(probe.stdout)
    assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}
    assert abs(float(probed["format"]["duration"]) - 3) < 1.5
    assert not s3_node.service.recordings.staging_dir(channel_id, broadcast_id).exists()
