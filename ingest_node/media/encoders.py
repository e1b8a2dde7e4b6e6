"""Encoder discovery and fallback: hardware first, software always.

Whether NVENC, QuickSync, AMF or VAAPI works cannot be read from a list: the library may carry the
encoder while the machine has no GPU, a driver too old, or no free session. So candidates are tried by
actually opening them with the stream's own parameters, best first, and the first that opens is used.
The answer is cached per (candidates, codec, size, fps), so the next stream of the same shape opens the
known-good encoder at once. When an encoder that opened fails later (a GPU reset, a lost session), the
pipeline asks for the next candidate after it and carries on; the last candidate of every codec is the
software encoder that needs nothing but CPU.

The candidate list is data (`EncoderSelector(candidates=...)`), so a test can put an encoder that fails
first and prove the fallback on a CPU-only machine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from av.codec.context import CodecContext, Flags
from av.packet import Packet
from av.video.frame import VideoFrame

log = logging.getLogger(__name__)

GLOBAL_HEADER = int(Flags.global_header)

DEFAULT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "h264": ("h264_nvenc", "h264_qsv", "h264_amf", "h264_vaapi", "libx264"),
    "hevc": ("hevc_nvenc", "hevc_qsv", "hevc_amf", "hevc_vaapi", "libx265"),
    "av1": ("av1_nvenc", "av1_qsv", "av1_amf", "av1_vaapi", "libsvtav1"),
}

# x264 speed names mapped onto the other encoders' own scales.
_NVENC_PRESET = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4"}
_SVT_PRESET = {"ultrafast": "12", "superfast": "11", "veryfast": "10", "faster": "9", "fast": "8"}
_QSV_PRESET = {"ultrafast": "veryfast", "superfast": "veryfast"}


@dataclass(frozen=True)
class EncodeSpec:
    """What a rendition's encoder must produce."""

    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    bitrate: int
    maxrate: int = 0
    bufsize: int = 0
    gop: int = 60
    speed: str = "veryfast"
    pix_fmt: str = "yuv420p"
    global_header: bool = False  # parameter sets in extradata, not in-band (fMP4 wants them in the moov)
    low_latency: bool = False  # no lookahead/B-frame delay: the low-latency level's 1 s segments

    @property
    def shape(self) -> tuple[str, int, int, Fraction]:
        return (self.codec, self.width, self.height, self.fps)


class VideoEncoder(Protocol):
    """An open encoder: frames in, packets out; `encode(None)` drains it."""

    name: str
    time_base: Fraction

    def encode(self, frame: VideoFrame | None) -> list[Packet[Any]]: ...


class EncoderFactory(Protocol):
    """Opens one kind of encoder; raises when it cannot open for this spec."""

    @property
    def name(self) -> str: ...

    def open(self, spec: EncodeSpec) -> VideoEncoder: ...


class EncoderUnavailable(RuntimeError):
    """No candidate encoder could be opened for a spec."""


class LibavEncoder:
    """A PyAV/FFmpeg encoder context, opened and ready."""

    def __init__(self, name: str, ctx: Any, time_base: Fraction) -> None:
        self.name = name
        self.ctx = ctx
        self.time_base = time_base

    def encode(self, frame: VideoFrame | None) -> list[Packet[Any]]:
        return list(self.ctx.encode(frame))

    @property
    def extradata(self) -> bytes:
        """The encoder's global header (SPS/PPS, VPS, AV1 sequence header) when opened with one."""
        return bytes(self.ctx.extradata or b"")


def encoder_options(name: str, spec: EncodeSpec) -> dict[str, str]:
    """Per-encoder options: closed GOPs, no scene-cut keyframes (keyframes only where the pipeline forces
    them, so every rendition cuts at the same instants), rate limits, and the speed on its own scale."""
    opts: dict[str, str] = {}
    if spec.maxrate:
        opts["maxrate"] = str(spec.maxrate)
    if spec.bufsize:
        opts["bufsize"] = str(spec.bufsize)
    # Low latency: an encoder holding ~20 frames (lookahead, B-frames, frame threads) delays every
    # segment's close by that much (1.3 s at 15 fps), as long as a whole low-latency segment.
    tune = {"tune": "zerolatency"} if spec.low_latency else {}
    if name == "libx264":
        opts.update({"preset": spec.speed, "forced-idr": "1", "x264-params": "scenecut=0:open-gop=0", **tune})
    elif name == "libx265":
        opts.update(
            {
                "preset": spec.speed,
                "forced-idr": "1",
                "x265-params": "scenecut=0:open-gop=0:log-level=error",
                **tune,
            }
        )
    elif name == "libsvtav1":
        opts.pop("maxrate", None)
        opts.pop("bufsize", None)
        opts.update({"preset": _SVT_PRESET.get(spec.speed, "8"), "svtav1-params": "scd=0"})
    elif name.endswith("_nvenc"):
        opts.update({"preset": _NVENC_PRESET.get(spec.speed, "p4"), "forced-idr": "1", "no-scenecut": "1"})
        if spec.low_latency:
            opts["zerolatency"] = "1"
    elif name.endswith("_qsv"):
        opts.update({"preset": _QSV_PRESET.get(spec.speed, spec.speed)})
    elif name.endswith("_amf"):
        opts.update({"quality": "speed"})
    return opts


@dataclass(frozen=True)
class LibavEncoderFactory:
    """Opens the FFmpeg encoder `name` (h264_nvenc, libx264, ...) with threads on AUTO."""

    name: str
    extra_options: Mapping[str, str] = field(default_factory=dict)

    def open(self, spec: EncodeSpec) -> VideoEncoder:
        ctx: Any = CodecContext.create(self.name, "w")
        ctx.width = spec.width
        ctx.height = spec.height
        ctx.pix_fmt = spec.pix_fmt
        ctx.time_base = spec.time_base
        ctx.framerate = spec.fps
        ctx.gop_size = spec.gop
        ctx.bit_rate = spec.bitrate
        ctx.thread_type = "AUTO"
        if spec.global_header:
            ctx.flags |= GLOBAL_HEADER
        ctx.options = {**encoder_options(self.name, spec), **self.extra_options}
        ctx.open()
        return LibavEncoder(self.name, ctx, spec.time_base)


def _factory(item: EncoderFactory | str) -> EncoderFactory:
    if isinstance(item, str):
        return LibavEncoderFactory(item)
    return item


# (candidate names, codec, width, height, fps) -> index of the best candidate that opened.
_best: dict[tuple[tuple[str, ...], str, int, int, Fraction], int] = {}
_best_lock = threading.Lock()


class EncoderSelector:
    """Picks, per rendition, the best encoder that actually opens, and the next one when it fails."""

    def __init__(self, candidates: Mapping[str, Sequence[EncoderFactory | str]] | None = None) -> None:
        source = candidates if candidates is not None else DEFAULT_CANDIDATES
        self.candidates: dict[str, list[EncoderFactory]] = {
            codec: [_factory(c) for c in items] for codec, items in source.items()
        }

    def _names(self, codec: str) -> tuple[str, ...]:
        return tuple(f.name for f in self.candidates.get(codec, []))

    def open(self, spec: EncodeSpec, after: str | None = None) -> VideoEncoder:
        """Open the best encoder for `spec`; with `after`, only candidates after that one (the fallback
        path when `after` failed mid-stream). Raises EncoderUnavailable when none opens."""
        factories = self.candidates.get(spec.codec)
        if not factories:
            raise EncoderUnavailable(f"no encoder candidates for codec {spec.codec!r}")
        names = self._names(spec.codec)
        start = names.index(after) + 1 if after in names else 0
        key = (names, *spec.shape)
        with _best_lock:
            known = _best.get(key)
        if after is None and known is not None:
            start = known
        errors: list[str] = []
        for index in range(start, len(factories)):
            factory = factories[index]
            try:
                encoder = factory.open(spec)
            except Exception as exc:  # any failure to open means "not usable here"
                errors.append(f"{factory.name}: {exc}")
                log.info("encoder %s does not open for %s: %s", factory.name, spec.shape, exc)
                continue
            if after is None:
                with _best_lock:
                    _best[key] = index
            return encoder
        raise EncoderUnavailable(f"no encoder opened for {spec.shape}: " + "; ".join(errors))


def forget_discoveries() -> None:
    """Drop cached discoveries (a GPU came or went)."""
    with _best_lock:
        _best.clear()


def available_encoders(codec: str, width: int = 1280, height: int = 720, fps: int = 30) -> list[str]:
    """Which default candidates open on this machine, best first (for `efir` diagnostics)."""
    ok = []
    for name in DEFAULT_CANDIDATES.get(codec, ()):
        spec = EncodeSpec(codec, width, height, Fraction(fps), Fraction(1, 90000), 2_000_000, gop=fps * 2)
        try:
            LibavEncoderFactory(name).open(spec)
        except Exception:
            continue
        ok.append(name)
    return ok


__all__ = [
    "DEFAULT_CANDIDATES",
    "EncodeSpec",
    "EncoderFactory",
    "EncoderSelector",
    "EncoderUnavailable",
    "LibavEncoder",
    "LibavEncoderFactory",
    "VideoEncoder",
    "available_encoders",
    "forget_discoveries",
]
