"""The node's live-video side as one object the app's lifespan starts and stops.

It owns the stream manager (workers), the RTMP server (when EFIR_RTMP_ENABLED) and the viewer
heartbeat aggregator, and knows the URLs a streamer is given.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from ingest_node.ingest.keys import StreamKeyRedactor, channel_for_key
from ingest_node.ingest.lifecycle import LifecycleRecorder
from ingest_node.ingest.recordings import RecordingService
from ingest_node.ingest.rtmp import APP_NAME, RtmpServer
from ingest_node.ingest.streams import StreamManager
from ingest_node.ingest.viewers import ViewerAggregator
from services.settings import Settings

log = logging.getLogger(__name__)
log.addFilter(StreamKeyRedactor())


def rtmp_base_url(settings: Settings) -> str:
    """What OBS calls the server: rtmp://HOST:PORT/live (the stream key goes in OBS's key field)."""
    if settings.rtmp_public_url:
        return settings.rtmp_public_url.rstrip("/")
    host = urlsplit(settings.public_url).hostname or "127.0.0.1"
    return f"rtmp://{host}:{settings.rtmp_port}/{APP_NAME}"


def playback_url(settings: Settings, channel_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/live/{channel_id}/master.m3u8"


class IngestService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.recordings = RecordingService(settings, sessions)
        self.streams = StreamManager(settings, LifecycleRecorder(settings, sessions), self.recordings)
        self.viewers = ViewerAggregator(settings, sessions)
        self.rtmp: RtmpServer | None = None
        self._retry: asyncio.Task[object] | None = None

    async def start(self) -> IngestService:
        self.viewers.start()
        try:
            await asyncio.to_thread(self.recordings.prune)  # retention, at every start of the node
        except OSError as exc:
            log.error("could not prune old recordings: %s", exc)
        # Recordings a failed store (or a stop mid-upload) left in staging: listed now, while nothing is
        # live, and uploaded in the background (a slow or unreachable store must not delay the node).
        staged = await asyncio.to_thread(self.recordings.pending)
        if staged:
            self._retry = asyncio.create_task(asyncio.to_thread(self.recordings.retry_pending, staged))
        await self.streams.start()
        if self.settings.rtmp_enabled:
            server = RtmpServer(
                self.settings.rtmp_host,
                self.settings.rtmp_port,
                self.streams,
                self.verify_key,
                self.settings.rtmp_idle_timeout_seconds,
            )
            try:
                self.rtmp = await server.start()
            except OSError as exc:
                # The API, chat and playback of other nodes' streams must not die with the RTMP port
                # (another node or an old process holding 1935): say so loudly and serve without it.
                log.error(
                    "RTMP ingest is NOT running: cannot listen on %s:%d (%s); set EFIR_RTMP_PORT",
                    self.settings.rtmp_host,
                    self.settings.rtmp_port,
                    exc,
                )
        return self

    async def verify_key(self, key: str) -> str | None:
        """The channel of an active stream key, looked up off the event loop."""
        return await asyncio.to_thread(self._lookup, key)

    def _lookup(self, key: str) -> str | None:
        with self.sessions() as session:
            channel = channel_for_key(session, key)
            session.rollback()
            return channel

    async def stop(self) -> None:
        if self.rtmp is not None:
            await self.rtmp.stop()
        await self.streams.stop()
        if self._retry is not None:
            await asyncio.gather(self._retry, return_exceptions=True)
        await asyncio.to_thread(self.viewers.stop)
