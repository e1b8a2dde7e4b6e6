"""The live transcoding pipeline: one input, decoded once, out as an HLS ladder.

Shape (one thread, PyAV):

    demux ─┬─ video packets ─▶ passthrough rendition (remux, no re-encode)
           │                └▶ decode once (threads AUTO) ─▶ per rendition: scale ─▶ encode ─▶ segments
           └─ audio packets ─▶ AAC as is (or decoded and encoded to AAC once) ─▶ shared by every rendition

Segment boundaries are decided once for the whole ladder, in source timestamps: with a passthrough
rendition, at the first source keyframe at least a segment length after the previous boundary (a remux
can only cut there); without one, at the first frame past it. Every encoded rendition forces a keyframe
on exactly those frames and cuts there, so segment N of every rendition starts at the same timestamp
and a player can switch renditions at any segment. The encoder GOP is fps x segment length as well,
with scene-cut keyframes off.

Timestamps keep the source's clock plus a constant 10 s offset, so B-frame decode timestamps before
the first frame never go negative (which would make the muxer shift the first segment alone).

Segment format: MPEG-TS, or fMP4 (CMAF) for every rendition when the ladder or channel asks for it,
and always when a rendition is H.265 or AV1 (`ladder.choose_segment_format`; asking for TS with those
is a ValueError). fMP4 encoders are opened with global headers so the init segment's moov carries the
parameter sets. The passthrough rendition takes the ladder's container too: players (hls.js above
all) cannot switch between an MPEG-TS and an fMP4 rendition. Its init segment is the source's own
avcC/hvcC; when the publisher sends new parameter sets (a resolution change mid-stream), that keyframe
becomes a boundary of every rendition and the passthrough gets a new init segment there. The recording
keeps MPEG-TS whatever the live format: with `source_ts_copy`, each fMP4 passthrough segment is also
muxed to MPEG-TS for it (`SegmentWritten.record_path`). An audio-only stream stays MPEG-TS.

Under load the pipeline first moves every encoded rendition one encoder speed preset faster (x264
veryfast -> superfast -> ultrafast, mapped for the other encoders) and only then sheds renditions;
with headroom back it restores shed renditions first and then steps the presets back to the ladder's.
A preset change takes effect at the next common segment boundary (a keyframe, with a discontinuity
tag), so every rendition keeps its aligned cuts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
from av.audio.resampler import AudioResampler
from av.codec.context import CodecContext
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter

from ingest_node.media.codec_strings import aac_codec_string, video_codec_string
from ingest_node.media.encoders import EncoderSelector, EncoderUnavailable, EncodeSpec, VideoEncoder
from ingest_node.media.governor import SPEED_COST, LoadGovernor
from ingest_node.media.hls import (
    MediaPlaylist,
    Segment,
    SegmentFile,
    StreamTemplate,
    Variant,
    program_date_time,
    render_master,
    segment_uri,
    write_atomic,
)
from ingest_node.media.ladder import (
    Ladder,
    ResolvedRendition,
    SegmentFormat,
    choose_segment_format,
    faster_speed,
    slower_speed,
)
from ingest_node.media.parameter_sets import in_band_extradata, new_extradata_side_data
from ingest_node.media.pipeline_events import (
    EncoderFellBack,
    LadderChanged,
    MediaEvent,
    PipelineError,
    SegmentWritten,
    StreamEnded,
    StreamStarted,
)

log = logging.getLogger(__name__)

TS_OFFSET_SECONDS = 10
PASSTHROUGH_CODECS = {"h264", "hevc"}
MASTER_NAME = "master.m3u8"
LOW_LATENCY_SECONDS = 1.0  # segments this short get zero-latency encoder tuning (no lookahead delay)


class MediaInputError(RuntimeError):
    """The input cannot be used: unreadable, no audio or video stream, or a codec we cannot decode."""


@dataclass
class _AudioPacket:
    """An audio packet's bytes and timing, shared by every rendition (a muxed packet is consumed)."""

    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction

    @property
    def seconds(self) -> float:
        return float(self.pts * self.time_base)

    def packet(self) -> Packet[Any]:
        p = Packet(self.data)
        p.pts, p.dts, p.duration, p.time_base = self.pts, self.dts, self.duration, self.time_base
        return p


@dataclass
class _Output:
    """One rendition's HLS output: current segment file, playlist, pending audio, bitrate statistics."""

    name: str
    folder: Path
    playlist: MediaPlaylist
    video: StreamTemplate | None
    audio: StreamTemplate | None
    time_base: Fraction  # of the video packets (or audio, audio-only)
    origin: datetime
    t0: float
    on_segment: Callable[[_Output, Segment], None]
    segment: SegmentFile | None = None
    seg_start: int = 0
    seg_discontinuity: bool = False
    next_discontinuity: bool = False
    pending_audio: deque[_AudioPacket] = field(default_factory=lambda: deque(maxlen=4096))
    default_duration: int = 0
    codec_string: str | None = None
    peak_bps: int = 0
    total_bits: float = 0.0
    total_seconds: float = 0.0
    last_end: int | None = None
    segments_written: int = 0
    segment_format: str = "ts"
    init_data: bytes | None = None  # fMP4: the init segment now in use
    map_uri: str | None = None
    ts_twin: bool = False  # also write each segment as MPEG-TS (the fMP4 passthrough's recording copy)
    twin_path: Path | None = None  # the MPEG-TS copy of the segment just closed, while it is announced
    discontinuity_at: set[int] = field(default_factory=set)  # cuts at these timestamps are discontinuities

    def seconds(self, ts: int) -> float:
        return float(ts * self.time_base)

    def cut(self, ts: int) -> None:
        """Close the current segment at `ts` (a keyframe) and open the next one starting there."""
        if self.segment is None:  # first segment (or a restart): older audio has no video to go with
            start = self.seconds(ts)
            while self.pending_audio and self.pending_audio[0].seconds < start:
                self.pending_audio.popleft()
        self._close(ts)
        sequence = self.playlist.next_sequence
        self.playlist.next_sequence += 1
        self.segment = SegmentFile(
            self.folder / segment_uri(sequence, self.segment_format),
            self.video,
            self.audio,
            self.segment_format,
            twin=self.folder / f".{segment_uri(sequence)}" if self.ts_twin else None,
        )
        self._sequence = sequence
        self.seg_start = ts
        self.seg_discontinuity = self.next_discontinuity or ts in self.discontinuity_at
        self.discontinuity_at.discard(ts)
        self.next_discontinuity = False

    def _close(self, end_ts: int) -> None:
        if self.segment is None:
            return
        end_seconds = self.seconds(end_ts)
        self.flush_audio(end_seconds, inclusive=False)
        size = self.segment.close()
        init = self.segment.init
        twin = self.segment.twin
        self.segment = None
        new_init = init is not None and init != self.init_data
        if new_init:
            assert init is not None
            had_init = self.init_data is not None
            self._write_init(init)
            self.seg_discontinuity = self.seg_discontinuity or had_init
        duration = max(0.0, end_seconds - self.seconds(self.seg_start))
        start = self.seconds(self.seg_start) - self.t0
        seg = Segment(
            sequence=self._sequence,
            uri=segment_uri(self._sequence, self.segment_format),
            duration=duration,
            start=start,
            program_date_time=program_date_time(self.origin, start),
            size=size,
            discontinuity=self.seg_discontinuity,
            map_uri=self.map_uri,
        )
        if duration > 0:
            bps = int(size * 8 / duration)
            self.peak_bps = max(self.peak_bps, bps)
            self.total_bits += size * 8
            self.total_seconds += duration
        self.playlist.add(seg)
        self.segments_written += 1
        self.twin_path = twin
        try:
            self.on_segment(self, seg)
        finally:  # the listener hard-linked or copied it (the recording); the live folder needs none
            self.twin_path = None
            if twin is not None:
                twin.unlink(missing_ok=True)

    def _write_init(self, init: bytes) -> None:
        """Write an fMP4 init segment under a name no earlier init used (or reuse an identical one):
        players cache init segments by URL, so a changed one must never overwrite an old name."""
        index = 1
        while True:
            name = "init.mp4" if index == 1 else f"init-{index}.mp4"
            path = self.folder / name
            if not path.exists():
                tmp = path.with_name(f".{name}.tmp")
                tmp.write_bytes(init)
                os.replace(tmp, path)
                break
            if path.read_bytes() == init:
                break
            index += 1
        self.init_data = init
        self.map_uri = name

    def write_video(self, packet: Packet[Any], cut: bool) -> None:
        if packet.pts is None:
            return
        if cut or self.segment is None:
            if not packet.is_keyframe:
                return  # nothing decodable before the first keyframe
            if self.codec_string is None and self.video is not None:
                self.codec_string = video_codec_string(
                    self.video.codec or "", bytes(packet)
                ) or video_codec_string(self.video.codec or "", self.video.extradata or b"")
            self.cut(packet.pts)
        assert self.segment is not None
        dts = packet.dts if packet.dts is not None else packet.pts
        self.flush_audio(self.seconds(dts), inclusive=True)
        end = packet.pts + (packet.duration or self.default_duration)
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        self.segment.mux(packet, "video")

    def add_audio(self, ap: _AudioPacket, cut_every: int | None) -> None:
        """Queue an audio packet; audio-only outputs (no video) cut on audio time themselves."""
        if self.video is None:
            ts = round(ap.seconds / self.time_base)
            if self.segment is None or (cut_every and ts - self.seg_start >= cut_every):
                self.cut(ts)
            end = ts + round(ap.duration * ap.time_base / self.time_base)
            self.last_end = end if self.last_end is None else max(self.last_end, end)
        self.pending_audio.append(ap)
        if self.video is None:
            self.flush_audio(ap.seconds, inclusive=True)

    def flush_audio(self, until: float | None, inclusive: bool) -> None:
        """Mux queued audio up to `until` seconds into the current segment (all of it when None)."""
        while self.pending_audio:
            ap = self.pending_audio[0]
            t = ap.seconds
            if until is not None and (t > until or (t == until and not inclusive)):
                break
            self.pending_audio.popleft()
            if self.segment is not None:
                self.segment.mux(ap.packet(), "audio")

    def finish(self) -> None:
        """Close the last segment (at the end of the last frame) and write ENDLIST."""
        if self.segment is not None:
            self.flush_audio(None, inclusive=True)
            self._close(self.last_end if self.last_end is not None else self.seg_start)
        self.playlist.end()

    def variant_uri(self) -> str:
        return f"{self.name}/{self.playlist.path.name}"


class _Encoded:
    """A scaled, encoded rendition: its reformatter, its encoder (with fallback) and frame pacing."""

    def __init__(
        self, rendition: ResolvedRendition, spec: EncodeSpec, encoder: VideoEncoder, output: _Output
    ) -> None:
        self.rendition = rendition
        self.spec = spec
        self.encoder = encoder
        self.output = output
        self.reformatter = VideoReformatter()
        self.frame_interval = 0
        self.next_emit: int | None = None
        self.extra_cuts: set[int] = set()
        self.started = False
        self.pending_spec: EncodeSpec | None = None  # a preset change waiting for the next boundary
        # Frames handed to the encoder whose packets have not come out yet (its lookahead): if the
        # encoder dies they are fed to the replacement, so a fallback loses no pictures.
        self.inflight: dict[int, VideoFrame] = {}


class Transcoder:
    """Runs one live stream's ladder until the input ends or `stop()` is called.

    `source` is a path/URL, or a binary file-like (a pipe of FLV from the RTMP server). Events go to
    `on_event`. The instance is single-use.
    """

    def __init__(
        self,
        source: str | Path | IO[bytes],
        out_dir: str | Path,
        ladder: Ladder,
        segment_seconds: float,
        *,
        encoders: EncoderSelector | None = None,
        on_event: Callable[[MediaEvent], None] | None = None,
        input_format: str | None = None,
        window: int | None = 6,
        resume: bool = False,
        governor: LoadGovernor | None = None,
        clock: Callable[[], float] = time.monotonic,
        audio_kbps: int | None = None,
        on_video_packet: Callable[[Packet[Any]], None] | None = None,
        segment_format: SegmentFormat | None = None,
        source_ts_copy: bool = False,
        input_options: dict[str, str] | None = None,
    ) -> None:
        if segment_seconds <= 0:
            raise ValueError("segment_seconds must be positive")
        # Raises ValueError for TS with H.265/AV1 renditions: a clear error before any input is read.
        self.segment_format: SegmentFormat = choose_segment_format(
            ladder.codecs, segment_format or ladder.segment_format
        )
        self.source = source
        self.out_dir = Path(out_dir)
        self.ladder = ladder
        self.segment_seconds = segment_seconds
        self.selector = encoders or EncoderSelector()
        self.on_event = on_event
        self.input_format = input_format
        self.window = window
        self.resume = resume
        self.governor = governor if governor is not None else LoadGovernor()
        self.clock = clock
        self.audio_kbps = audio_kbps
        self.on_video_packet = on_video_packet  # sees each source video packet first (thumbnails)
        self.input_options = input_options  # demuxer options of a piped input (fpsprobesize: worker.py)
        # fMP4 passthrough: also write each source segment as MPEG-TS (SegmentWritten.record_path), so a
        # recording keeps the source as MPEG-TS whatever the live container.
        self.source_ts_copy = source_ts_copy
        self._pending_extradata: bytes | None = None  # a new sequence header, applied at the next keyframe
        self._stop = threading.Event()
        self._outputs: dict[str, _Output] = {}
        self._encoded: dict[str, _Encoded] = {}
        self._passthrough: _Output | None = None
        self._dropped: list[_Encoded] = []  # shed under load, most recent last
        self._removed: set[str] = set()  # gave up (no encoder left)
        self._boundaries: set[int] = set()
        self._last_master = ""
        self._last_boundary: int | None = None
        self.media_seconds = 0.0

    # ---------------------------------------------------------------- public

    def stop(self) -> None:
        """Ask the pipeline to finish: it closes every playlist with ENDLIST after the current packet."""
        self._stop.set()

    @property
    def active(self) -> list[str]:
        """Renditions currently offered in the master playlist, best first."""
        return [name for name in self._outputs if self._is_active(name)]

    def run(self) -> None:
        """Transcode until EOF or stop(); raises MediaInputError for input that cannot be used (after
        emitting a fatal PipelineError)."""
        try:
            container = self._open_input()
        except MediaInputError as exc:
            self._emit(PipelineError(str(exc), fatal=True))
            self._emit(StreamEnded("error", 0.0, 0))
            raise
        reason = "eof"
        try:
            self._run(container)
            if self._stop.is_set():
                reason = "stopped"
        except MediaInputError as exc:
            reason = "error"
            self._emit(PipelineError(str(exc), fatal=True))
            raise
        except av.error.FFmpegError as exc:
            # A publisher vanishing mid-GOP ends the input with a read error: keep what we have.
            reason = "eof"
            self._emit(PipelineError(f"input ended with an error: {exc}", fatal=False))
        finally:
            self._finish(reason)
            container.close()

    # ---------------------------------------------------------------- setup

    def _open_input(self) -> Any:
        try:
            if isinstance(self.source, (str, Path)):
                container = av.open(str(self.source), format=self.input_format)
            else:
                container = av.open(
                    self.source, mode="r", format=self.input_format or "flv", options=self.input_options
                )
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise MediaInputError(f"cannot read the input: {exc}") from exc
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is not None and (video.codec_context is None or not video.codec_context.width):
            video = None
        if video is None and audio is None:
            container.close()
            raise MediaInputError("the input has neither a video nor an audio stream")
        self._video_in: Any = video  # PyAV streams: typed loosely by its stubs
        self._audio_in: Any = audio
        return container

    def _setup(self, first_seconds: float) -> None:
        """Fit the ladder to the source and open every output (on the first packet: t0 is known)."""
        video, audio = self._video_in, self._audio_in
        self.origin = datetime.now(UTC)
        self.t0 = first_seconds + TS_OFFSET_SECONDS
        self.out_dir.mkdir(parents=True, exist_ok=True)
        audio_template = self._setup_audio(audio) if audio is not None else None
        encoders: list[tuple[str, str]] = []
        if video is None:
            self._add_output("audio", None, audio_template, Fraction(1, 90000))
            encoders.append(("audio", "copy" if self._audio_copy else "aac"))
            self._emit_started(None, None, None, encoders)
            return
        ctx = video.codec_context
        ctx.thread_type = "AUTO"
        self.vtb = video.time_base or Fraction(1, 1000)
        fps = video.average_rate or video.guessed_rate or Fraction(30)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.seg_ticks = round(self.segment_seconds / self.vtb)
        self.frame_ticks = max(1, round(1 / (self.fps * self.vtb)))
        self.v_offset = round(TS_OFFSET_SECONDS / self.vtb)
        width, height = ctx.width, ctx.height
        codec = ctx.codec.name if ctx.codec else video.codec_context.name
        for r in self.ladder.for_source(width, height, self.fps):
            if r.spec.passthrough:
                if codec not in PASSTHROUGH_CODECS:
                    log.warning("no passthrough: %s cannot go into MPEG-TS HLS", codec)
                    continue
                template = StreamTemplate(template=video, codec=codec)
                if self.segment_format == "fmp4":  # the same container as every other rendition
                    template.width, template.height = width, height
                    template.codec_tag = "hvc1" if codec == "hevc" else None  # Safari takes only hvc1
                    template.extradata = bytes(ctx.extradata or b"") or None
                out = self._add_output(r.name, template, audio_template, self.vtb)
                out.segment_format = self.segment_format
                out.ts_twin = self.segment_format == "fmp4" and self.source_ts_copy
                out.codec_string = video_codec_string(codec, bytes(ctx.extradata or b""))
                self._passthrough = out
                self._pass_rendition = r
                encoders.append((r.name, "copy"))
                continue
            enc = self._open_encoded(r, audio_template)
            if enc is not None:
                encoders.append((r.name, enc.encoder.name))
        if not self._outputs:
            raise MediaInputError("no rendition could be set up for this input")
        self._emit_started(width, height, float(self.fps), encoders)

    def _emit_started(
        self, width: int | None, height: int | None, fps: float | None, encoders: list[tuple[str, str]]
    ) -> None:
        vcodec = self._video_in.codec_context.name if self._video_in is not None else None
        acodec = self._audio_in.codec_context.name if self._audio_in is not None else None
        self._emit(StreamStarted(width, height, fps, vcodec, acodec, tuple(self._outputs), tuple(encoders)))

    def _spec(self, r: ResolvedRendition) -> EncodeSpec:
        s = r.spec
        return EncodeSpec(
            codec=s.codec,
            width=r.width,
            height=r.height,
            fps=r.fps,
            time_base=self.vtb,
            global_header=self.segment_format == "fmp4",
            low_latency=self.segment_seconds <= LOW_LATENCY_SECONDS,
            bitrate=s.video_kbps * 1000,
            maxrate=s.maxrate_kbps * 1000,
            bufsize=s.bufsize_kbps * 1000,
            gop=max(1, round(float(r.fps) * self.segment_seconds)),
            speed=s.speed,
        )

    def _open_encoded(self, r: ResolvedRendition, audio_template: StreamTemplate | None) -> _Encoded | None:
        spec = self._spec(r)
        try:
            encoder = self.selector.open(spec)
        except EncoderUnavailable as exc:
            self._emit(PipelineError(f"rendition {r.name} skipped: {exc}", fatal=False))
            self._removed.add(r.name)
            return None
        out = self._outputs.get(r.name)
        if out is None:
            out = self._add_output(r.name, self._video_template(r), audio_template, self.vtb)
            out.segment_format = self.segment_format
        self._use_encoder(out, encoder)
        enc = _Encoded(r, spec, encoder, out)
        if r.fps < self.fps:
            enc.frame_interval = round(1 / (r.fps * self.vtb))
        self._encoded[r.name] = enc
        return enc

    def _video_template(self, r: ResolvedRendition) -> StreamTemplate:
        """MPEG-TS takes bare streams; the MP4 muxer needs codec parameters (size, pixel format, global
        header, `hvc1` tag for Safari), so fMP4 renditions get a template stream from a holder muxer."""
        if self.segment_format != "fmp4":
            return StreamTemplate(codec=r.spec.codec, rate=r.fps, width=r.width, height=r.height)
        if not hasattr(self, "_vholder"):
            self._vholder = av.open(_Discard(), "w", format="mp4")
        stream: Any = self._vholder.add_stream(r.spec.codec, rate=r.fps)
        stream.codec_context.width, stream.codec_context.height = r.width, r.height
        stream.codec_context.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.vtb
        template = StreamTemplate(
            template=stream, codec=r.spec.codec, rate=r.fps, width=r.width, height=r.height
        )
        template.codec_tag = "hvc1" if r.spec.codec == "hevc" else None
        template.time_base = self.vtb
        return template

    def _use_encoder(self, out: _Output, encoder: VideoEncoder) -> None:
        """Point an output at a (new) encoder: fMP4 segments get its global header from now on (a changed
        header means a new init segment), and the codec string is read again from what it produces."""
        if out.video is None:
            return
        extradata = getattr(encoder, "extradata", b"") or b""
        if self.segment_format == "fmp4":
            out.video.extradata = extradata or None
            out.codec_string = video_codec_string(out.video.codec or "", extradata)
        else:
            out.codec_string = None  # read from the next keyframe (in-band parameter sets)

    def _add_output(
        self, name: str, video: StreamTemplate | None, audio: StreamTemplate | None, tb: Fraction
    ) -> _Output:
        folder = self.out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "index.m3u8"
        if self.resume:
            playlist = MediaPlaylist.resume(path, self.segment_seconds, self.window)
        else:
            playlist = MediaPlaylist(path=path, target_seconds=self.segment_seconds, window=self.window)
        out = _Output(
            name=name,
            folder=folder,
            playlist=playlist,
            video=video,
            audio=audio,
            time_base=tb,
            origin=self.origin,
            t0=self.t0,
            on_segment=self._segment_done,
        )
        out.next_discontinuity = bool(playlist.segments)  # resuming a broadcast
        playlist.ended = False
        if video is None and audio is not None:
            out.codec_string = None
        if video is not None:
            out.default_duration = self.frame_ticks
        self._outputs[name] = out
        return out

    def _setup_audio(self, audio: Stream) -> StreamTemplate:
        actx: Any = audio.codec_context
        self._audio_copy = actx.name == "aac" and bool(actx.extradata)
        self.audio_codec_string = aac_codec_string(actx.profile if self._audio_copy else "LC")
        self.atb = audio.time_base or Fraction(1, 1000)
        self.a_offset = round(TS_OFFSET_SECONDS / self.atb)
        if self._audio_copy:
            return StreamTemplate(template=audio)
        rate = actx.sample_rate if actx.sample_rate in (44100, 48000, 32000, 24000, 22050, 16000) else 48000
        kbps = self.audio_kbps or max((r.audio_kbps for r in self.ladder.renditions), default=128)
        enc: Any = CodecContext.create("aac", "w")
        enc.sample_rate = rate
        enc.layout = "stereo"
        enc.format = "fltp"
        enc.bit_rate = kbps * 1000
        enc.time_base = Fraction(1, rate)
        enc.open()
        actx.thread_type = "AUTO"
        self._aenc = enc
        self._resampler = AudioResampler(format="fltp", layout="stereo", rate=rate)
        self._a_next_pts: int | None = None
        holder = av.open(_Discard(), "w", format="mpegts")
        hstream = holder.add_stream("aac", rate=rate)
        self._holder = holder
        return StreamTemplate(template=hstream, extradata=bytes(enc.extradata or b""))

    # ---------------------------------------------------------------- main loop

    def _run(self, container: Any) -> None:
        streams = [s for s in (self._video_in, self._audio_in) if s is not None]
        packets: Iterator[Packet[Any]] = container.demux(streams)
        clock = self.clock
        ready = False
        last_media = 0.0
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            after = clock()
            if packet.dts is None and packet.pts is None:
                continue  # demuxer flush packet
            if not ready:
                first = packet.dts if packet.dts is not None else packet.pts
                self._setup(float((first or 0) * packet.time_base))
                ready = True
            if packet.stream is self._video_in:
                self._on_video_packet(packet)
            else:
                self._on_audio_packet(packet)
            busy = clock() - after
            media = self.media_seconds
            speed = self.governor.observe(max(0.0, media - last_media), busy)
            last_media = media
            if speed is not None and self._video_in is not None:
                self._adapt(speed)
        if ready:
            self._drain()

    def _ticks_now(self, packet: Packet[Any]) -> None:
        if packet.pts is not None:
            self.media_seconds = max(self.media_seconds, float(packet.pts * packet.time_base) - self.t0)

    def _on_video_packet(self, packet: Packet[Any]) -> None:
        if self.on_video_packet is not None:
            try:
                self.on_video_packet(packet)
            except Exception:  # a thumbnail must never cost the broadcast
                log.exception("video packet listener failed")
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            return
        packet.pts = ts + self.v_offset
        packet.dts = (packet.dts if packet.dts is not None else ts) + self.v_offset
        self._ticks_now(packet)
        cut = False
        new_config = self._new_source_config(packet)
        if self._passthrough is not None and packet.is_keyframe and (new_config or self._due(packet.pts)):
            self._boundaries.add(packet.pts)
            self._last_boundary = packet.pts
            cut = True
            if new_config:  # every rendition cuts here, marked alike, so discontinuity sequences agree
                for out in self._outputs.values():
                    out.discontinuity_at.add(packet.pts)
        frames: list[VideoFrame] = []
        if self._encoded:
            try:
                frames = list(self._video_in.codec_context.decode(packet))
            except av.error.FFmpegError as exc:
                log.warning("video decode error (frame dropped): %s", exc)
        if self._passthrough is not None:
            try:
                self._passthrough.write_video(packet, cut)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("passthrough packet dropped: %s", exc)
        for frame in frames:
            self._on_frame(frame)

    def _new_source_config(self, packet: Packet[Any]) -> bool:
        """fMP4 passthrough: True when this keyframe brings new parameter sets (a resolution change mid-
        stream). The passthrough's template then carries them and the new size, so the segment cut here
        gets a new init segment (new EXT-X-MAP, after a discontinuity). MPEG-TS needs nothing of this:
        its segments carry their parameter sets in-band."""
        out = self._passthrough
        if out is None or out.segment_format != "fmp4" or out.video is None:
            return False
        side = new_extradata_side_data(packet)
        if side is not None:
            self._pending_extradata = side
        if not packet.is_keyframe:
            return False
        current = out.video.extradata or b""
        codec = out.video.codec or ""
        new = self._pending_extradata
        self._pending_extradata = None
        if new is None and codec == "h264":
            new = in_band_extradata(bytes(packet), current)
        if new is None or new == current:
            return False
        size = _picture_size(codec, new, packet)
        out.video.extradata = new
        if size is not None:
            out.video.width, out.video.height = size
            self._pass_rendition = self._pass_rendition.model_copy(
                update={"width": size[0], "height": size[1]}
            )
        out.codec_string = video_codec_string(codec, new) or out.codec_string
        log.info("source: new parameter sets at %s, %s: a new init segment", packet.pts, size)
        return out.segment is not None  # the first keyframe starts a segment anyway

    def _due(self, pts: int) -> bool:
        last = self._last_boundary
        return last is None or pts - last >= self.seg_ticks - self.frame_ticks // 2

    def _on_frame(self, frame: VideoFrame) -> None:
        pts = frame.pts
        if pts is None:
            return
        if self._passthrough is None and self._due(pts):
            self._boundaries.add(pts)
            self._last_boundary = pts
        boundary = pts in self._boundaries
        if self._passthrough is not None and self._last_boundary is None:
            return  # before the source's first keyframe
        if self._passthrough is not None:
            self._check_source_size(frame)
        for enc in list(self._encoded.values()):
            self._encode(enc, frame, pts, boundary)
        if len(self._boundaries) > 64:
            keep = sorted(self._boundaries)[-8:]
            self._boundaries = set(keep)

    def _check_source_size(self, frame: VideoFrame) -> None:
        r = self._pass_rendition
        if (frame.width, frame.height) != (r.width, r.height):
            self._pass_rendition = r.model_copy(update={"width": frame.width, "height": frame.height})

    def _encode(self, enc: _Encoded, frame: VideoFrame, pts: int, boundary: bool) -> None:
        if not enc.started:
            if not boundary:
                return  # a (re)started rendition waits for the next common boundary
            enc.started = True
        elif boundary and enc.pending_spec is not None:
            self._switch_speed(enc)
            if enc.rendition.name not in self._encoded:
                return
        too_soon = enc.next_emit is not None and pts < enc.next_emit - self.frame_ticks // 2
        if enc.frame_interval and not boundary and too_soon:
            return  # a lower frame rate than the source's
        if enc.frame_interval:
            enc.next_emit = pts + enc.frame_interval
        scaled = enc.reformatter.reformat(
            frame,
            enc.spec.width,
            enc.spec.height,
            "yuv420p",
            interpolation=Interpolation.BICUBIC,
        )
        scaled.pts = pts
        scaled.time_base = self.vtb
        scaled.pict_type = PictureType.I if boundary else PictureType.NONE
        enc.inflight[pts] = scaled
        try:
            packets = enc.encoder.encode(scaled)
        except Exception as exc:  # a hardware encoder failing mid-stream
            fallback = self._fall_back(enc, exc)
            if fallback is None:
                return
            packets = fallback
        self._write_encoded(enc, packets)

    def _fall_back(self, enc: _Encoded, exc: Exception, flush: bool = False) -> list[Packet[Any]] | None:
        """Replace a failed encoder by the next candidate and re-encode the frames the failed one still
        held, the first as a keyframe that starts a new segment (marked as a discontinuity)."""
        failed = enc.encoder.name
        try:
            enc.encoder = self.selector.open(enc.spec, after=failed)
        except EncoderUnavailable as none_left:
            self._emit(PipelineError(f"rendition {enc.rendition.name} ended: {exc}; {none_left}", False))
            self._remove(enc, reason=f"encoder {failed} failed and no fallback opened")
            return None
        self._use_encoder(enc.output, enc.encoder)
        log.warning("encoder %s failed (%s); %s took over", failed, exc, enc.encoder.name)
        self._emit(EncoderFellBack(enc.rendition.name, failed, enc.encoder.name, str(exc)))
        pending = sorted(enc.inflight.items())
        packets: list[Packet[Any]] = []
        if pending:
            first_pts, first = pending[0]
            enc.extra_cuts.add(first_pts)
            enc.output.next_discontinuity = True
            first.pict_type = PictureType.I
        try:
            for _, frame in pending:
                packets.extend(enc.encoder.encode(frame))
            if flush:
                packets.extend(enc.encoder.encode(None))
        except Exception as again:
            return self._fall_back(enc, again, flush)
        return packets

    def _switch_speed(self, enc: _Encoded) -> None:
        """Apply a pending preset change on a boundary frame: drain the old encoder into the segment it
        belongs to, open the new one; its first (forced) keyframe starts the next segment, marked as a
        discontinuity since the encoding parameters changed."""
        spec, enc.pending_spec = enc.pending_spec, None
        assert spec is not None
        self._flush_encoder(enc)
        if enc.rendition.name not in self._encoded:
            return  # the flush failed for good and the rendition was removed
        try:
            encoder = self.selector.open(spec)
        except EncoderUnavailable:
            try:  # the old parameters opened before: keep them rather than lose the rendition
                encoder, spec = self.selector.open(enc.spec), enc.spec
            except EncoderUnavailable as exc:
                self._emit(PipelineError(f"rendition {enc.rendition.name} ended: {exc}", False))
                self._remove(enc, reason=f"no encoder reopened for {enc.rendition.name}")
                return
        enc.encoder, enc.spec = encoder, spec
        enc.inflight.clear()
        enc.output.next_discontinuity = True
        self._use_encoder(enc.output, encoder)

    def _write_encoded(self, enc: _Encoded, packets: list[Packet[Any]]) -> None:
        out = enc.output
        for p in packets:
            p.time_base = enc.encoder.time_base
            if p.pts is not None:
                enc.inflight.pop(p.pts, None)
            cut = bool(
                p.is_keyframe and p.pts is not None and (p.pts in self._boundaries or p.pts in enc.extra_cuts)
            )
            if cut:
                enc.extra_cuts.discard(p.pts or 0)
            try:
                out.write_video(p, cut)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("%s: packet dropped: %s", enc.rendition.name, exc)

    def _on_audio_packet(self, packet: Packet[Any]) -> None:
        if packet.pts is None:
            return
        self._ticks_now_audio(packet)
        if self._audio_copy:
            aps = [
                _AudioPacket(
                    bytes(packet),
                    packet.pts + self.a_offset,
                    (packet.dts if packet.dts is not None else packet.pts) + self.a_offset,
                    packet.duration or 0,
                    self.atb,
                )
            ]
        else:
            aps = self._transcode_audio(packet)
        cut_every = round(self.segment_seconds * 90000)
        for ap in aps:
            for out in self._outputs.values():
                if self._is_active(out.name) or out is self._passthrough:
                    out.add_audio(ap, cut_every)

    def _ticks_now_audio(self, packet: Packet[Any]) -> None:
        if self._video_in is None and packet.pts is not None:
            now = float(packet.pts * packet.time_base) + TS_OFFSET_SECONDS - self.t0
            self.media_seconds = max(self.media_seconds, now)

    def _transcode_audio(self, packet: Packet[Any] | None) -> list[_AudioPacket]:
        out: list[_AudioPacket] = []
        try:
            frames = self._audio_in.codec_context.decode(packet)
        except av.error.FFmpegError as exc:
            log.warning("audio decode error (dropped): %s", exc)
            return out
        rate = self._aenc.sample_rate
        for frame in [*frames, None] if packet is None else frames:
            for rf in self._resampler.resample(frame):
                if self._a_next_pts is None:
                    start = float(frame.pts * frame.time_base) if frame and frame.pts is not None else 0.0
                    self._a_next_pts = round((start + TS_OFFSET_SECONDS) * rate)
                rf.pts = self._a_next_pts
                rf.time_base = Fraction(1, rate)
                self._a_next_pts += rf.samples
                out.extend(self._wrap_aac(self._aenc.encode(rf)))
        if packet is None:
            out.extend(self._wrap_aac(self._aenc.encode(None)))
        return out

    def _wrap_aac(self, packets: list[Packet[Any]]) -> list[_AudioPacket]:
        tb = Fraction(1, self._aenc.sample_rate)
        return [
            _AudioPacket(
                bytes(p), p.pts or 0, p.dts if p.dts is not None else p.pts or 0, p.duration or 0, tb
            )
            for p in packets
        ]

    # ---------------------------------------------------------------- load

    def _is_active(self, name: str) -> bool:
        return name not in self._removed and all(d.rendition.name != name for d in self._dropped)

    @staticmethod
    def _speed_of(enc: _Encoded) -> str:
        return enc.pending_spec.speed if enc.pending_spec is not None else enc.spec.speed

    @staticmethod
    def _cost(enc: _Encoded, speed: str | None = None) -> float:
        """Encode cost: pixels per second times the preset's relative cost (veryfast = 1)."""
        factor = SPEED_COST.get(speed or Transcoder._speed_of(enc), 1.0) / SPEED_COST["veryfast"]
        return enc.rendition.cost * factor

    def _adapt(self, speed: float) -> None:
        active = [e for e in self._encoded.values() if self._is_active(e.rendition.name)]
        active_cost = sum(self._cost(e) for e in active)
        source_cost = float(self._pass_source_cost())
        restore = self._dropped[-1] if self._dropped else None
        faster = [e for e in active if faster_speed(self._speed_of(e)) is not None]
        slower = {
            e: step
            for e in active
            if (step := slower_speed(self._speed_of(e), e.rendition.spec.speed)) is not None
        }
        slow_down_cost = (
            sum(self._cost(e, step) - self._cost(e) for e, step in slower.items()) if slower else None
        )
        decision = self.governor.decide(
            speed,
            active_cost,
            source_cost,
            self._cost(restore) if restore else None,
            can_speed_up=bool(faster),
            slow_down_cost=slow_down_cost,
        )
        if decision == "faster":
            self._change_speed({e: faster_speed(self._speed_of(e)) or "" for e in faster}, speed, "behind")
        elif decision == "slower":
            self._change_speed(dict(slower), speed, "headroom")
        elif decision == "shed" and active:
            victim = max(active, key=lambda e: e.rendition.cost)
            self._shed(victim, speed)
        elif decision == "restore" and restore is not None:
            self._restore(restore, speed)

    def _change_speed(self, steps: dict[_Encoded, str], speed: float, why: str) -> None:
        """Schedule a preset change for each rendition in `steps` (applied at the next boundary)."""
        changes = []
        for enc, new in steps.items():
            old = self._speed_of(enc)
            enc.pending_spec = replace(enc.spec, speed=new)
            changes.append(f"{enc.rendition.name} {old}->{new}")
        reason = (
            f"behind real time (speed {speed:.2f}): faster presets"
            if why == "behind"
            else f"headroom back (speed {speed:.2f}): slower presets"
        )
        self._emit_ladder(f"{reason} {', '.join(changes)}", speed)

    def speeds(self) -> dict[str, str]:
        """Encoder speed preset of every active encoded rendition (the pending one once scheduled)."""
        return {name: self._speed_of(e) for name, e in self._encoded.items() if self._is_active(name)}

    def _pass_source_cost(self) -> float:
        ctx = self._video_in.codec_context
        return float(ctx.width * ctx.height * self.fps)

    def _shed(self, enc: _Encoded, speed: float) -> None:
        self._flush_encoder(enc)
        enc.output.finish()
        del self._encoded[enc.rendition.name]
        self._dropped.append(enc)
        self._emit_ladder(f"behind real time (speed {speed:.2f})", speed, dropped=(enc.rendition.name,))

    def _restore(self, enc: _Encoded, speed: float) -> None:
        self._dropped.remove(enc)
        out = enc.output
        epoch = 2
        while (
            out.folder / f"index-{epoch}.m3u8"
        ).exists() or out.playlist.path.name == f"index-{epoch}.m3u8":
            epoch += 1
        playlist = MediaPlaylist(
            path=out.folder / f"index-{epoch}.m3u8", target_seconds=self.segment_seconds, window=self.window
        )
        playlist.next_sequence = out.playlist.next_sequence
        out.playlist = playlist
        out.last_end = None
        try:
            encoder = self.selector.open(enc.spec)
        except EncoderUnavailable as exc:
            self._emit(PipelineError(f"rendition {enc.rendition.name} not restored: {exc}", False))
            self._removed.add(enc.rendition.name)
            return
        self._use_encoder(out, encoder)
        fresh = _Encoded(enc.rendition, enc.spec, encoder, out)
        fresh.frame_interval = enc.frame_interval
        self._encoded[enc.rendition.name] = fresh
        self._emit_ladder(f"headroom back (speed {speed:.2f})", speed, restored=(enc.rendition.name,))

    def _remove(self, enc: _Encoded, reason: str) -> None:
        enc.output.finish()
        self._encoded.pop(enc.rendition.name, None)
        self._removed.add(enc.rendition.name)
        self._emit_ladder(reason, None, removed=(enc.rendition.name,))

    def _emit_ladder(
        self,
        reason: str,
        speed: float | None,
        dropped: tuple[str, ...] = (),
        restored: tuple[str, ...] = (),
        removed: tuple[str, ...] = (),
    ) -> None:
        self._write_master()
        speeds = tuple(self.speeds().items())
        self._emit(LadderChanged(tuple(self.active), dropped, restored, removed, reason, speed, speeds))

    # ---------------------------------------------------------------- end

    def _flush_encoder(self, enc: _Encoded) -> None:
        try:
            packets = enc.encoder.encode(None)
        except Exception as exc:
            fallback = self._fall_back(enc, exc, flush=True)
            if fallback is None:
                return
            packets = fallback
        self._write_encoded(enc, packets)

    def _drain(self) -> None:
        if self._video_in is not None and self._encoded:
            try:
                frames = list(self._video_in.codec_context.decode(None))
            except av.error.FFmpegError:
                frames = []
            for frame in frames:
                self._on_frame(frame)
            for enc in list(self._encoded.values()):
                self._flush_encoder(enc)
        if self._audio_in is not None and not self._audio_copy:
            for ap in self._transcode_audio(None):
                for out in self._outputs.values():
                    if self._is_active(out.name):
                        out.add_audio(ap, None)

    def _finish(self, reason: str) -> None:
        segments = 0
        for out in self._outputs.values():
            if self._is_active(out.name):
                try:
                    out.finish()
                except Exception as exc:  # a broken last segment must not keep ENDLIST from the rest
                    log.warning("%s: could not close the last segment: %s", out.name, exc)
                    if out.segment is not None:
                        out.segment.abandon()
                        out.segment = None
                    out.playlist.end()
            segments += out.segments_written
        if self._outputs:
            self._write_master()
        self._emit(StreamEnded(reason, round(self.media_seconds, 3), segments))

    # ---------------------------------------------------------------- master & events

    def _segment_done(self, out: _Output, seg: Segment) -> None:
        self._emit(
            SegmentWritten(
                rendition=out.name,
                sequence=seg.sequence,
                path=str(out.folder / seg.uri),
                playlist=str(out.playlist.path),
                duration=seg.duration,
                start=seg.start,
                size=seg.size,
                discontinuity=seg.discontinuity,
                record_path=str(out.twin_path) if out.twin_path is not None else None,
            )
        )
        self._write_master()

    def variants(self) -> list[Variant]:
        """Master playlist lines of the active renditions that have at least one segment."""
        result = []
        for name, out in self._outputs.items():
            if not self._is_active(name) or not out.playlist.segments:
                continue
            codecs = [c for c in (out.codec_string,) if c]
            if self._audio_in is not None:
                codecs.append(self.audio_codec_string)
            width = height = None
            rate = None
            note = None
            if name in self._encoded:
                e = self._encoded[name]
                width, height, rate = e.spec.width, e.spec.height, e.spec.fps
                note = f"{name}: {e.encoder.name} preset {self._speed_of(e)}, {out.segment_format}"
            elif out is self._passthrough:
                width, height, rate = self._pass_rendition.width, self._pass_rendition.height, self.fps
            peak = out.peak_bps or 1
            average = int(out.total_bits / out.total_seconds) if out.total_seconds else peak
            result.append(
                Variant(
                    uri=out.variant_uri(),
                    bandwidth=max(peak, average),
                    average_bandwidth=average,
                    codecs=",".join(codecs),
                    width=width,
                    height=height,
                    frame_rate=rate,
                    note=note,
                )
            )
        return result

    def _write_master(self) -> None:
        text = render_master(self.variants())
        if text != self._last_master:
            write_atomic(self.out_dir / MASTER_NAME, text)
            self._last_master = text

    def _emit(self, event: MediaEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not break the broadcast
            log.exception("media event listener failed on %s", type(event).__name__)


def _picture_size(codec: str, extradata: bytes, packet: Packet[Any]) -> tuple[int, int] | None:
    """The picture size of a keyframe decoded with these parameter sets (one frame, a fresh decoder:
    the pipeline's own decoder may be frames behind, or not running on a passthrough-only ladder)."""
    try:
        ctx: Any = CodecContext.create(codec, "r")
        ctx.extradata = extradata
        probe = Packet(bytes(packet))
        probe.pts, probe.dts, probe.time_base = packet.pts, packet.dts, packet.time_base
        frames = [*ctx.decode(probe), *ctx.decode(None)]
    except (av.error.FFmpegError, ValueError) as exc:
        log.warning("could not read the new picture size: %s", exc)
        return None
    return (frames[0].width, frames[0].height) if frames else None


class _Discard:
    """A write-only sink for the muxer that only holds the shared AAC stream's parameters."""

    def write(self, data: bytes) -> int:
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0
