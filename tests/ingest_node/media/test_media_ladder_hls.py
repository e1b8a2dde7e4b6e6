"""Ladders as data, codec strings from real bitstreams, playlists as a reader sees them."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import pytest

from ingest_node.media.codec_strings import aac_codec_string, h264_codec_string, hevc_codec_string
from ingest_node.media.encoders import EncodeSpec, LibavEncoderFactory
from ingest_node.media.governor import LoadGovernor
from ingest_node.media.hls import MediaPlaylist, Segment
from ingest_node.media.ladder import ladder, load_presets, segment_seconds
from ingest_node.media.pipeline_events import StreamStarted
from ingest_node.media.transcoder import Transcoder
from tests.ingest_node.media.probe import decodes, master_variants, streams, with_init


def test_presets_have_the_three_qualities_and_latency_levels() -> None:
    assert set(load_presets().presets) == {"low", "medium", "high"}
    assert [segment_seconds(level) for level in range(1, 7)] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(KeyError, match="latency level"):
        segment_seconds(9)
    with pytest.raises(KeyError, match="unknown quality preset"):
        ladder("ultra")


def test_renditions_above_the_source_are_skipped_and_aspect_kept() -> None:
    fitted = ladder("high").for_source(1280, 720, Fraction(30))
    assert [r.name for r in fitted] == ["source", "720p", "480p", "360p", "160p"]
    assert [(r.width, r.height) for r in fitted] == [
        (1280, 720),
        (1280, 720),
        (854, 480),
        (640, 360),
        (284, 160),
    ]
    assert fitted[-1].fps == 15  # the 160p rung runs at 15 fps
    four_three = ladder("medium").for_source(640, 480, Fraction(25))
    assert [(r.name, r.width, r.height, r.fps) for r in four_three] == [
        ("source", 640, 480, Fraction(25)),
        ("480p", 640, 480, Fraction(25)),
        ("360p", 480, 360, Fraction(25)),
    ]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in four_three)
    assert {r.codec for r in ladder("low", codec="hevc").renditions if not r.passthrough} == {"hevc"}


def test_h264_codec_string_from_annexb_and_avcc() -> None:
    spec = EncodeSpec("h264", 320, 180, Fraction(30), Fraction(1, 30), 300_000)
    encoder = LibavEncoderFactory("libx264").open(spec)
    packets = []
    for i in range(3):
        frame = av.VideoFrame(320, 180, "yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    assert h264_codec_string(bytes(packets[0])) == "avc1.64000d"  # High, level 1.3 for 320x180@30
    assert h264_codec_string(bytes([1, 0x4D, 0x40, 0x1F, 0xFF])) == "avc1.4d401f"
    assert h264_codec_string(b"\x00\x00\x01\x09\xf0") is None
    assert aac_codec_string("LC") == "mp4a.40.2" and aac_codec_string("HE-AAC") == "mp4a.40.5"


def test_hevc_rendition_has_a_real_hvc1_string(clips: dict[str, Path], tmp_path: Path) -> None:
    lad = ladder("low", codec="hevc", speed="ultrafast")
    events: list[object] = []
    Transcoder(
        clips["flv"],
        tmp_path,
        lad,
        2.0,
        window=None,
        governor=LoadGovernor(enabled=False),
        on_event=events.append,
    ).run()
    started = next(e for e in events if isinstance(e, StreamStarted))
    assert dict(started.encoders)["160p"] in {"libx265", "hevc_nvenc", "hevc_qsv", "hevc_amf"}
    variants = dict((uri.split("/")[0], attrs) for attrs, uri in master_variants(tmp_path / "master.m3u8"))
    assert variants["160p"]["CODECS"].startswith("hvc1.1.6.L")  # Main profile
    # H.265 renditions are fMP4 (Safari plays H.265 only from fMP4, tagged hvc1).
    seg = with_init(tmp_path / "160p" / "index.m3u8", "seg-000000.m4s", tmp_path / "joined.mp4")
    video = next(s for s in streams(seg) if s["codec_type"] == "video")
    assert video["codec_name"] == "hevc" and video["codec_tag_string"] == "hvc1" and decodes(seg)
    assert variants["160p"]["CODECS"].startswith(f"hvc1.1.6.L{video['level']}.")
    assert hevc_codec_string(b"") is None


def seg(n: int, disc: bool = False) -> Segment:
    return Segment(n, f"seg-{n:06d}.ts", 2.0, 2.0 * n, datetime(2025, 1, 1, tzinfo=UTC), 100, disc)


def test_playlist_window_discontinuity_sequence_and_resume(tmp_path: Path) -> None:
    playlist = MediaPlaylist(path=tmp_path / "index.m3u8", target_seconds=2.0, window=3)
    for n in range(5):
        (tmp_path / f"seg-{n:06d}.ts").write_bytes(b"x")
        playlist.add(seg(n, disc=n == 1))
    text = playlist.path.read_text()
    assert "#EXT-X-MEDIA-SEQUENCE:2" in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text  # segment 1's discontinuity left the window
    assert "#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z" in text
    assert "#EXT-X-ENDLIST" not in text and not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    resumed = MediaPlaylist.resume(playlist.path, 2.0, 3)
    assert resumed.next_sequence == 5 and resumed.media_sequence == 2 and resumed.discontinuity_sequence == 1
    assert [s.uri for s in resumed.segments] == ["seg-000002.ts", "seg-000003.ts", "seg-000004.ts"]
    resumed.end()
    assert resumed.path.read_text().rstrip().endswith("#EXT-X-ENDLIST")


def test_target_duration_covers_a_long_segment(tmp_path: Path) -> None:
    playlist = MediaPlaylist(path=tmp_path / "index.m3u8", target_seconds=1.0, window=None)
    playlist.add(Segment(0, "seg-000000.ts", 2.6, 0.0, datetime(2025, 1, 1, tzinfo=UTC), 1))
    assert "#EXT-X-TARGETDURATION:3" in playlist.path.read_text()


def test_governor_sheds_when_behind_and_restores_only_with_headroom() -> None:
    governor = LoadGovernor(window_seconds=1.0)
    assert governor.observe(0.5, 1.0) is None
    speed = governor.observe(0.5, 1.0)
    assert speed == pytest.approx(0.5)
    assert governor.decide(0.5, active_cost=3.0, source_cost=4.0, restore_cost=None) == "shed"
    assert governor.decide(5.0, active_cost=1.0, source_cost=4.0, restore_cost=2.0) == "hold"  # settling
    assert governor.decide(1.3, active_cost=1.0, source_cost=4.0, restore_cost=2.0) == "hold"  # 1.3*2.4/4.4
    assert governor.decide(3.0, active_cost=1.0, source_cost=4.0, restore_cost=2.0) == "restore"
    assert LoadGovernor(enabled=False).decide(0.1, 1.0, 1.0, None) == "hold"
