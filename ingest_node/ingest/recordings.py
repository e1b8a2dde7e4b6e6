"""Recordings: a finished broadcast's source segments become a VOD in the recording store.

While a broadcast is live its worker keeps every source segment in a staging folder
(`ingest_node.media.recording`). When the broadcast ends, `finalize` moves them into the store named
by EFIR_RECORDINGS_URL under `<channel>/<broadcast>/`, with a VOD playlist of its own
(`#EXT-X-PLAYLIST-TYPE:VOD`, `#EXT-X-ENDLIST`) and a `recording.json` manifest (duration, size,
times), then emits `recording.ready` through the outbox. The manifest is written last: a recording
without one is incomplete and is neither listed nor served. `prune` deletes recordings older than
EFIR_RECORDING_RETENTION_DAYS.

A store that fails (S3 unreachable, wrong credentials, no such bucket) loses nothing: the staging
folder stays as it was, the failure is logged with what to fix, and `retry_pending` (run at every
node start) finalizes every staged broadcast that is not live. Uploading is idempotent (same keys,
same bytes; the manifest last), so a retry after a half-finished upload simply completes it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ingest_node.media.hls import MediaPlaylist, Segment
from ingest_node.media.recording import RECORD_PLAYLIST
from ingest_node.outbox import enqueue
from services.events import Envelope, RecordingReady
from services.object_store import ObjectStore, check_key, open_store
from services.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "recording.json"
VOD_PLAYLIST = "index.m3u8"


@dataclass(frozen=True)
class RecordingInfo:
    channel_id: str
    broadcast_id: str
    duration_ms: int
    size_bytes: int
    segments: int
    ended_at: str  # ISO 8601, UTC
    playlist_url: str


def vod_path(channel_id: str, broadcast_id: str) -> str:
    return f"/vod/{channel_id}/{broadcast_id}/{VOD_PLAYLIST}"


class RecordingService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store: ObjectStore = open_store(settings.recordings_store_url, settings)

    def staging_dir(self, channel_id: str, broadcast_id: str) -> Path:
        return self.settings.recording_staging_root / channel_id / broadcast_id

    def finalize(self, channel_id: str, broadcast_id: str) -> RecordingInfo | None:
        """Turn the staged segments into a VOD and emit `recording.ready`; None when nothing was
        recorded (a broadcast that never produced a segment)."""
        staging = self.staging_dir(channel_id, broadcast_id)
        playlist_file = staging / RECORD_PLAYLIST
        if not playlist_file.is_file():
            log.info("channel %s: broadcast %s left no recording", channel_id, broadcast_id)
            shutil.rmtree(staging, ignore_errors=True)
            return None
        playlist = MediaPlaylist.resume(playlist_file, self.settings.hls_segment_seconds, None)
        present = [s for s in playlist.segments if (staging / s.uri).is_file()]
        if not present:
            shutil.rmtree(staging, ignore_errors=True)
            return None
        prefix = f"{channel_id}/{broadcast_id}"
        size = 0
        try:
            for seg in present:
                seg.size = self.store.put_file(f"{prefix}/{seg.uri}", staging / seg.uri)
                size += seg.size
            vod = MediaPlaylist(
                path=playlist_file, target_seconds=self.settings.hls_segment_seconds, window=None
            )
            vod.segments.extend(present)
            vod._max_duration = max(s.duration for s in present)
            vod.ended = True
            self.store.put_bytes(f"{prefix}/{VOD_PLAYLIST}", vod.render().encode())
            return self._complete(channel_id, broadcast_id, present, size, playlist_file)
        except OSError as exc:
            log.error(
                "channel %s: recording of broadcast %s NOT stored, kept in %s for a retry "
                "(at the next node start): %s",
                channel_id,
                broadcast_id,
                staging,
                exc,
            )
            raise

    def _complete(
        self, channel_id: str, broadcast_id: str, present: list[Segment], size: int, playlist_file: Path
    ) -> RecordingInfo:
        """Write the manifest (the recording is now complete) and emit `recording.ready` together."""
        staging = playlist_file.parent
        # The staged playlist's last write is the broadcast's end, also when this is a later retry.
        ended_at = datetime.fromtimestamp(playlist_file.stat().st_mtime, UTC)
        prefix = f"{channel_id}/{broadcast_id}"
        duration_ms = round(sum(s.duration for s in present) * 1000)
        info = RecordingInfo(
            channel_id=channel_id,
            broadcast_id=broadcast_id,
            duration_ms=duration_ms,
            size_bytes=size,
            segments=len(present),
            ended_at=ended_at.isoformat(),
            playlist_url=vod_path(channel_id, broadcast_id),
        )
        with self.sessions.begin() as session:
            self.store.put_bytes(f"{prefix}/{MANIFEST}", json.dumps(asdict(info)).encode())
            payload = RecordingReady(
                broadcast_id=broadcast_id,
                duration_ms=duration_ms,
                size_bytes=size,
                segments=len(present),
                playlist_url=info.playlist_url,
            )
            enqueue(session, Envelope.wrap(payload, channel_id=channel_id, node_id=self.settings.node_id))
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "channel %s: broadcast %s recorded, %d segments, %.1f s, %d bytes",
            channel_id,
            broadcast_id,
            len(present),
            duration_ms / 1000,
            size,
        )
        try:
            self.prune()  # retention runs at node start and after every recording
        except OSError as exc:
            log.error("could not prune old recordings: %s", exc)
        return info

    def pending(self) -> list[tuple[str, str]]:
        """`(channel, broadcast)` of every staged recording (live broadcasts included)."""
        root = self.settings.recording_staging_root
        if not root.is_dir():
            return []
        return sorted(
            (channel.name, broadcast.name)
            for channel in root.iterdir()
            if channel.is_dir()
            for broadcast in channel.iterdir()
            if broadcast.is_dir()
        )

    def retry_pending(self, staged: list[tuple[str, str]] | None = None) -> list[RecordingInfo]:
        """Finalize staged recordings (default: all of `pending()`; the node passes the list it took
        at start, before any broadcast began) that a store failure or a stop mid-upload left behind.
        The first store failure ends the round (the store is down; finalize logged it, the staging
        stays for the next start)."""
        done = []
        for channel_id, broadcast_id in self.pending() if staged is None else staged:
            try:
                check_key(f"{channel_id}/{broadcast_id}")
            except ValueError:
                log.warning("staging folder %s/%s is not a recording; left alone", channel_id, broadcast_id)
                continue
            try:
                info = self.finalize(channel_id, broadcast_id)
            except OSError:
                break
            if info is not None:
                done.append(info)
        return done

    def recordings(self, channel_id: str) -> list[RecordingInfo]:
        """The channel's complete recordings, newest first."""
        check_key(channel_id)
        found = []
        for key in self.store.list(channel_id):
            if key.endswith(f"/{MANIFEST}") and key.count("/") == 2:
                try:
                    found.append(RecordingInfo(**json.loads(self.store.get(key))))
                except (FileNotFoundError, ValueError, TypeError) as exc:
                    log.warning("unreadable recording manifest %s: %s", key, exc)
        return sorted(found, key=lambda r: r.ended_at, reverse=True)

    def is_complete(self, channel_id: str, broadcast_id: str) -> bool:
        try:
            self.store.get(f"{channel_id}/{broadcast_id}/{MANIFEST}")
        except FileNotFoundError:
            return False
        return True

    def prune(self, now: datetime | None = None) -> list[str]:
        """Delete recordings that ended more than EFIR_RECORDING_RETENTION_DAYS ago (0: keep all);
        returns the `<channel>/<broadcast>` prefixes deleted."""
        days = self.settings.recording_retention_days
        if days <= 0:
            return []
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        gone = []
        for key in list(self.store.list()):
            if not key.endswith(f"/{MANIFEST}") or key.count("/") != 2:
                continue
            try:
                ended = datetime.fromisoformat(json.loads(self.store.get(key))["ended_at"])
            except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
                log.warning("unreadable recording manifest %s: %s", key, exc)
                continue
            if ended < cutoff:
                prefix = key.rsplit("/", 1)[0]
                self.store.delete_prefix(f"{prefix}/{MANIFEST}")  # first: no half-deleted VOD is listed
                self.store.delete_prefix(prefix)
                gone.append(prefix)
        if gone:
            log.info("pruned %d recordings older than %d days", len(gone), days)
        return gone
