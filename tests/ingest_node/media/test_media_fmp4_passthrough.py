"""The passthrough (source) rendition of an fMP4 ladder is fMP4 too, so a player can switch between any
two renditions (hls.js cannot switch between MPEG-TS and fMP4: docs/players.md), while the recording
still gets the source as MPEG-TS; a resolution change mid-stream gives it a new init segment.

The publisher's resolution change comes both ways a publisher sends one: new parameter sets inside the
keyframes (an MPEG-TS source copied to RTMP: ffmpeg's concat of two encodes) and a new FLV sequence
header (OBS after a canvas change: two FLV files spliced tag by tag, as an RTMP server would relay them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest_node.media.governor import LoadGovernor
from ingest_node.media.hls import MediaPlaylist
from ingest_node.media.pipeline_events import MediaEvent, SegmentWritten
from ingest_node.media.transcoder import Transcoder
from tests.ingest_node.media.conftest import LAVFI_AUDIO, LAVFI_VIDEO
from tests.ingest_node.media.probe import (
    decodes,
    ffmpeg,
    playlist_segments,
    streams,
    video_packets,
    with_init,
)
from tests.ingest_node.media.test_media_fmp4_adapt import run_ladder, two_rungs
from tests.ingest_node.media.test_media_fmp4_header import header_sizes

X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p"]


def _encode(path: Path, size: str, seconds: float) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", LAVFI_VIDEO.format(size=size), "-f", "lavfi", "-i", LAVFI_AUDIO,
        "-t", f"{seconds:g}", *X264, "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def _flv_tags(data: bytes) -> list[bytes]:
    tags, pos = [], 13
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        tags.append(data[pos : pos + 11 + size])
        pos += 11 + size + 4
    return tags


def _with_time(tag: bytes, ms: int) -> bytes:
    return tag[:4] + (ms & 0xFFFFFF).to_bytes(3, "big") + bytes([ms >> 24]) + tag[8:]


def _time(tag: bytes) -> int:
    return int.from_bytes(tag[4:7], "big") | tag[7] << 24


@pytest.fixture(scope="module")
def changes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """640x360 then 320x180, as FLV: the new size announced in-band, or by a new sequence header. The
    first part is 2.5 s, so the change falls between two regular segment boundaries."""
    folder = tmp_path_factory.mktemp("changes")
    parts = []
    for size, seconds in (("640x360", 2.5), ("320x180", 3)):
        parts.append(_encode(folder / f"{size}.ts", size, seconds))
    listing = folder / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    in_band = folder / "in_band.flv"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(in_band))

    first = _flv_tags(_encode(folder / "a.flv", "640x360", 2.5).read_bytes())
    second = _flv_tags(_encode(folder / "b.flv", "320x180", 3).read_bytes())
    offset = max(_time(t) for t in first) + 40
    spliced = bytearray((folder / "a.flv").read_bytes()[:13])
    for tag in [*first, *(_with_time(t, _time(t) + offset) for t in second if t[0] != 18)]:
        spliced += tag + len(tag).to_bytes(4, "big")
    header = folder / "sequence_header.flv"
    header.write_bytes(bytes(spliced))
    return {"in-band": in_band, "sequence-header": header}


@pytest.mark.parametrize("how", ["in-band", "sequence-header"])
def test_a_resolution_change_gives_the_fmp4_source_a_new_init_segment(
    changes: dict[str, Path], tmp_path: Path, how: str
) -> None:
    out, recorded = tmp_path / "hls", tmp_path / "recorded"
    recorded.mkdir()
    copies: list[Path] = []

    def keep(event: MediaEvent) -> None:
        """What the worker's recorder does: take the source segment's MPEG-TS copy while told."""
        if isinstance(event, SegmentWritten) and event.rendition == "source":
            assert event.record_path is not None and event.record_path.endswith(".ts")
            copies.append(recorded / f"{event.sequence}.ts")
            shutil.copyfile(event.record_path, copies[-1])

    lad = two_rungs(None, "fmp4")
    Transcoder(
        changes[how], out, lad, 1.0, on_event=keep, window=None, governor=LoadGovernor(enabled=False),
        source_ts_copy=True,
    ).run()  # fmt: skip

    source = out / "source" / "index.m3u8"
    text = source.read_text()
    assert "#EXT-X-VERSION:6" in text
    assert text.count("#EXT-X-MAP:") == 2 and '#EXT-X-MAP:URI="init-2.mp4"' in text
    sizes: list[tuple[int, int]] = []
    starts: dict[str, list[float]] = {}
    for name in ("source", "180p", "160p"):
        playlist = out / name / "index.m3u8"
        starts[name] = []
        for i, (_duration, uri) in enumerate(playlist_segments(playlist)):
            assert uri.endswith(".m4s")
            joined = with_init(playlist, uri, tmp_path / f"{name}-{i}.mp4")
            assert decodes(joined), f"{name}/{uri} does not decode with its EXT-X-MAP"
            packets = video_packets(joined)
            assert packets[0]["flags"].startswith("K")
            starts[name].append(round(float(packets[0]["pts_time"]), 3))
            if name == "source":
                (video,) = [s for s in streams(joined) if s["codec_type"] == "video"]
                sizes.append((video["width"], video["height"]))
    # The source switches size once, at a segment of its own; the encoded rungs keep theirs.
    change = sizes.index((320, 180))
    assert set(sizes[:change]) == {(640, 360)} and set(sizes[change:]) == {(320, 180)}
    assert 2.4 < starts["source"][change] - starts["source"][0] < 2.7  # at the change, not at 3 s
    # Segment N starts at the same instant in every rendition, the change's cut included, and every
    # rendition marks that segment as a discontinuity (the same discontinuity sequence everywhere).
    assert starts["source"] == starts["180p"] == starts["160p"]
    for name in ("source", "180p", "160p"):
        resumed = MediaPlaylist.resume(out / name / "index.m3u8", 1.0, None)
        assert [s.discontinuity for s in resumed.segments].index(True) == change, name
    # The new init segment's MP4 header declares the new size (players size the picture from it).
    assert header_sizes((out / "source" / "init.mp4").read_bytes()) == ([(640, 360)], [(640, 360)])
    assert header_sizes((out / "source" / "init-2.mp4").read_bytes()) == ([(320, 180)], [(320, 180)])
    # The recording's copies are MPEG-TS that decode on their own; none is left in the live folder.
    assert len(copies) == len(sizes)
    for i, ts in enumerate(copies):
        assert decodes(ts), ts
        shown = {(s["width"], s["height"]) for s in streams(ts) if s["codec_type"] == "video"}
        assert shown == {sizes[i]}
    assert not list((out / "source").glob(".*"))


def test_a_ts_ladder_keeps_its_ts_source_and_announces_no_copy(
    changes: dict[str, Path], tmp_path: Path
) -> None:
    events = run_ladder(changes["in-band"], tmp_path / "hls", two_rungs(None, "ts"), source_ts_copy=True)
    written = [e for e in events if isinstance(e, SegmentWritten)]
    assert written and all(e.record_path is None and e.path.endswith(".ts") for e in written)
    assert "#EXT-X-MAP" not in (tmp_path / "hls" / "source" / "index.m3u8").read_text()
