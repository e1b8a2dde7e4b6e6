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
SPEEDS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


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
        return Ladder(name=self.name, renditions=changed)

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


@lru_cache(maxsize=1)
def load_presets(path: Path = PRESETS_FILE) -> Presets:
    """Read and validate the presets file once per process."""
    return Presets.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def ladder(preset: str = "medium", codec: Codec | None = None, speed: str | None = None) -> Ladder:
    """The ladder of a quality preset, optionally with another codec or speed for every encoded rung."""
    presets = load_presets().presets
    if preset not in presets:
        raise KeyError(f"unknown quality preset {preset!r}; known: {sorted(presets)}")
    result = Ladder(name=preset, renditions=presets[preset])
    return result.with_codec(codec, speed) if codec or speed else result


def segment_seconds(latency_level: int) -> float:
    """Segment length of a latency level (0 = 1 s low-latency segments ... 4 = 6 s)."""
    levels = load_presets().latency_levels
    if latency_level not in levels:
        raise KeyError(f"latency level must be one of {sorted(levels)}, not {latency_level!r}")
    return levels[latency_level]
