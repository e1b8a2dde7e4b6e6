"""Transcoding ladders as data: renditions and latency levels from `presets.yaml`.

A channel picks a quality preset (`low`/`medium`/`high`) and a latency level; the pipeline asks
`Ladder.for_source` which renditions fit the source it actually receives, so a 720p publisher never
gets an upscaled 1080p rendition. Loaded once per process: the YAML is read at first use and cached.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PRESETS_FILE = Path(__file__).with_name("presets.yaml")

Codec = Literal["h264", "hevc", "av1"]
SegmentFormat = Literal["ts", "fmp4"]
SPEEDS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
QUALITY_PRESETS = ("low", "medium", "high")
# Codecs whose HLS renditions must be fMP4: AV1 has no MPEG-TS mapping that players support, and
# Apple's players take H.265 only from fMP4 (H.265 in TS is legal, but nothing plays it on Safari).
FMP4_ONLY_CODECS: frozenset[str] = frozenset({"hevc", "av1"})


class Rendition(BaseModel):
    """One rung of a ladder as configured; `passthrough` is the source remuxed, never re-encoded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    passthrough: bool = False
    width: int = Field(0, ge=0, description="Width cap; the actual width keeps the source aspect ratio.")
    height: int = Field(0, ge=0)
    video_kbps: int = Field(0, ge=0)
    maxrate_kbps: int = Field(0, ge=0)
    bufsize_kbps: int = Field(0, ge=0)
    fps: float = Field(0, ge=0, description="0 keeps the source frame rate; never above the source's.")
    codec: Codec = "h264"
    speed: str = "veryfast"
    audio_kbps: int = Field(128, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Rendition:
        if self.speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}, not {self.speed!r}")
        if not self.passthrough and (self.height <= 0 or self.video_kbps <= 0):
            raise ValueError(f"rendition {self.name!r} needs a height and a video bitrate")
        return self


class ResolvedRendition(BaseModel):
    """A rendition fitted to one source: concrete size and frame rate, what the encoder is opened with."""

    model_config = ConfigDict(frozen=True)

    spec: Rendition
    width: int
    height: int
    fps: Fraction

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cost(self) -> float:
        """Relative encode cost (pixels per second), used to shed the most expensive rendition first."""
        if self.spec.passthrough:
            return 0.0
        return float(self.width * self.height * self.fps)


class Ladder(BaseModel):
    """An ordered list of renditions (best first)."""

    model_config = ConfigDict(frozen=True)

    name: str
    renditions: tuple[Rendition, ...]
    segment_format: SegmentFormat | None = None  # None: fMP4 when H.265/AV1 is encoded, else TS

    @property
    def codecs(self) -> set[str]:
        """Codecs of the encoded renditions (passthrough is the source's own)."""
        return {r.codec for r in self.renditions if not r.passthrough}

    @model_validator(mode="after")
    def _unique(self) -> Ladder:
        names = [r.name for r in self.renditions]
        if len(set(names)) != len(names):
            raise ValueError(f"ladder {self.name!r} has duplicate rendition names")
        if not self.renditions:
            raise ValueError(f"ladder {self.name!r} is empty")
        return self

    def with_codec(self, codec: Codec | None, speed: str | None = None) -> Ladder:
        """The same ladder encoded with another codec (H.265, AV1) and optionally another speed."""
        changed = tuple(
            r
            if r.passthrough
            else r.model_copy(update={"codec": codec or r.codec, "speed": speed or r.speed})
            for r in self.renditions
        )
        return self.model_copy(update={"renditions": changed})

    def for_source(self, width: int, height: int, fps: Fraction) -> list[ResolvedRendition]:
        """Renditions that fit a `width`x`height` source at `fps`: taller ones are skipped, widths keep
        the source aspect ratio (even numbers, as 4:2:0 needs), frame rates never exceed the source's."""
        out: list[ResolvedRendition] = []
        for r in self.renditions:
            if r.passthrough:
                out.append(ResolvedRendition(spec=r, width=width, height=height, fps=fps))
                continue
            if height and r.height > height:
                continue
            h = r.height
            w = round(width * h / height / 2) * 2 if width and height else r.width
            if r.width and w > r.width:
                w = r.width
                h = max(2, round(height * w / width / 2) * 2)
            rate = fps if r.fps <= 0 or Fraction(r.fps).limit_denominator(1001) >= fps else Fraction(r.fps)
            out.append(
                ResolvedRendition(spec=r, width=w, height=h, fps=Fraction(rate).limit_denominator(1001))
            )
        return out


class Presets(BaseModel):
    """The whole presets file."""

    model_config = ConfigDict(frozen=True)

    latency_levels: dict[int, float]
    presets: dict[str, tuple[Rendition, ...]]
    segment_formats: dict[str, SegmentFormat] = Field(default_factory=dict)  # per preset, optional


@lru_cache(maxsize=1)
def load_presets(path: Path = PRESETS_FILE) -> Presets:
    """Read and validate the presets file once per process."""
    return Presets.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def ladder(
    preset: str = "medium",
    codec: Codec | None = None,
    speed: str | None = None,
    segment_format: SegmentFormat | None = None,
) -> Ladder:
    """The ladder of a quality preset, optionally with another codec or speed for every encoded rung
    and another segment format (the channel's choice wins over the preset's)."""
    loaded = load_presets()
    if preset not in loaded.presets:
        raise KeyError(f"unknown quality preset {preset!r}; known: {sorted(loaded.presets)}")
    result = Ladder(
        name=preset,
        renditions=loaded.presets[preset],
        segment_format=segment_format or loaded.segment_formats.get(preset),
    )
    return result.with_codec(codec, speed) if codec or speed else result


def faster_speed(speed: str) -> str | None:
    """The next faster encoder speed preset (x264 names), or None at `ultrafast`."""
    index = SPEEDS.index(speed)
    return SPEEDS[index - 1] if index > 0 else None


def slower_speed(speed: str, floor: str) -> str | None:
    """One step back towards `floor` (the rendition's configured speed), or None when there already."""
    index, limit = SPEEDS.index(speed), SPEEDS.index(floor)
    return SPEEDS[index + 1] if index < limit else None


def choose_segment_format(codecs: set[str], wanted: SegmentFormat | None) -> SegmentFormat:
    """The segment format of a ladder: `wanted` when given and legal, fMP4 when any rendition is
    H.265/AV1, else MPEG-TS. Asking for TS with H.265/AV1 renditions is a clear error, not a silent switch:
    the caller asked for something players would not play."""
    needs_fmp4 = sorted(codecs & FMP4_ONLY_CODECS)
    if wanted == "ts" and needs_fmp4:
        raise ValueError(
            f"{'/'.join(needs_fmp4)} renditions need fMP4 segments (segment_format 'fmp4' or unset), not 'ts'"
        )
    if wanted is not None:
        return wanted
    return "fmp4" if needs_fmp4 else "ts"


def latency_levels() -> list[int]:
    """The latency levels the presets file defines, lowest (shortest segments) first."""
    return sorted(load_presets().latency_levels)


def segment_seconds(latency_level: int) -> float:
    """Segment length of a latency level (1 = 1 s low-latency segments ... 6 = 6 s)."""
    levels = load_presets().latency_levels
    if latency_level not in levels:
        raise KeyError(f"latency level must be one of {sorted(levels)}, not {latency_level!r}")
    return levels[latency_level]
