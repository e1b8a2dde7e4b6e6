"""An fMP4 rendition's init segment declares the picture size the rendition really has.

ffprobe reads the size from the H.264 SPS, so it never noticed when the MP4 header (track header and
`avc1` sample entry) said PyAV's default 640x480 instead: Chromium (and Safari) size the picture from
the header and showed 284x160 stretched to 4:3 (found by the hls.js playback test, test_players.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.ingest_node.media.probe import master_variants
from tests.ingest_node.media.test_media_fmp4_adapt import make_clip, run_ladder, two_rungs

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def header_sizes(init: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(tkhd width/height of each video track, avc1/hvc1 width/height of each sample entry)."""
    tracks: list[tuple[int, int]] = []
    entries: list[tuple[int, int]] = []

    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack(">I4s", init[pos : pos + 8])
            if size < 8:
                return
            if kind in CONTAINERS:
                walk(pos + 8, pos + size)
            elif kind == b"tkhd":
                width, height = struct.unpack(">II", init[pos + size - 8 : pos + size])
                if width:
                    tracks.append((width >> 16, height >> 16))
            elif kind == b"stsd":
                walk(pos + 16, pos + size)  # full box header + entry count
            elif kind in (b"avc1", b"hvc1", b"hev1", b"av01"):
                # SampleEntry (8) + pre_defined/reserved (16), then width and height as 16-bit ints.
                entries.append(struct.unpack(">HH", init[pos + 32 : pos + 36]))
            pos += size

    walk(0, len(init))
    return tracks, entries


def test_the_fmp4_init_segment_declares_the_renditions_resolution(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.flv", 2)
    out = tmp_path / "hls"
    run_ladder(clip, out, two_rungs(None, "fmp4"))
    variants = {uri.split("/")[0]: attrs for attrs, uri in master_variants(out / "master.m3u8")}
    for name in ("source", "180p", "160p"):  # the passthrough is fMP4 too, from the source's avcC
        width, height = (int(v) for v in variants[name]["RESOLUTION"].split("x"))
        tracks, entries = header_sizes((out / name / "init.mp4").read_bytes())
        assert tracks == [(width, height)], (name, tracks)
        assert entries == [(width, height)], (name, entries)
