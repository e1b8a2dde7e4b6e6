"""A channel's media settings: what its next broadcast's pipeline is started with.

The latency level picks the segment length (presets.yaml: level 1 is 1 s low-latency segments, 6 is
6 s), the quality preset picks the ladder, the codec the encoded renditions' codec, the segment format
TS or fMP4 (None: automatic, fMP4 exactly when H.265/AV1 is encoded). Validation lives here, once, for
the admin API and the worker alike; the values allowed come from presets.yaml and `ladder`. The
settings are read when a stream starts: a change applies to the next broadcast, never mid-stream
(a segment length that changed under a live playlist would break its players).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from ingest_node.ingest.models import ChannelMedia
from ingest_node.media.ladder import (
    FMP4_ONLY_CODECS,
    choose_segment_format,
    latency_levels,
    load_presets,
    segment_seconds,
)
from services.settings import Settings

CODECS = ("h264", "hevc", "av1")


class MediaSettingsError(ValueError):
    """A media setting a pipeline could not honour (an unknown level or preset, TS with AV1, ...)."""


@dataclass(frozen=True)
class MediaConfig:
    """The media settings a stream starts with (stored, or the node's defaults)."""

    latency_level: int | None  # None: the node default EFIR_HLS_SEGMENT_SECONDS
    segment_seconds: float
    quality_preset: str
    codec: Literal["h264", "hevc", "av1"] = "h264"
    segment_format: Literal["ts", "fmp4"] | None = None
    stored: bool = False

    @property
    def effective_format(self) -> str:
        """The format the encoded renditions will use."""
        return choose_segment_format({self.codec}, self.segment_format)


def validate(latency_level: int, quality_preset: str, codec: str, segment_format: str | None) -> None:
    """Raise MediaSettingsError with a message that says what is allowed."""
    levels = latency_levels()
    if latency_level not in levels:
        raise MediaSettingsError(f"latency_level must be one of {levels}, not {latency_level}")
    presets = sorted(load_presets().presets)
    if quality_preset not in presets:
        raise MediaSettingsError(f"quality_preset must be one of {presets}, not {quality_preset!r}")
    if codec not in CODECS:
        raise MediaSettingsError(f"codec must be one of {list(CODECS)}, not {codec!r}")
    if segment_format not in (None, "ts", "fmp4"):
        raise MediaSettingsError(f"segment_format must be 'ts', 'fmp4' or null, not {segment_format!r}")
    if segment_format == "ts" and codec in FMP4_ONLY_CODECS:
        raise MediaSettingsError(
            f"{codec} renditions need fMP4 segments: set segment_format 'fmp4' or leave it unset"
        )


def defaults(settings: Settings) -> MediaConfig:
    level = next(
        (lvl for lvl in latency_levels() if segment_seconds(lvl) == settings.hls_segment_seconds), None
    )
    return MediaConfig(
        latency_level=level,
        segment_seconds=settings.hls_segment_seconds,
        quality_preset=settings.stream_quality_preset,
    )


def load(session: Session, settings: Settings, channel_id: str) -> MediaConfig:
    """The channel's stored settings, or the node's defaults when it has none."""
    row = session.get(ChannelMedia, channel_id)
    if row is None:
        return defaults(settings)
    return MediaConfig(
        latency_level=row.latency_level,
        segment_seconds=segment_seconds(row.latency_level),
        quality_preset=row.quality_preset,
        codec=row.codec,  # type: ignore[arg-type]
        segment_format=row.segment_format,  # type: ignore[arg-type]
        stored=True,
    )


def store(
    session: Session,
    settings: Settings,
    channel_id: str,
    *,
    latency_level: int | None = None,
    quality_preset: str | None = None,
    codec: str | None = None,
    segment_format: str | None = None,
    clear_segment_format: bool = False,
) -> MediaConfig:
    """Merge the given fields into the channel's settings (validated as a whole) and save them."""
    current = load(session, settings, channel_id)
    level = latency_level if latency_level is not None else current.latency_level
    if level is None:  # the node default is not a level: start from the closest one above it
        level = next(
            (lvl for lvl in latency_levels() if segment_seconds(lvl) >= current.segment_seconds),
            latency_levels()[-1],
        )
    preset = quality_preset if quality_preset is not None else current.quality_preset
    new_codec = codec if codec is not None else current.codec
    fmt = None if clear_segment_format else (segment_format or current.segment_format)
    validate(level, preset, new_codec, fmt)
    row = session.get(ChannelMedia, channel_id)
    if row is None:
        row = ChannelMedia(channel_id=channel_id)
        session.add(row)
    row.latency_level, row.quality_preset, row.codec, row.segment_format = level, preset, new_codec, fmt
    session.flush()
    return load(session, settings, channel_id)
