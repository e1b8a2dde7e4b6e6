"""The worker's side of recording: every source segment of the broadcast, kept in a staging folder.

The live playlists slide over a window and delete what left it; a recording needs all of it. So the
worker keeps a second, never-trimmed copy of the SOURCE rendition (the publisher's own packets,
remuxed, never re-encoded) in `--record-dir` (one folder per broadcast, outside the live folder that a
new broadcast wipes): `index.m3u8` listing every segment, and the segments themselves, hard links
of the live ones when the filesystem allows (no copy, no extra disk while both exist). A restarted
worker or a reconnecting publisher continues the same folder, with a discontinuity. When the broadcast
ends, the node turns the folder into a VOD in the recording store (`ingest_node.ingest.recordings`).
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from ingest_node.media.hls import MediaPlaylist, Segment, segment_uri

log = logging.getLogger(__name__)

RECORD_PLAYLIST = "index.m3u8"


class SegmentRecorder:
    """Keeps every segment of one rendition (the ladder's passthrough) as the transcoder writes it."""

    def __init__(self, record_dir: Path, segment_seconds: float, *, append: bool) -> None:
        record_dir.mkdir(parents=True, exist_ok=True)
        path = record_dir / RECORD_PLAYLIST
        self.playlist = (
            MediaPlaylist.resume(path, segment_seconds, None)
            if append
            else MediaPlaylist(path=path, target_seconds=segment_seconds, window=None)
        )
        self.playlist.ended = False
        self.next_discontinuity = bool(self.playlist.segments)

    def add(self, source: Path, duration: float, size: int, discontinuity: bool) -> None:
        sequence = self.playlist.next_sequence
        target = self.playlist.path.parent / segment_uri(sequence)
        try:
            os.link(source, target)
        except FileExistsError:
            target.unlink()
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        self.playlist.add(
            Segment(
                sequence=sequence,
                uri=target.name,
                duration=duration,
                start=0.0,
                program_date_time=datetime.now(UTC),
                size=size,
                discontinuity=discontinuity or self.next_discontinuity,
            )
        )
        self.next_discontinuity = False


def open_remux_recording(record_dir: Path, segment_seconds: float, *, append: bool) -> Any:
    """For the remux pipeline: a second HLS muxer that keeps every segment (hls_list_size 0)."""
    record_dir.mkdir(parents=True, exist_ok=True)
    flags = "independent_segments+temp_file"
    if append and (record_dir / RECORD_PLAYLIST).exists():
        flags += "+append_list+discont_start"
    return av.open(
        str(record_dir / RECORD_PLAYLIST),
        mode="w",
        format="hls",
        options={
            "hls_time": f"{segment_seconds:g}",
            "hls_list_size": "0",
            "hls_flags": flags,
            "hls_segment_filename": str(record_dir / "seg_%06d.ts"),
        },
    )
