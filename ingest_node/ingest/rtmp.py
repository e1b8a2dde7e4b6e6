"""The RTMP ingest server: handshake, chunk stream, connect/createStream/publish, audio/video to FLV tags.

It runs as an asyncio server inside the node's event loop. pyrtmp supplies the message and AMF0 codecs
(connect, createStream, publish and their responses); the chunk stream itself is read here, because
pyrtmp's reader loses the timestamp delta of a type-3 chunk that starts a new message (ffmpeg and OBS
send those for steady audio) and parses bit by bit. Every connection is its own task: a malformed
handshake, garbage bytes, an oversized message or a silent peer ends that connection only, with a
warning, and the server keeps accepting.

A publish is checked before any media is forwarded: the app must be `live` and the stream name an
active stream key (looked up in a worker thread, so the event loop never waits on the database). An
unknown or revoked key, or a channel that is already live, gets `NetStream.Publish.BadName` and the
connection closes; nothing reaches a worker. Keys are never logged (see `keys.StreamKeyRedactor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bitstring import BitStream

from ingest_node.ingest.keys import StreamKeyRedactor

if TYPE_CHECKING:
    from ingest_node.ingest.streams import LiveStream, StreamManager

log = logging.getLogger(__name__)
log.addFilter(StreamKeyRedactor())


def _import_pyrtmp() -> Any:
    """Import pyrtmp's codecs without its import-time logging changes (DEBUG on its loggers, and a
    root `basicConfig(DEBUG)` in `pyrtmp.rtmp`, which we never import but restore against anyway)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    from pyrtmp.amf.serializers import AMF0Serializer
    from pyrtmp.messages.command import NCConnect, NCCreateStream, NSPublish
    from pyrtmp.messages.factory import MessageFactory

    root.setLevel(level)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for name in list(logging.root.manager.loggerDict):
        if name == "pyrtmp" or name.startswith("pyrtmp."):
            logger = logging.getLogger(name)
            logger.setLevel(logging.WARNING)
            logger.addFilter(StreamKeyRedactor())
    return AMF0Serializer, NCConnect, NCCreateStream, NSPublish, MessageFactory


AMF0Serializer, NCConnect, NCCreateStream, NSPublish, MessageFactory = _import_pyrtmp()

HANDSHAKE_SIZE = 1536
RTMP_VERSION = 3
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_CHUNK_SIZE = 0x7FFFFFFF
MAX_CHUNK_STREAMS = 64
OUT_CHUNK_SIZE = 4096
ACK_WINDOW = 2_500_000
APP_NAME = "live"

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK = 5
MSG_PEER_BANDWIDTH = 6
MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA_AMF3 = 15
MSG_COMMAND_AMF3 = 17
MSG_DATA_AMF0 = 18
MSG_COMMAND_AMF0 = 20


class ProtocolError(Exception):
    """The peer broke the RTMP protocol; its connection is closed."""


class PublishRefused(Exception):
    """A publish that may not go ahead; the message is safe to log and to send to the publisher."""


@dataclass
class _ChunkStream:
    """Per chunk-stream-id header state, as RTMP's header compression needs it."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    payload: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    chunk_id: int


KeyVerifier = Callable[[str], Awaitable[str | None]]


class RtmpConnection:
    """One TCP connection: handshake, then messages until the peer leaves or breaks the protocol."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        streams: StreamManager,
        verify_key: KeyVerifier,
        idle_timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.streams = streams
        self.verify_key = verify_key
        self.idle_timeout = idle_timeout
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.in_chunk_size = 128
        self.chunk_streams: dict[int, _ChunkStream] = {}
        self.app = ""
        self.received = 0
        self.acked = 0
        self.stream: LiveStream | None = None
        self.closing = False

    # ---- reading -----------------------------------------------------------------------------------

    async def _read(self, n: int) -> bytes:
        data = await asyncio.wait_for(self.reader.readexactly(n), self.idle_timeout)
        self.received += n
        return data

    async def handshake(self) -> None:
        c0c1 = await self._read(1 + HANDSHAKE_SIZE)
        if c0c1[0] != RTMP_VERSION:
            raise ProtocolError(f"not an RTMP client (version byte {c0c1[0]})")
        c1 = c0c1[1:]
        s1 = struct.pack(">II", 0, 0) + bytes(HANDSHAKE_SIZE - 8)
        s2 = c1[:4] + struct.pack(">I", 0) + c1[8:]  # echo C1 (simple handshake, as OBS and ffmpeg use)
        self.writer.write(bytes([RTMP_VERSION]) + s1 + s2)
        await self.writer.drain()
        await self._read(HANDSHAKE_SIZE)  # C2

    async def read_message(self) -> Message:
        """Read chunks until one message is complete."""
        while True:
            first = (await self._read(1))[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid == 0:
                csid = (await self._read(1))[0] + 64
            elif csid == 1:
                b = await self._read(2)
                csid = b[0] + b[1] * 256 + 64
            state = self.chunk_streams.get(csid)
            if state is None:
                if fmt != 0:
                    raise ProtocolError(f"chunk stream {csid} starts with a type-{fmt} header")
                if len(self.chunk_streams) >= MAX_CHUNK_STREAMS:
                    raise ProtocolError("too many chunk streams")
                state = self.chunk_streams[csid] = _ChunkStream()
            starting = not state.payload
            if fmt == 0:
                head = await self._read(11)
                ts = int.from_bytes(head[0:3], "big")
                state.length = int.from_bytes(head[3:6], "big")
                state.type_id = head[6]
                state.stream_id = int.from_bytes(head[7:11], "little")
                state.extended = ts == 0xFFFFFF
                if state.extended:
                    ts = int.from_bytes(await self._read(4), "big")
                state.timestamp, state.delta = ts, ts
            elif fmt in (1, 2):
                head = await self._read(7 if fmt == 1 else 3)
                delta = int.from_bytes(head[0:3], "big")
                if fmt == 1:
                    state.length = int.from_bytes(head[3:6], "big")
                    state.type_id = head[6]
                state.extended = delta == 0xFFFFFF
                if state.extended:
                    delta = int.from_bytes(await self._read(4), "big")
                state.delta = delta
                state.timestamp += delta
            else:  # type 3: same header; a new message adds the last delta again
                if state.extended:
                    await self._read(4)
                if starting:
                    state.timestamp += state.delta
            if state.length > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message of {state.length} bytes is over the limit")
            if not starting and fmt in (0, 1, 2):
                state.payload.clear()  # a new header mid-message abandons the old one
            want = min(self.in_chunk_size, state.length - len(state.payload))
            if want:
                state.payload += await self._read(want)
            await self._acknowledge()
            if len(state.payload) >= state.length:
                message = Message(
                    state.type_id, state.stream_id, state.timestamp & 0xFFFFFFFF, bytes(state.payload), csid
                )
                state.payload = bytearray()
                return message

    async def _acknowledge(self) -> None:
        if self.received - self.acked >= ACK_WINDOW:
            self.acked = self.received
            self.write_message(2, MSG_ACK, 0, struct.pack(">I", self.received & 0xFFFFFFFF))
            await self.writer.drain()

    # ---- writing -----------------------------------------------------------------------------------

    def write_message(
        self, csid: int, type_id: int, stream_id: int, payload: bytes, timestamp: int = 0
    ) -> None:
        """One message: a type-0 chunk, then type-3 chunks of at most OUT_CHUNK_SIZE bytes."""
        header = bytes([csid & 0x3F]) + min(timestamp, 0xFFFFFF).to_bytes(3, "big")
        header += len(payload).to_bytes(3, "big") + bytes([type_id]) + stream_id.to_bytes(4, "little")
        out = bytearray(header)
        for start in range(0, max(len(payload), 1), OUT_CHUNK_SIZE):
            if start:
                out.append(0xC0 | (csid & 0x3F))
            out += payload[start : start + OUT_CHUNK_SIZE]
        self.writer.write(bytes(out))

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        data = BitStream()
        for value in ("onStatus", 0, None, {"level": level, "code": code, "description": description}):
            AMF0Serializer.create_object(data, value)
        self.write_message(5, MSG_COMMAND_AMF0, stream_id, data.bytes)

    # ---- the session -------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.handshake()
            while not self.closing:
                message = await self.read_message()
                await self.dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            log.info("rtmp %s: connection closed by the peer", self.peer)
        except TimeoutError:
            log.warning("rtmp %s: nothing received for %.0f s, closing", self.peer, self.idle_timeout)
        except ProtocolError as exc:
            log.warning("rtmp %s: protocol error, closing: %s", self.peer, exc)
        except PublishRefused as exc:
            log.warning("rtmp %s: publish refused: %s", self.peer, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad connection must never take the server down
            log.warning("rtmp %s: closing after %s: %s", self.peer, type(exc).__name__, exc)
        finally:
            await self._finish()

    async def _finish(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await self.streams.publisher_left(stream, self)
        self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self.writer.wait_closed(), 5)

    def close(self) -> None:
        """Ask the connection to end (key revoked, stream errored, node stopping)."""
        self.closing = True
        self.writer.close()

    async def dispatch(self, message: Message) -> None:
        kind = message.type_id
        if kind in (MSG_AUDIO, MSG_VIDEO, MSG_DATA_AMF0):
            if self.stream is not None:
                await self.stream.feed(kind, message.timestamp, message.payload, self)
            return  # media before an accepted publish is dropped unread
        if kind == MSG_SET_CHUNK_SIZE:
            if len(message.payload) < 4:
                raise ProtocolError("short SetChunkSize")
            size = int.from_bytes(message.payload[:4], "big") & MAX_CHUNK_SIZE
            if size < 1:
                raise ProtocolError("chunk size 0")
            self.in_chunk_size = size
        elif kind == MSG_ABORT and len(message.payload) >= 4:
            state = self.chunk_streams.get(int.from_bytes(message.payload[:4], "big"))
            if state is not None:
                state.payload = bytearray()
        elif kind == MSG_COMMAND_AMF0:
            await self._command(message)
        # acknowledgements, user control, window sizes, AMF3 and unknown types are ignored

    async def _command(self, message: Message) -> None:
        from pyrtmp.messages import Chunk

        chunk = Chunk(
            chunk_type=0,
            chunk_id=message.chunk_id,
            timestamp=message.timestamp,
            msg_length=len(message.payload),
            msg_type_id=message.type_id,
            msg_stream_id=message.stream_id,
            payload=message.payload,
        )
        try:
            parsed = MessageFactory.from_chunk(chunk)
        except Exception as exc:
            raise ProtocolError(f"unreadable command ({type(exc).__name__})") from exc
        if isinstance(parsed, NCConnect):
            app = parsed.command_object.get("app", "") if isinstance(parsed.command_object, dict) else ""
            self.app = str(app).strip("/").split("?", 1)[0]
            self.write_message(2, MSG_WINDOW_ACK, 0, struct.pack(">I", ACK_WINDOW))
            self.write_message(2, MSG_PEER_BANDWIDTH, 0, struct.pack(">IB", ACK_WINDOW, 2))
            self.write_message(2, MSG_SET_CHUNK_SIZE, 0, struct.pack(">I", OUT_CHUNK_SIZE))
            response = parsed.create_response()
            self.write_message(3, MSG_COMMAND_AMF0, 0, response.payload)
            await self.writer.drain()
        elif isinstance(parsed, NCCreateStream):
            self.write_message(3, MSG_COMMAND_AMF0, 0, parsed.create_response().payload)
            await self.writer.drain()
        elif isinstance(parsed, NSPublish):
            await self._publish(parsed, message.stream_id or 1)
        elif getattr(parsed, "command_name", "") in ("deleteStream", "closeStream", "FCUnpublish"):
            self.closing = True

    async def _publish(self, command: Any, stream_id: int) -> None:
        if self.stream is not None:
            raise PublishRefused("a second publish on one connection")
        name = str(command.publishing_name or "").split("?", 1)[0]
        try:
            if self.app != APP_NAME:
                raise PublishRefused(
                    f"unknown application {self.app!r} (publish to /{APP_NAME}/<stream key>)"
                )
            channel_id = await self.verify_key(name)
            if channel_id is None:
                raise PublishRefused("unknown or revoked stream key")
            self.stream = await self.streams.begin(channel_id, self)
        except PublishRefused as exc:
            self._status(stream_id, "error", "NetStream.Publish.BadName", str(exc))
            await self.writer.drain()
            self.closing = True
            raise
        log.info("rtmp %s: publishing on channel %s", self.peer, channel_id)
        self.write_message(2, MSG_USER_CONTROL, 0, struct.pack(">HI", 0, stream_id))  # StreamBegin
        self._status(stream_id, "status", "NetStream.Publish.Start", "Start publishing")
        await self.writer.drain()


class RtmpServer:
    """The listening socket; each accepted connection runs as its own task."""

    def __init__(
        self, host: str, port: int, streams: StreamManager, verify_key: KeyVerifier, idle_timeout: float
    ) -> None:
        self.host, self.port = host, port
        self.streams = streams
        self.verify_key = verify_key
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> RtmpServer:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        log.info("RTMP ingest listening on %s:%d (app /%s)", self.host, self.port, APP_NAME)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = RtmpConnection(reader, writer, self.streams, self.verify_key, self.idle_timeout)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await connection.run()
        finally:
            if task is not None:
                self._connections.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
