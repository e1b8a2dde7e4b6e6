"""HLS output: MPEG-TS or fMP4 (CMAF) segment files and playlists, written so a reader never sees half
of anything.

Every file (segment, media playlist, master playlist) is written under a temporary name and renamed
into place, so a CDN or player polling the folder sees the previous version or the next, never a torn
one. Media playlists slide over a window of segments while live and get `#EXT-X-ENDLIST` when the
stream ends (or when a rendition is shed under load: its viewers then finish cleanly while new viewers
get a master playlist without it). Segments that left the window stay on disk for one more window, as
RFC 8216 asks, then are deleted.

fMP4: each segment is muxed by its own MP4 muxer (empty moov, fragments, timestamps kept as they are,
so every fragment's decode time continues the previous one's); the muxer's `ftyp`+`moov` is the
rendition's init segment (`init.mp4`, written once, `#EXT-X-MAP`) and the rest (`moof`+`mdat`) is the
`.m4s` media segment. If the init ever changes (an encoder fell back, another preset, the source's
resolution changed), it is written under a new name and the playlist maps it from that segment on,
after a discontinuity.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container.output import OutputContainer
from av.packet import Packet
from av.stream import Stream

PLAYLIST_MIME = "application/vnd.apple.mpegurl"
SEGMENT_MIME = "video/mp2t"
FMP4_MIME = "video/mp4"  # init segments and .m4s media segments
# One MP4 muxer per segment: fragments from the first packet, a moov with no samples (the init segment),
# no trailer (no mfra), and timestamps untouched so each fragment's tfdt continues the timeline.
FMP4_OPTIONS = {
    "movflags": "empty_moov+default_base_moof+frag_keyframe+frag_discont+skip_trailer",
    "avoid_negative_ts": "disabled",
    "use_editlist": "0",
}


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _pdt(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Segment:
    """One finished segment as listed in a media playlist."""

    sequence: int
    uri: str
    duration: float
    start: float  # media seconds since the stream's first frame
    program_date_time: datetime
    size: int
    discontinuity: bool = False
    map_uri: str | None = None  # fMP4: the init segment this segment needs (EXT-X-MAP)


@dataclass
class MediaPlaylist:
    """A rendition's media playlist: a sliding window while live, closed with ENDLIST at the end."""

    path: Path
    target_seconds: float
    window: int | None = 6  # None keeps every segment (event/VOD style)
    segments: deque[Segment] = field(default_factory=deque)
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    next_sequence: int = 0
    ended: bool = False
    _max_duration: float = 0.0
    _expired: deque[Segment] = field(default_factory=deque)

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must fit under it."""
        return max(1, math.ceil(self.target_seconds), int(self._max_duration + 0.5))

    def add(self, segment: Segment) -> None:
        """Append a finished segment, slide the window, delete segments long out of it."""
        self.segments.append(segment)
        self.next_sequence = segment.sequence + 1
        self._max_duration = max(self._max_duration, segment.duration)
        while self.window is not None and len(self.segments) > self.window:
            old = self.segments.popleft()
            self.media_sequence = self.segments[0].sequence
            if old.discontinuity:  # its tag leaves the playlist with it
                self.discontinuity_sequence += 1
            self._expired.append(old)
        while self.window is not None and len(self._expired) > self.window:
            gone = self._expired.popleft()
            (self.path.parent / gone.uri).unlink(missing_ok=True)
        self.write()

    def end(self) -> None:
        """Close the playlist for good (`#EXT-X-ENDLIST`)."""
        self.ended = True
        self.write()

    def render(self) -> str:
        # EXT-X-MAP in a media playlist needs protocol version 6.
        version = 6 if any(seg.map_uri for seg in self.segments) else 3
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{version}",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}",
        ]
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        if self.window is None and self.ended:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        current_map: str | None = None
        for seg in self.segments:
            if seg.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if seg.map_uri and seg.map_uri != current_map:
                lines.append(f'#EXT-X-MAP:URI="{seg.map_uri}"')
                current_map = seg.map_uri
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(seg.program_date_time)}")
            lines.append(f"#EXTINF:{seg.duration:.3f},")
            lines.append(seg.uri)
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, self.render())

    @classmethod
    def resume(cls, path: Path, target_seconds: float, window: int | None) -> MediaPlaylist:
        """Pick up a playlist this pipeline wrote before (a publisher reconnecting within the grace
        period): same URL, numbering carries on, the next segment is marked as a discontinuity."""
        playlist = cls(path=path, target_seconds=target_seconds, window=window)
        if not path.exists():
            return playlist
        text = path.read_text(encoding="utf-8")
        seq_match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
        disc_match = re.search(r"#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)", text)
        sequence = int(seq_match.group(1)) if seq_match else 0
        playlist.media_sequence = sequence
        playlist.discontinuity_sequence = int(disc_match.group(1)) if disc_match else 0
        pending: dict[str, object] = {}
        map_uri: str | None = None
        for line in text.splitlines():
            if line.startswith("#EXT-X-MAP:"):
                found = re.search(r'URI="([^"]+)"', line)
                map_uri = found.group(1) if found else None
            elif line == "#EXT-X-DISCONTINUITY":
                pending["disc"] = True
            elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pending["pdt"] = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00"))
            elif line.startswith("#EXTINF:"):
                pending["dur"] = float(line[8:].split(",")[0])
            elif line and not line.startswith("#"):
                when = pending.get("pdt")
                duration = float(pending.get("dur", 0.0))  # type: ignore[arg-type]
                playlist.segments.append(
                    Segment(
                        sequence=sequence,
                        uri=line,
                        duration=duration,
                        start=0.0,
                        program_date_time=when if isinstance(when, datetime) else datetime.now(UTC),
                        size=0,
                        discontinuity=bool(pending.get("disc")),
                        map_uri=map_uri,
                    )
                )
                playlist._max_duration = max(playlist._max_duration, duration)
                sequence += 1
                pending = {}
        playlist.next_sequence = sequence
        return playlist


@dataclass(frozen=True)
class Variant:
    """A line of the master playlist."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    width: int | None = None
    height: int | None = None
    frame_rate: Fraction | None = None
    note: str | None = None  # a comment line above the variant (encoder and preset), for operators


def render_master(variants: Iterable[Variant]) -> str:
    """The master playlist: one EXT-X-STREAM-INF per active rendition, best first. A variant's note is
    written as a plain comment (`# ...`, not an EXT tag), which every player ignores."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        if v.note:
            lines.append(f"# {v.note}")
        attrs = [f"BANDWIDTH={v.bandwidth}", f"AVERAGE-BANDWIDTH={v.average_bandwidth}"]
        if v.width and v.height:
            attrs.append(f"RESOLUTION={v.width}x{v.height}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={float(v.frame_rate):.3f}")
        attrs.append(f'CODECS="{v.codecs}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.uri)
    return "\n".join(lines) + "\n"


class SegmentFile:
    """One segment being written: a PyAV output container with a video and/or audio stream, renamed
    into place when closed. MPEG-TS goes straight to its file; fMP4 is muxed in memory and split into
    the init segment (`init`, kept for the caller) and the media segment written to `path`.

    With `twin`, the same packets also go into an MPEG-TS file there: the fMP4 passthrough rendition's
    recording copy (recordings keep the source as MPEG-TS whatever the live container)."""

    def __init__(
        self,
        path: Path,
        video: StreamTemplate | None,
        audio: StreamTemplate | None,
        segment_format: str = "ts",
        twin: Path | None = None,
    ) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.format = segment_format
        self.init: bytes | None = None
        self.buffer: io.BytesIO | None = None
        if segment_format == "fmp4":
            self.buffer = io.BytesIO()
            self.container: OutputContainer = av.open(self.buffer, "w", format="mp4", options=FMP4_OPTIONS)
        else:
            self.container = av.open(str(self.tmp), "w", format="mpegts")
        self.video = video.add_to(self.container) if video else None
        self.audio = audio.add_to(self.container) if audio else None
        self.twin = twin
        self.twin_container: OutputContainer | None = None
        self.twin_streams: dict[str, Stream] = {}
        if twin is not None:
            self.twin_tmp = twin.with_name(f".{twin.name}.tmp")
            self.twin_container = av.open(str(self.twin_tmp), "w", format="mpegts")
            for kind, template in (("video", video), ("audio", audio)):
                if template is not None:
                    self.twin_streams[kind] = template.add_to(self.twin_container)

    def mux(self, packet: Packet[Any], kind: str) -> None:
        stream = self.video if kind == "video" else self.audio
        if stream is None:
            return
        twin_stream = self.twin_streams.get(kind)
        copy = clone_packet(packet) if twin_stream is not None else None  # muxing consumes the packet
        packet.stream = stream
        self.container.mux(packet)
        if copy is not None and self.twin_container is not None:
            copy.stream = twin_stream
            self.twin_container.mux(copy)

    def close(self) -> int:
        """Finish the file (and its twin) and rename it into place; returns its size in bytes."""
        self.container.close()
        if self.buffer is not None:
            self.init, media = split_init(self.buffer.getvalue())
            self.tmp.write_bytes(media)
        os.replace(self.tmp, self.path)
        if self.twin_container is not None and self.twin is not None:
            self.twin_container.close()
            os.replace(self.twin_tmp, self.twin)
        return self.path.stat().st_size

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken muxer may fail again; the file goes anyway
            self.container.close()
        self.tmp.unlink(missing_ok=True)
        if self.twin_container is not None:
            with contextlib.suppress(Exception):
                self.twin_container.close()
            self.twin_tmp.unlink(missing_ok=True)


def clone_packet(packet: Packet[Any]) -> Packet[Any]:
    """A copy of a packet for a second muxer (muxing takes the packet's data)."""
    copy = Packet(bytes(packet))
    copy.pts, copy.dts, copy.duration, copy.time_base = (
        packet.pts,
        packet.dts,
        packet.duration,
        packet.time_base,
    )
    copy.is_keyframe = packet.is_keyframe
    return copy


class StreamTemplate:
    """How to add a stream to each new segment container: a copy of an input stream (passthrough), or a
    bare stream for packets of our own encoder, with extradata when the muxer needs it (AAC)."""

    def __init__(
        self,
        template: Stream | None = None,
        codec: str | None = None,
        rate: Fraction | int | None = None,
        width: int = 0,
        height: int = 0,
        extradata: bytes | None = None,
    ) -> None:
        self.template, self.codec, self.rate = template, codec, rate
        self.width, self.height, self.extradata = width, height, extradata
        self.codec_tag: str | None = None  # e.g. `hvc1`, which Safari needs for H.265 in fMP4
        self.time_base: Fraction | None = None

    def add_to(self, container: OutputContainer) -> Stream:
        if self.template is not None:
            stream = container.add_stream_from_template(self.template)
            ctx: Any = stream.codec_context
            if self.extradata is not None and ctx is not None:
                ctx.extradata = self.extradata
            if self.codec_tag and ctx is not None and container.format.name == "mp4":
                ctx.codec_tag = self.codec_tag
            if self.width and ctx is not None:
                # A template's size set on its codec context never reached its parameters (PyAV's
                # default 640x480 did): without this the MP4 header (tkhd, avc1) declares the wrong
                # size and browsers show the picture stretched to that aspect ratio.
                ctx.width, ctx.height = self.width, self.height
            if self.time_base is not None:
                stream.time_base = self.time_base
            return stream
        assert self.codec is not None
        if self.width:
            return container.add_mux_stream(self.codec, rate=self.rate, width=self.width, height=self.height)
        return container.add_mux_stream(self.codec, rate=self.rate)


def split_init(data: bytes) -> tuple[bytes, bytes]:
    """(init segment, media segment) of a fragmented MP4: everything up to the end of `moov`, the rest."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if size < 8:
            break
        pos += size
        if kind == b"moov":
            return data[:pos], data[pos:]
    raise ValueError("the fMP4 muxer wrote no moov box")


def segment_uri(sequence: int, segment_format: str = "ts") -> str:
    return f"seg-{sequence:06d}.{'m4s' if segment_format == 'fmp4' else 'ts'}"


def program_date_time(origin: datetime, media_seconds: float) -> datetime:
    return origin + timedelta(seconds=media_seconds)
