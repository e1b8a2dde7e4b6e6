"""The per-stream worker process: FLV on stdin in, HLS (master + media playlists + segments) out.

The node starts one worker per live stream (`python -m ingest_node.media.worker ...`) and writes the
publisher's FLV byte stream into its stdin, as Owncast feeds ffmpeg's stdin: a worker that crashes,
hangs or runs out of memory takes only its own stream down, and the node restarts it. The worker talks
back on stdout with one JSON object per line (`{"event": "ready"}`, `{"event": "ladder_changed", ...}`,
`{"event": "refused", "reason": ...}`); its stderr goes to the node's log.

The media pipeline is the Transcoder of `ingest_node.media.transcoder` (the adaptive ladder) when that
module is importable; otherwise a plain PyAV remux of the source into one `source` rendition, so a
node always serves what it receives. Started with `--append`, the worker continues the playlists it
finds in the output folder (a restarted worker, a publisher that reconnected within the grace period):
the same URLs, with an EXT-X-DISCONTINUITY where the new run begins.

Exit codes: 0 after the source ended (stdin closed), `EXIT_REFUSED` when the source cannot be served
(not FLV, an unsupported codec): restarting would fail the same way, so the node ends the stream.

Warm spare (`--spare`): the node keeps one worker started ahead of time, which imports PyAV and the
media library, loads the ladder presets, says `{"event": "spare_ready"}` and then waits for one line
on stdin: `{"argv": [...]}`, the arguments of the stream it is given; the FLV follows on the same
stdin. A spare serves one stream and exits with it, exactly as a cold-started worker, so isolation and
supervision are unchanged; what it saves is the interpreter start and the imports (about 1 s of CPU,
several seconds on a loaded machine) while the publisher is already sending. A spare whose stdin closes
before any line exits 0.

Probing: FLV from RTMP names its codecs in the header and the sequence headers, and OBS and ffmpeg
send the frame rate in the metadata (`framerate`). When the first tag is metadata with a frame rate
(`peek_flv`), the input is opened with `fpsprobesize=0` (`FAST_PROBE`): without it FFmpeg holds the
first 40 video frames (about 1.3 s at 30 fps) to measure a frame rate it was already told, and the
first segment waits for them. Without that metadata FFmpeg measures it as before (its guess from a
single frame of FLV's millisecond clock can be 50 for a 25 fps source).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import struct
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
from av.bitstream import BitStreamFilterContext

from ingest_node.media.hls import clone_packet
from ingest_node.media.recording import SegmentRecorder, open_remux_recording
from ingest_node.media.thumbnails import Thumbnailer

log = logging.getLogger("ingest_node.media.worker")

EXIT_REFUSED = 3
SOURCE_RENDITION = "source"
SUPPORTED_VIDEO = {"h264", "hevc", "av1"}
SUPPORTED_AUDIO = {"aac", "mp3", "opus"}
ANNEXB_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
DEFAULT_BANDWIDTH = 2_500_000
PROBE_OPTIONS = {"probesize": "2000000", "analyzeduration": "2000000"}
# When the FLV metadata gives the frame rate: do not hold frames to measure it (see the docstring).
FAST_PROBE = {"fpsprobesize": "0"}
FLV_HEADER_BYTES = 13  # the 9-byte header and the first PreviousTagSize
MAX_PEEK_TAG = 64 * 1024
AMF_FRAMERATE = b"\x00\x09framerate\x00"  # ECMA-array key "framerate", then an AMF0 number


class MediaRefused(Exception):
    """The source cannot be served (not a stream we understand); a restart would not help."""


class PeekedInput:
    """A binary stream whose first bytes were read ahead (`peek_flv`), given back before the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def peek_flv(source: BinaryIO) -> tuple[PeekedInput, float | None]:
    """Read the FLV header and, if the first tag is metadata, that tag; return a stream that still
    starts at byte 0 and the frame rate the metadata declares (None: not declared, or not FLV)."""
    head = _read_exactly(source, FLV_HEADER_BYTES)
    fps: float | None = None
    if len(head) == FLV_HEADER_BYTES and head[:3] == b"FLV":
        tag_head = _read_exactly(source, 11)
        head += tag_head
        if len(tag_head) == 11 and tag_head[0] == 18:  # a script tag: onMetaData
            size = int.from_bytes(tag_head[1:4], "big")
            if size <= MAX_PEEK_TAG:
                body = _read_exactly(source, size)
                head += body
                fps = _metadata_frame_rate(body)
    return PeekedInput(head, source), fps


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = source.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _metadata_frame_rate(body: bytes) -> float | None:
    at = body.find(AMF_FRAMERATE)
    if at < 0 or len(body) < at + len(AMF_FRAMERATE) + 8:
        return None
    start = at + len(AMF_FRAMERATE)
    (value,) = struct.unpack(">d", body[start : start + 8])
    return value if 0 < value <= 1000 else None


def emit(event: str, **fields: Any) -> None:
    """One line of JSON to the node on stdout (flushed: the node reads it as it comes)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so an HTTP reader never sees half a playlist."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def avc_codec_string(extradata: bytes | None) -> str:
    """`avc1.PPCCLL` from an avcC record (FLV carries one); a safe Main 3.1 when absent."""
    if extradata and len(extradata) >= 4 and extradata[0] == 1:
        return f"avc1.{extradata[1]:02x}{extradata[2]:02x}{extradata[3]:02x}"
    return "avc1.4d401f"


def master_playlist(
    *,
    bandwidth: int,
    width: int | None,
    height: int | None,
    fps: Fraction | None,
    codecs: list[str],
    uri: str,
) -> str:
    attrs = [f"BANDWIDTH={bandwidth}", f"AVERAGE-BANDWIDTH={bandwidth}"]
    if width and height:
        attrs.append(f"RESOLUTION={width}x{height}")
    if fps:
        attrs.append(f"FRAME-RATE={float(fps):.3f}")
    if codecs:
        attrs.append(f'CODECS="{",".join(codecs)}"')
    return "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n" + (
        f"#EXT-X-STREAM-INF:{','.join(attrs)}\n{uri}\n"
    )


def remux_to_hls(
    source: BinaryIO | PeekedInput | str,
    out_dir: Path,
    segment_seconds: float,
    *,
    append: bool,
    record_dir: Path | None = None,
    thumbnail_seconds: float | None = None,
    fast_probe: bool = False,
) -> None:
    """The fallback pipeline: the source's own packets into one HLS rendition, no decode, no encode.

    With `record_dir`, a second muxer keeps every segment for the recording; with `thumbnail_seconds`,
    a keyframe is decoded that often into `thumbnail.jpg`; `fast_probe` when the metadata gave the
    frame rate.
    """
    options = {**PROBE_OPTIONS, **(FAST_PROBE if fast_probe else {})}
    try:
        inp = av.open(source, mode="r", format="flv", options=options)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaRefused(f"the source is not a readable FLV stream ({exc})") from exc
    with inp:
        video = inp.streams.video[0] if inp.streams.video else None
        audio = inp.streams.audio[0] if inp.streams.audio else None
        if video is None and audio is None:
            raise MediaRefused("the source has neither audio nor video")
        if video is not None and video.codec_context.name not in SUPPORTED_VIDEO:
            raise MediaRefused(f"unsupported video codec {video.codec_context.name!r}")
        if audio is not None and audio.codec_context.name not in SUPPORTED_AUDIO:
            raise MediaRefused(f"unsupported audio codec {audio.codec_context.name!r}")

        rendition_dir = out_dir / SOURCE_RENDITION
        rendition_dir.mkdir(parents=True, exist_ok=True)
        flags = "independent_segments+omit_endlist+delete_segments+temp_file"
        if append and (rendition_dir / "index.m3u8").exists():
            flags += "+append_list"
        out = av.open(
            str(rendition_dir / "index.m3u8"),
            mode="w",
            format="hls",
            options={
                "hls_time": f"{segment_seconds:g}",
                "hls_list_size": "10",
                "hls_delete_threshold": "10",
                "hls_flags": flags,
                "hls_segment_filename": str(rendition_dir / "seg_%06d.ts"),
            },
        )
        record = open_remux_recording(record_dir, segment_seconds, append=append) if record_dir else None
        thumbnails = None
        if video is not None and thumbnail_seconds:
            thumbnails = Thumbnailer(out_dir, thumbnail_seconds, video)
        record_mapping: dict[int, Any] = {}
        mapping: dict[int, Any] = {}
        filters: dict[int, Any] = {}
        codecs: list[str] = []
        if video is not None:
            mapping[video.index] = out.add_stream_from_template(video)
            if record is not None:
                record_mapping[video.index] = record.add_stream_from_template(video)
            if video.codec_context.name in ANNEXB_FILTERS:  # FLV carries avcC/hvcC, MPEG-TS wants Annex B
                filters[video.index] = BitStreamFilterContext(ANNEXB_FILTERS[video.codec_context.name], video)
            codecs.append(
                avc_codec_string(video.codec_context.extradata)
                if video.codec_context.name == "h264"
                else video.codec_context.name
            )
        if audio is not None:
            mapping[audio.index] = out.add_stream_from_template(audio)
            if record is not None:
                record_mapping[audio.index] = record.add_stream_from_template(audio)
            codecs.append("mp4a.40.2" if audio.codec_context.name == "aac" else audio.codec_context.name)
        bandwidth = _bandwidth(inp)
        write_atomic(
            out_dir / "master.m3u8",
            master_playlist(
                bandwidth=bandwidth,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                fps=video.average_rate if video is not None else None,
                codecs=codecs,
                uri=f"{SOURCE_RENDITION}/index.m3u8",
            ),
        )
        emit("ready", renditions=[SOURCE_RENDITION], pipeline="remux")
        try:
            with out:
                for packet in inp.demux(*[s for s in (video, audio) if s is not None]):
                    if packet.dts is None or packet.size == 0:
                        continue
                    index = packet.stream.index
                    if thumbnails is not None and video is not None and index == video.index:
                        thumbnails.packet(packet)
                    packets = filters[index].filter(packet) if index in filters else [packet]
                    for item in packets:
                        if record is not None:
                            copy = clone_packet(item)
                            copy.stream = record_mapping[index]
                            try:
                                record.mux(copy)
                            except av.FFmpegError as exc:
                                log.warning("recording dropped a packet: %s", exc)
                        item.stream = mapping[index]
                        try:
                            out.mux(item)
                        except av.FFmpegError as exc:  # a bad packet (non-monotonic dts) is dropped
                            log.warning("dropped a packet: %s", exc)
        finally:
            if record is not None:
                record.close()


def _bandwidth(inp: Any) -> int:
    """Peak bits per second for the master playlist: the publisher's metadata, else a default."""
    meta = inp.metadata or {}
    try:
        kbps = float(meta.get("videodatarate", 0)) + float(meta.get("audiodatarate", 0))
    except ValueError:
        kbps = 0
    if kbps > 0:
        return int(kbps * 1000 * 1.2)
    rate = inp.bit_rate or 0
    return int(rate) if rate > 0 else DEFAULT_BANDWIDTH


def transcoder_available() -> bool:
    """True when the media library's Transcoder exists in this checkout."""
    return importlib.util.find_spec("ingest_node.media.transcoder") is not None


def run_transcoder(
    source: BinaryIO | PeekedInput,
    out_dir: Path,
    segment_seconds: float,
    *,
    preset: str,
    append: bool,
    record_dir: Path | None = None,
    thumbnail_seconds: float | None = None,
    codec: str = "h264",
    segment_format: str | None = None,
    fast_probe: bool = False,
) -> None:
    """Run the adaptive ladder of `ingest_node.media.transcoder`, relaying its events to the node."""
    from ingest_node.media import ladder as ladders
    from ingest_node.media import pipeline_events as events
    from ingest_node.media.transcoder import MediaInputError, Transcoder

    recorder = SegmentRecorder(record_dir, segment_seconds, append=append) if record_dir else None
    copied: set[str] = set()  # renditions that are the source's own packets (passthrough)
    thumbnails: list[Thumbnailer] = []

    def on_video_packet(packet: Any) -> None:
        if not thumbnail_seconds:
            return
        if not thumbnails:
            thumbnails.append(Thumbnailer(out_dir, thumbnail_seconds, packet.stream))
        thumbnails[0].packet(packet)

    def on_event(event: Any) -> None:
        if isinstance(event, events.SegmentWritten):
            if recorder is not None and event.rendition in copied:
                kept = event.record_path or event.path  # the MPEG-TS copy of an fMP4 source
                recorder.add(Path(kept), event.duration, event.size, event.discontinuity)
            return
        if isinstance(event, events.StreamStarted):
            copied.update(name for name, encoder in event.encoders if encoder == "copy")
            if len(copied) > 1:  # audio-only streams copy as "audio"; with video, keep the video's
                copied.discard("audio")
            emit(
                "ready",
                renditions=list(event.renditions),
                pipeline="transcoder",
                encoders={name: encoder for name, encoder in event.encoders},
            )
        elif isinstance(event, events.LadderChanged):
            emit(
                "ladder_changed",
                renditions=list(event.active),
                reason=event.reason,
                speeds=dict(getattr(event, "speeds", ())),
            )
        elif isinstance(event, events.EncoderFellBack):
            log.warning(
                "rendition %s: encoder %s failed (%s), now %s",
                event.rendition,
                event.failed,
                event.error,
                event.replacement,
            )

    try:
        lad = ladders.ladder(preset, codec=codec, segment_format=segment_format)  # type: ignore[arg-type]
        transcoder = Transcoder(
            source,  # type: ignore[arg-type]  # PyAV reads any object with read(): the peeked stdin is one
            out_dir,
            lad,
            segment_seconds,
            on_event=on_event,
            input_format="flv",
            input_options=FAST_PROBE if fast_probe else None,
            resume=append,
            on_video_packet=on_video_packet,
            source_ts_copy=recorder is not None,
        )
    except (KeyError, ValueError) as exc:  # an unknown preset, TS asked for AV1: the settings, not media
        raise MediaRefused(f"the channel's media settings cannot be used: {exc}") from exc
    try:
        transcoder.run()
    except MediaInputError as exc:
        raise MediaRefused(str(exc)) from exc


def warm_up() -> None:
    """Import and load now what a stream would need first (the spare's whole point)."""
    if transcoder_available():
        from ingest_node.media import ladder, transcoder  # noqa: F401

        ladder.load_presets()


def wait_as_spare(stdin: BinaryIO) -> list[str] | None:
    """Be a warm spare: report ready, then read the arguments of the stream this process is given
    (one JSON line, `{"argv": [...]}`); None when the node closed stdin first (no stream came)."""
    emit("spare_ready", pid=os.getpid())
    line = stdin.readline()  # the rest of this stdin, the FLV, stays buffered for the pipeline
    if not line:
        return None
    argv = json.loads(line).get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise SystemExit(f"the spare was given no usable arguments: {line[:200]!r}")
    return argv


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--spare"]:
        warm_up()
        argv = wait_as_spare(sys.stdin.buffer)
        if argv is None:
            return 0
    parser = argparse.ArgumentParser(prog="python -m ingest_node.media.worker", description=__doc__)
    parser.add_argument("--channel-id", required=True)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--codec", choices=("h264", "hevc", "av1"), default="h264")
    parser.add_argument("--segment-format", choices=("ts", "fmp4"), help="default: fMP4 for H.265/AV1")
    parser.add_argument("--append", action="store_true", help="continue existing playlists")
    parser.add_argument("--pipeline", choices=("auto", "remux", "transcoder"), default="auto")
    parser.add_argument("--record-dir", type=Path, help="keep every source segment here (the recording)")
    parser.add_argument("--thumbnail-seconds", type=float, help="write thumbnail.jpg this often")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("EFIR_LOG_LEVEL", "INFO").upper(),  # settings may hold "warning"
        format=f"%(asctime)s worker[{args.channel_id}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    av.logging.set_level(av.logging.ERROR)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    source, fps = peek_flv(sys.stdin.buffer)
    if fps is not None:
        log.debug("the metadata gives %.3f fps: probing without measuring it", fps)
    use_transcoder = args.pipeline == "transcoder" or (args.pipeline == "auto" and transcoder_available())
    try:
        if use_transcoder:
            run_transcoder(
                source,
                args.out_dir,
                args.segment_seconds,
                preset=args.preset,
                append=args.append,
                record_dir=args.record_dir,
                thumbnail_seconds=args.thumbnail_seconds,
                codec=args.codec,
                segment_format=args.segment_format,
                fast_probe=fps is not None,
            )
        else:
            remux_to_hls(
                source,
                args.out_dir,
                args.segment_seconds,
                append=args.append,
                record_dir=args.record_dir,
                thumbnail_seconds=args.thumbnail_seconds,
                fast_probe=fps is not None,
            )
    except MediaRefused as exc:
        log.error("refusing the stream: %s", exc)
        emit("refused", reason=str(exc))
        return EXIT_REFUSED
    log.info("source ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
