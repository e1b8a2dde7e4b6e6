"""HLS output: MPEG-TS segment files and playlists, written so a reader never sees half of anything.

Every file (segment, media playlist, master playlist) is written under a temporary name and renamed
into place, so a CDN or player polling the folder sees the previous version or the next, never a torn
one. Media playlists slide over a window of segments while live and get `#EXT-X-ENDLIST` when the
stream ends (or when a rendition is shed under load: its viewers then finish cleanly while new viewers
get a master playlist without it). Segments that left the window stay on disk for one more window, as
RFC 8216 asks, then are deleted.
"""

from __future__ import annotations

import contextlib
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
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}",
        ]
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}")
        if self.window is None and self.ended:
            lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        for seg in self.segments:
            if seg.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
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
        for line in text.splitlines():
            if line == "#EXT-X-DISCONTINUITY":
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


def render_master(variants: Iterable[Variant]) -> str:
    """The master playlist: one EXT-X-STREAM-INF per active rendition, best first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
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
    """One MPEG-TS segment being written: a PyAV output container with a video and/or audio stream,
    renamed into place when closed."""

    def __init__(self, path: Path, video: StreamTemplate | None, audio: StreamTemplate | None) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.container: OutputContainer = av.open(str(self.tmp), "w", format="mpegts")
        self.video = video.add_to(self.container) if video else None
        self.audio = audio.add_to(self.container) if audio else None

    def mux(self, packet: Packet[Any], kind: str) -> None:
        stream = self.video if kind == "video" else self.audio
        if stream is None:
            return
        packet.stream = stream
        self.container.mux(packet)

    def close(self) -> int:
        """Finish the file and rename it into place; returns its size in bytes."""
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken muxer may fail again; the file goes anyway
            self.container.close()
        self.tmp.unlink(missing_ok=True)


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

    def add_to(self, container: OutputContainer) -> Stream:
        if self.template is not None:
            stream = container.add_stream_from_template(self.template)
            if self.extradata is not None and stream.codec_context is not None:
                stream.codec_context.extradata = self.extradata
            return stream
        assert self.codec is not None
        if self.width:
            return container.add_mux_stream(self.codec, rate=self.rate, width=self.width, height=self.height)
        return container.add_mux_stream(self.codec, rate=self.rate)


def segment_uri(sequence: int) -> str:
    return f"seg-{sequence:06d}.ts"


def program_date_time(origin: datetime, media_seconds: float) -> datetime:
    return origin + timedelta(seconds=media_seconds)
