"""Live streams and their worker processes: start, feed, supervise, restart, end.

One `LiveStream` per live channel. Its media runs in a worker PROCESS (`python -m
ingest_node.media.worker`) fed with FLV on stdin, so a crash, a hang or a leak costs one stream only.
The manager supervises every worker from the event loop without blocking it:

- a worker that exits while its publisher is still sending is restarted with `--append` (same URLs, a
  discontinuity in the playlists), at most EFIR_STREAM_WORKER_MAX_RESTARTS times; then the stream
  ends with `stream.errored` and the publisher is disconnected;
- a worker that refuses the media (exit code EXIT_REFUSED: not FLV, an unsupported codec) ends the
  stream with `stream.errored` at once: a restart would fail the same way;
- a worker that writes nothing into its output folder for EFIR_STREAM_WORKER_STALL_SECONDS is killed,
  which makes it a crashed worker;
- a publisher that leaves closes the worker's stdin (the worker finishes its last segment); if the
  same channel publishes again within EFIR_STREAM_RECONNECT_GRACE_SECONDS, the broadcast continues,
  otherwise it ends with `stream.ended`.

Writing to a worker's stdin awaits `drain()`: a slow worker slows its own publisher (TCP backpressure),
never another stream, and the stall watchdog ends a worker that stops reading altogether.

Warm spares (EFIR_STREAM_WORKER_SPARES, default 1, 0 disables): the manager keeps that many workers
started ahead (`worker --spare`: interpreter up, PyAV and the ladder imported) and hands the next
stream (or restart) one of them with its arguments as the first line on stdin, then starts a
replacement in the background. A spare serves one stream and exits with it, so each stream keeps its
own process and every rule above holds for it unchanged (the stall clock starts at the hand-over). A
spare that dies before it is used is replaced, with a growing pause if spares keep dying, so a broken
install cannot spin. Without a spare (none configured, or the last one just taken) a worker is started
cold, as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest_node.ingest import channel_media
from ingest_node.ingest.channel_media import MediaConfig
from ingest_node.ingest.flv import FlvFramer
from ingest_node.ingest.keys import StreamKeyRedactor, redact
from ingest_node.ingest.lifecycle import LifecycleRecorder
from ingest_node.ingest.recordings import RecordingService
from ingest_node.ingest.rtmp import PublishRefused
from ingest_node.media.worker import EXIT_REFUSED
from services.settings import Settings

if TYPE_CHECKING:
    from ingest_node.ingest.rtmp import RtmpConnection

log = logging.getLogger(__name__)
log.addFilter(StreamKeyRedactor())

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "ingest_node.media.worker"
STOP_WAIT_SECONDS = 10.0


@dataclass(eq=False)
class WorkerHandle:
    proc: asyncio.subprocess.Process
    started_wall: float
    closing: bool = False  # we closed its stdin on purpose: its exit is the end, not a crash
    broken: bool = False  # its stdin failed: stop writing
    refused: str | None = None
    killed_for: str | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stream: LiveStream | None = None  # None: a warm spare that no stream has been given yet
    warm: bool = False  # a spare that reported its imports done (`spare_ready`)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, reason: str) -> None:
        if self.proc.returncode is None:
            self.killed_for = reason
            self.proc.kill()


@dataclass(eq=False)
class LiveStream:
    channel_id: str
    out_dir: Path
    broadcast_id: str = ""
    publisher: RtmpConnection | None = None
    worker: WorkerHandle | None = None
    framer: FlvFramer = field(default_factory=FlvFramer)
    restarts: int = 0
    reconnects: int = 0
    renditions: list[str] = field(default_factory=list)
    ended: bool = False
    grace: asyncio.Task[None] | None = None
    manager: StreamManager | None = None
    media: MediaConfig | None = None  # read when the broadcast starts; kept across reconnects

    async def feed(self, kind: int, timestamp: int, payload: bytes, source: RtmpConnection) -> None:
        """One RTMP audio/video/data message from the publisher, framed as FLV for the worker."""
        if source is not self.publisher or self.ended:
            return
        changes = self.framer.video_changes
        data = self.framer.frame(kind, timestamp, payload)
        if self.framer.video_changes != changes:
            log.info(
                "channel %s: the publisher sent a new video configuration mid-stream (a resolution or "
                "encoder change); broadcast %s continues with it",
                self.channel_id,
                self.broadcast_id,
            )
        handle = self.worker
        if data and handle is not None and not handle.broken and self.manager is not None:
            await self.manager.write(handle, data)

    def status(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "broadcast_id": self.broadcast_id,
            "state": "live" if self.publisher is not None else "reconnecting",
            "worker_pid": self.worker.pid if self.worker is not None else None,
            "restarts": self.restarts,
            "reconnects": self.reconnects,
            "renditions": self.renditions,
        }


class StreamManager:
    """Every live stream of this node, keyed by channel id."""

    def __init__(
        self, settings: Settings, recorder: LifecycleRecorder, recordings: RecordingService | None = None
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.recordings = recordings  # None: broadcasts are not recorded
        self.live: dict[str, LiveStream] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.workers_started = 0  # workers given a stream (cold-started or spares)
        self.spares: list[WorkerHandle] = []  # warm spares not yet given a stream
        self.spares_used = 0
        self._spare_failures = 0  # spares that died unused in a row: the pause before the next one
        self._replenishing = False
        self._stopping = False

    async def start(self) -> StreamManager:
        self._loop = asyncio.get_running_loop()
        self._watchdog = asyncio.create_task(self._watch(), name="stream-watchdog")
        if self.settings.rtmp_enabled:  # nothing can publish without RTMP: no spare to keep
            self._spawn(self._replenish())
        return self

    # ---- publishers --------------------------------------------------------------------------------

    async def begin(self, channel_id: str, publisher: RtmpConnection) -> LiveStream:
        """Accept a publisher for `channel_id`: a new broadcast, or the continuation of one in grace."""
        stream = self.live.get(channel_id)
        if stream is not None and not stream.ended:
            if stream.publisher is not None:
                raise PublishRefused(f"channel {channel_id} is already live (a second publisher)")
            stream.publisher = publisher  # claimed before any await: a racing publisher is refused
            if stream.grace is not None:
                stream.grace.cancel()
                stream.grace = None
            stream.reconnects += 1
            stream.framer = FlvFramer()
            log.info(
                "channel %s: publisher reconnected, broadcast %s continues", channel_id, stream.broadcast_id
            )
            await self._stop_worker(stream)
            await self._start_worker(stream, append=True)
            return stream
        stream = LiveStream(channel_id, self.settings.hls_root / channel_id, manager=self)
        stream.publisher = publisher
        self.live[channel_id] = stream
        try:
            await asyncio.to_thread(_reset_dir, stream.out_dir)
            stream.media = await asyncio.to_thread(self._media_config, channel_id)
            stream.broadcast_id = await asyncio.to_thread(self.recorder.started, channel_id)
            await self._start_worker(stream, append=False)
        except PublishRefused:
            raise
        except Exception as exc:
            log.error("channel %s: could not start the stream: %s: %s", channel_id, type(exc).__name__, exc)
            self.live.pop(channel_id, None)
            stream.ended = True
            if stream.broadcast_id:
                await asyncio.to_thread(
                    self.recorder.ended,
                    channel_id,
                    stream.broadcast_id,
                    errored=True,
                    reason=f"worker did not start: {type(exc).__name__}",
                    restarts=0,
                )
            raise PublishRefused("the node could not start a pipeline for this stream") from exc
        log.info(
            "channel %s: live, broadcast %s, worker pid %d",
            channel_id,
            stream.broadcast_id,
            stream.worker.pid if stream.worker else -1,
        )
        return stream

    async def publisher_left(self, stream: LiveStream, publisher: RtmpConnection) -> None:
        if stream.publisher is not publisher:
            return
        stream.publisher = None
        if stream.ended:
            return
        log.info(
            "channel %s: publisher left; waiting %.0f s for a reconnect",
            stream.channel_id,
            self.settings.stream_reconnect_grace_seconds,
        )
        await self._stop_worker(stream)
        if not stream.ended and stream.publisher is None:
            stream.grace = self._spawn(self._grace(stream))

    async def _grace(self, stream: LiveStream) -> None:
        await asyncio.sleep(self.settings.stream_reconnect_grace_seconds)
        if stream.publisher is None and not stream.ended:
            stream.grace = None
            await self._end(stream, errored=False, reason="publisher stopped")

    def kick(self, channel_id: str, reason: str) -> None:
        """Disconnect a channel's publisher (key revoked or rotated); safe to call from any thread."""
        if self._loop is None:
            return

        def _kick() -> None:
            stream = self.live.get(channel_id)
            if stream is not None and stream.publisher is not None:
                log.info("channel %s: disconnecting the publisher (%s)", channel_id, reason)
                stream.publisher.close()

        self._loop.call_soon_threadsafe(_kick)

    # ---- workers -----------------------------------------------------------------------------------

    def _media_config(self, channel_id: str) -> MediaConfig:
        """The channel's latency level, preset, codec and segment format (its stored settings)."""
        sessions = getattr(self.recorder, "sessions", None)
        if sessions is None:
            return channel_media.defaults(self.settings)
        with sessions() as session:
            return channel_media.load(session, self.settings, channel_id)

    def worker_command(self, stream: LiveStream, *, append: bool) -> list[str]:
        media = stream.media or channel_media.defaults(self.settings)
        command = [
            sys.executable, "-m", WORKER_MODULE,
            "--channel-id", stream.channel_id,
            "--out-dir", str(stream.out_dir),
            "--segment-seconds", f"{media.segment_seconds:g}",
            "--preset", media.quality_preset,
            "--codec", media.codec,
            "--pipeline", self.settings.stream_pipeline,
            "--thumbnail-seconds", f"{self.settings.thumbnail_seconds:g}",
        ]  # fmt: skip
        if media.segment_format is not None:
            command += ["--segment-format", media.segment_format]
        if self.recordings is not None and stream.broadcast_id:
            staging = self.recordings.staging_dir(stream.channel_id, stream.broadcast_id)
            command += ["--record-dir", str(staging)]
        return command + (["--append"] if append else [])

    async def _launch(self, command: list[str], stream: LiveStream | None) -> WorkerHandle:
        """Start a worker process (for `stream`, or a spare when None) and supervise it from now on."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env["EFIR_LOG_LEVEL"] = self.settings.log_level
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,  # a Ctrl-C at the node's terminal is the node's to handle
        )
        handle = WorkerHandle(proc, time.time(), stream=stream)
        handle.tasks = [self._spawn(self._read_events(handle)), self._spawn(self._read_log(handle))]
        self._spawn(self._wait_worker(handle))
        return handle

    async def _start_worker(self, stream: LiveStream, *, append: bool) -> None:
        command = self.worker_command(stream, append=append)
        spare = self._take_spare()
        if spare is not None:
            spare.stream = stream
            spare.started_wall = time.time()  # the stall clock starts when it has a stream
            handle = spare
            self.spares_used += 1
            self._spawn(self._replenish())
        else:
            handle = await self._launch(command, stream)
        self.workers_started += 1
        stream.worker = handle
        if spare is not None:
            line = json.dumps({"argv": command[3:]}) + "\n"  # after `python -m ingest_node.media.worker`
            await self.write(handle, line.encode())
            log.info("channel %s: worker %d (a warm spare) takes the stream", stream.channel_id, handle.pid)
        await self.write(handle, stream.framer.restart())

    # ---- warm spares -------------------------------------------------------------------------------

    def _take_spare(self) -> WorkerHandle | None:
        while self.spares:
            spare = self.spares.pop(0)
            if spare.proc.returncode is None and not spare.broken:
                return spare
        return None

    async def _replenish(self) -> None:
        """Start spares until EFIR_STREAM_WORKER_SPARES are waiting (one caller at a time)."""
        if self._replenishing:
            return
        self._replenishing = True
        try:
            while not self._stopping and len(self.spares) < self.settings.stream_worker_spares:
                if self._spare_failures > 1:  # spares keep dying: do not spin
                    await asyncio.sleep(min(30.0, 2.0 ** (self._spare_failures - 2)))
                    if self._stopping:
                        return
                try:
                    spare = await self._launch([sys.executable, "-m", WORKER_MODULE, "--spare"], None)
                except Exception as exc:
                    log.error("could not start a spare stream worker: %s: %s", type(exc).__name__, exc)
                    self._spare_failures += 1
                    continue
                self.spares.append(spare)
                if self._stopping:  # node stopping while it started: let it go at once
                    await self._stop_spare(spare)
        finally:
            self._replenishing = False

    async def _stop_spare(self, spare: WorkerHandle) -> None:
        if spare in self.spares:
            self.spares.remove(spare)
        spare.closing = True
        stdin = spare.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()  # no arguments line: the spare exits 0
        try:
            await asyncio.wait_for(spare.exited.wait(), STOP_WAIT_SECONDS)
        except TimeoutError:
            spare.kill("a spare that did not stop")
            await spare.exited.wait()

    async def _spare_exited(self, spare: WorkerHandle, code: int | None) -> None:
        if spare in self.spares:
            self.spares.remove(spare)
        if self._stopping or spare.closing:
            return
        self._spare_failures += 1
        log.warning("spare worker %d exited unused (exit code %s); starting another", spare.pid, code)
        self._spawn(self._replenish())

    async def write(self, handle: WorkerHandle, data: bytes) -> None:
        stdin = handle.proc.stdin
        if stdin is None or handle.broken or handle.closing:
            return
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            handle.broken = True  # the worker is gone; its exit is handled by _wait_worker

    async def _read_events(self, handle: WorkerHandle) -> None:
        assert handle.proc.stdout is not None
        async for raw in handle.proc.stdout:
            stream = handle.stream
            label = stream.channel_id if stream is not None else "spare"
            try:
                event = json.loads(raw)
            except ValueError:
                log.info("worker %s: %s", label, redact(raw.decode(errors="replace").rstrip()))
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "spare_ready":
                handle.warm = True
                self._spare_failures = 0  # spares start fine again
                continue
            if stream is None:
                continue
            if kind == "ready":
                stream.renditions = [str(r) for r in event.get("renditions") or []]
            elif kind == "refused":
                handle.refused = str(event.get("reason") or "media refused")
            elif kind == "ladder_changed":
                names = [str(r) for r in event.get("renditions") or []]
                stream.renditions = names
                await asyncio.to_thread(
                    self.recorder.ladder_changed,
                    stream.channel_id,
                    stream.broadcast_id,
                    names,
                    str(event.get("reason") or ""),
                )

    async def _read_log(self, handle: WorkerHandle) -> None:
        assert handle.proc.stderr is not None
        async for raw in handle.proc.stderr:
            log.info(
                "worker %s [%d]: %s",
                handle.stream.channel_id if handle.stream is not None else "spare",
                handle.pid,
                redact(raw.decode(errors="replace").rstrip()),
            )

    async def _wait_worker(self, handle: WorkerHandle) -> None:
        code = await handle.proc.wait()
        await asyncio.gather(*handle.tasks, return_exceptions=True)
        handle.exited.set()
        stream = handle.stream  # read at exit: a spare may have been given a stream meanwhile
        if stream is None:
            await self._spare_exited(handle, code)
            return
        if stream.worker is handle:
            stream.worker = None
        if handle.closing or stream.ended:
            if code not in (0, None):
                log.warning(
                    "channel %s: worker %d exited with %s after its input closed",
                    stream.channel_id,
                    handle.pid,
                    code,
                )
            return
        if code == EXIT_REFUSED or handle.refused:
            await self._end(stream, errored=True, reason=handle.refused or "the worker refused the media")
            return
        why = handle.killed_for or f"exit code {code}"
        if stream.publisher is None:
            return  # the publisher left meanwhile: the grace period decides
        stream.restarts += 1
        if stream.restarts > self.settings.stream_worker_max_restarts:
            await self._end(
                stream, errored=True, reason=f"the worker failed {stream.restarts} times (last: {why})"
            )
            return
        log.warning(
            "channel %s: worker %d failed (%s); restart %d of %d",
            stream.channel_id,
            handle.pid,
            why,
            stream.restarts,
            self.settings.stream_worker_max_restarts,
        )
        try:
            await self._start_worker(stream, append=True)
        except Exception as exc:
            await self._end(stream, errored=True, reason=f"worker restart failed: {type(exc).__name__}")

    async def _stop_worker(self, stream: LiveStream) -> None:
        """Close the worker's input and wait for it to finish its last segment (kill it if it hangs)."""
        handle = stream.worker
        if handle is None:
            return
        handle.closing = True
        stdin = handle.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(handle.exited.wait(), STOP_WAIT_SECONDS)
        except TimeoutError:
            handle.kill("did not stop after its input closed")
            await handle.exited.wait()
        if stream.worker is handle:
            stream.worker = None

    async def _end(self, stream: LiveStream, *, errored: bool, reason: str) -> None:
        if stream.ended:
            return
        stream.ended = True
        if self.live.get(stream.channel_id) is stream:
            del self.live[stream.channel_id]
        if stream.grace is not None and stream.grace is not asyncio.current_task():
            stream.grace.cancel()
        publisher, stream.publisher = stream.publisher, None
        if publisher is not None:
            publisher.close()
        if stream.worker is not None:
            await self._stop_worker(stream)
        (log.error if errored else log.info)(
            "channel %s: broadcast %s %s: %s",
            stream.channel_id,
            stream.broadcast_id,
            "errored" if errored else "ended",
            reason,
        )
        await asyncio.to_thread(
            self.recorder.ended,
            stream.channel_id,
            stream.broadcast_id,
            errored=errored,
            reason=reason,
            restarts=stream.restarts,
            renditions=",".join(stream.renditions),
        )
        if self.recordings is not None and stream.broadcast_id:
            try:  # whatever the broadcast's end, what it recorded becomes a VOD
                await asyncio.to_thread(self.recordings.finalize, stream.channel_id, stream.broadcast_id)
            except OSError:
                pass  # the store failed: finalize logged it and kept the staging folder for a retry
            except Exception:
                log.exception("channel %s: recording of %s failed", stream.channel_id, stream.broadcast_id)

    # ---- supervision -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Kill workers that make no progress (no file written in their output folder)."""
        limit = self.settings.stream_worker_stall_seconds
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            for stream in list(self.live.values()):
                handle = stream.worker
                if handle is None or handle.closing or stream.publisher is None:
                    continue
                try:
                    newest = await asyncio.to_thread(_newest_mtime, stream.out_dir)
                except Exception:  # a folder being reset; next round
                    continue
                idle = time.time() - max(newest, handle.started_wall)
                if idle > limit and stream.worker is handle:
                    log.warning(
                        "channel %s: worker %d wrote nothing for %.0f s, killing it",
                        stream.channel_id,
                        handle.pid,
                        idle,
                    )
                    handle.kill(f"stalled: no output for {limit:g} s")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def stop(self) -> None:
        """Node shutdown: end every broadcast (workers finish their segments), then stop supervising."""
        self._stopping = True
        for stream in list(self.live.values()):
            await self._end(stream, errored=False, reason="node stopping")
        for spare in list(self.spares):
            await self._stop_spare(spare)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def snapshot(self) -> list[dict[str, Any]]:
        return [s.status() for s in self.live.values()]


def _reset_dir(path: Path) -> None:
    """A new broadcast starts with an empty output folder (a reconnect keeps it)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    if not path.exists():
        return newest
    for entry in os.scandir(path):
        newest = max(newest, entry.stat().st_mtime)
        if entry.is_dir():
            for sub in os.scandir(entry.path):
                newest = max(newest, sub.stat().st_mtime)
    return newest
