"""What a media pipeline reports while it runs (the worker turns these into bus events and logs).

Plain frozen dataclasses: the pipeline runs in a worker process and hands these to a callback, which
may send them over a pipe, so they hold only simple values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamStarted:
    """The input was opened and the ladder fitted to it."""

    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    renditions: tuple[str, ...]
    encoders: tuple[tuple[str, str], ...]  # (rendition, encoder name); passthrough says "copy"


@dataclass(frozen=True)
class SegmentWritten:
    """A segment file was renamed into place and its media playlist rewritten."""

    rendition: str
    sequence: int
    path: str
    playlist: str
    duration: float
    start: float  # media seconds since the first frame
    size: int
    discontinuity: bool
    # An MPEG-TS copy of an fMP4 passthrough segment (Transcoder(source_ts_copy=True)), for the
    # recording; it exists only while listeners are told, so take it (hard link, copy) then.
    record_path: str | None = None


@dataclass(frozen=True)
class LadderChanged:
    """The set of renditions offered in the master playlist changed (load shedding or restore)."""

    active: tuple[str, ...]
    dropped: tuple[str, ...]
    restored: tuple[str, ...]
    removed: tuple[str, ...]
    reason: str
    speed: float | None
    speeds: tuple[tuple[str, str], ...] = ()  # (rendition, encoder speed preset) after the change


@dataclass(frozen=True)
class EncoderFellBack:
    """An encoder failed mid-stream and the next candidate took over; the broadcast went on."""

    rendition: str
    failed: str
    replacement: str
    error: str


@dataclass(frozen=True)
class PipelineError:
    """Something went wrong; `fatal` means the pipeline ended because of it."""

    message: str
    fatal: bool


@dataclass(frozen=True)
class StreamEnded:
    """The pipeline finished: every media playlist has #EXT-X-ENDLIST."""

    reason: str  # "eof" | "stopped" | "error"
    media_seconds: float
    segments: int


MediaEvent = StreamStarted | SegmentWritten | LadderChanged | EncoderFellBack | PipelineError | StreamEnded
