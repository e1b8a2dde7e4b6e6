"""fMP4 (CMAF) renditions checked by ffprobe (init + segment decode, keyframes aligned with the other
renditions, CODECS true to the bitstream), AV1/H.265 forcing fMP4, and the adaptive order under load:
faster presets before shedding, restore before slower presets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

from ingest_node.media.governor import LoadGovernor
from ingest_node.media.ladder import Ladder, choose_segment_format, ladder
from ingest_node.media.pipeline_events import LadderChanged, MediaEvent, SegmentWritten, StreamStarted
from ingest_node.media.transcoder import Transcoder
from ingest_node.media.worker import EXIT_REFUSED
from tests.ingest_node.media.conftest import LAVFI_AUDIO, LAVFI_VIDEO
from tests.ingest_node.media.probe import (
    decodes,
    ffmpeg,
    master_variants,
    playlist_segments,
    streams,
    video_packets,
    with_init,
)
from tests.ingest_node.media.test_media_transcoder import StepClock

HAS_SVTAV1 = "libsvtav1" in av.codecs_available
REPO_ROOT = Path(__file__).resolve().parents[3]


def make_clip(path: Path, seconds: int) -> Path:
    """`seconds` of 320x180 30 fps H.264 (1 s GOP) + AAC in FLV, as OBS sends it."""
    ffmpeg(
        "-f", "lavfi", "-i", LAVFI_VIDEO.format(size="320x180"), "-f", "lavfi", "-i", LAVFI_AUDIO,
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 320x180: small enough for AV1 in a test."""
    return make_clip(tmp_path_factory.mktemp("small") / "small.flv", 3)


def two_rungs(codec: str | None, segment_format: str | None = None, speed: str = "ultrafast") -> Ladder:
    """Source passthrough plus 180p and 160p encoded rungs (cheap enough for a test machine)."""
    base = ladder("high", codec=codec, speed=speed)  # type: ignore[arg-type]
    rungs = [r for r in base.renditions if r.name in ("source", "160p")]
    extra = rungs[-1].model_copy(update={"name": "180p", "height": 180, "width": 320, "fps": 0})
    return Ladder(name="t", renditions=(*rungs, extra), segment_format=segment_format)  # type: ignore[arg-type]


def run_ladder(source: Path, out: Path, lad: Ladder, **kwargs: Any) -> list[MediaEvent]:
    events: list[MediaEvent] = []
    kwargs.setdefault("governor", LoadGovernor(enabled=False))
    Transcoder(source, out, lad, 1.0, on_event=events.append, window=None, **kwargs).run()
    return events


def check_fmp4_rendition(out: Path, name: str, codec: str, tmp: Path) -> list[float]:
    """Every segment of an fMP4 rendition, joined to its init segment, decodes and starts on a keyframe;
    returns the segments' first video timestamps."""
    playlist = out / name / "index.m3u8"
    text = playlist.read_text()
    assert "#EXT-X-VERSION:6" in text and '#EXT-X-MAP:URI="init.mp4"' in text
    starts = []
    for i, (_duration, uri) in enumerate(playlist_segments(playlist)):
        assert uri.endswith(".m4s")
        joined = with_init(playlist, uri, tmp / f"{name}-{i}.mp4")
        video = next(s for s in streams(joined) if s["codec_type"] == "video")
        assert video["codec_name"] == codec
        assert decodes(joined), f"{name}/{uri} does not decode"
        packets = video_packets(joined)
        assert packets[0]["flags"].startswith("K"), f"{name}/{uri} does not start on a keyframe"
        starts.append(round(float(packets[0]["pts_time"]), 3))
    return starts


def test_fmp4_h264_ladder_decodes_with_aligned_keyframes(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "hls"
    events = run_ladder(small_clip, out, two_rungs(None, "fmp4"))
    a = check_fmp4_rendition(out, "180p", "h264", tmp_path)
    b = check_fmp4_rendition(out, "160p", "h264", tmp_path)
    assert len(a) >= 3 and a == b  # segment N of every rendition starts at the same instant
    # The passthrough is fMP4 too (one container across the ladder, so players can switch); its cuts are
    # the same instants.
    assert check_fmp4_rendition(out, "source", "h264", tmp_path) == a
    variants = {uri.split("/")[0]: attrs for attrs, uri in master_variants(out / "master.m3u8")}
    joined = with_init(out / "180p" / "index.m3u8", "seg-000000.m4s", tmp_path / "j.mp4")
    video = next(s for s in streams(joined) if s["codec_type"] == "video")
    assert variants["180p"]["CODECS"].startswith("avc1.")
    assert int(variants["180p"]["CODECS"][9:11], 16) == video["level"]  # level byte from the SPS
    assert variants["180p"]["RESOLUTION"] == f"{video['width']}x{video['height']}"
    assert any(isinstance(e, StreamStarted) for e in events)


@pytest.mark.skipif(not HAS_SVTAV1, reason="this PyAV build has no libsvtav1")
def test_av1_renditions_switch_to_fmp4_and_decode(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "hls"
    events = run_ladder(small_clip, out, two_rungs("av1"))  # no format asked: AV1 means fMP4
    started = next(e for e in events if isinstance(e, StreamStarted))
    assert dict(started.encoders)["180p"] in {"libsvtav1", "av1_nvenc", "av1_qsv", "av1_amf", "av1_vaapi"}
    a = check_fmp4_rendition(out, "180p", "av1", tmp_path)
    b = check_fmp4_rendition(out, "160p", "av1", tmp_path)
    assert len(a) >= 3 and a == b
    variants = {uri.split("/")[0]: attrs for attrs, uri in master_variants(out / "master.m3u8")}
    assert re.fullmatch(r"av01\.0\.\d\dM\.08,mp4a\.40\.2", variants["180p"]["CODECS"])
    assert (out / "180p" / "init.mp4").read_bytes()[4:8] == b"ftyp"


def test_ts_segments_with_av1_or_hevc_is_a_clear_error_before_any_output(
    small_clip: Path, tmp_path: Path
) -> None:
    for codec in ("av1", "hevc"):
        with pytest.raises(ValueError, match="need fMP4 segments"):
            Transcoder(small_clip, tmp_path / codec, two_rungs(codec, "ts"), 1.0)
        assert not (tmp_path / codec).exists()
    assert choose_segment_format({"h264"}, None) == "ts"
    assert choose_segment_format({"h264", "hevc"}, None) == "fmp4"
    assert choose_segment_format({"h264"}, "fmp4") == "fmp4"


def test_governor_prefers_faster_presets_and_restores_in_reverse() -> None:
    g = LoadGovernor(window_seconds=1.0)
    assert g.decide(0.5, 3.0, 4.0, None, can_speed_up=True) == "faster"
    assert g.decide(0.5, 3.0, 4.0, None, can_speed_up=True) == "hold"  # settling after a change
    assert g.decide(0.5, 3.0, 4.0, None, can_speed_up=False) == "shed"
    g.decide(0.5, 3.0, 4.0, None)
    # Headroom: the shed rendition comes back before any preset is slowed down ...
    assert g.decide(9.0, 1.0, 4.0, 2.0, slow_down_cost=0.5) == "restore"
    g.decide(9.0, 1.0, 4.0, None)
    # ... and a preset is slowed only when the prediction with its extra cost keeps up.
    assert g.decide(1.3, 1.0, 4.0, None, slow_down_cost=3.0) == "hold"  # 1.3*2.4/5.4 < 1.25
    assert g.decide(3.0, 1.0, 4.0, None, slow_down_cost=0.5) == "slower"
    g.decide(3.0, 1.0, 4.0, None)
    # While a shed rendition waits for room, presets are never slowed ahead of it.
    assert g.decide(1.3, 1.0, 4.0, 9.0, slow_down_cost=0.1) == "hold"


def test_speeds_up_presets_before_shedding_and_restores_in_reverse(tmp_path: Path) -> None:
    """An artificially slow pipeline (a clock that charges 0.2 s per packet) first moves every encoded
    rendition veryfast -> superfast -> ultrafast, then sheds; with headroom back it restores the shed
    rendition and steps the presets back to veryfast. Each step is a LadderChanged event and shows in
    the master playlist; the sped-up renditions still decode and keep aligned keyframes."""
    clock = StepClock(1e-6)
    events: list[MediaEvent] = []
    masters: list[str] = []
    out = tmp_path / "hls"

    def on_event(event: MediaEvent) -> None:
        events.append(event)
        changes = [e for e in events if isinstance(e, LadderChanged)]
        if isinstance(event, SegmentWritten) and not changes:
            clock.step = 0.2  # the machine gets busy once the stream is up
        if isinstance(event, LadderChanged):
            masters.append((out / "master.m3u8").read_text())
            if event.dropped:
                clock.step = 1e-6  # headroom comes back

    lad = two_rungs(None, speed="veryfast")
    clip = make_clip(tmp_path / "clip.flv", 7)  # six changes, each followed by a settling window
    governor = LoadGovernor(window_seconds=0.25)
    Transcoder(clip, out, lad, 1.0, on_event=on_event, window=None, governor=governor, clock=clock).run()
    changes = [e for e in events if isinstance(e, LadderChanged)]
    kinds = []
    for change in changes:
        if change.dropped:
            kinds.append("shed")
        elif change.restored:
            kinds.append("restore")
        elif "faster presets" in change.reason:
            kinds.append("faster")
        elif "slower presets" in change.reason:
            kinds.append("slower")
    assert kinds[:6] == ["faster", "faster", "shed", "restore", "slower", "slower"], kinds
    assert dict(changes[0].speeds) == {"180p": "superfast", "160p": "superfast"}
    assert dict(changes[1].speeds) == {"180p": "ultrafast", "160p": "ultrafast"}
    assert changes[2].dropped == ("180p",)  # the most expensive rung goes only after the presets
    assert dict(changes[5].speeds) == {"180p": "veryfast", "160p": "veryfast"}
    assert all(c.speed is not None for c in changes)
    # New viewers see each step in the master playlist (a comment per variant: encoder and preset).
    assert "# 160p: libx264 preset ultrafast" in masters[2] and "180p/" not in masters[2]
    assert "# 160p: libx264 preset superfast" in masters[4]
    assert "# 160p: libx264 preset veryfast" in masters[5]
    final = (out / "master.m3u8").read_text()  # the restored rung is listed once it has a segment
    assert "# 180p: libx264 preset veryfast" in final and "180p/index-2.m3u8" in final
    # Current viewers of 160p keep one playlist: the preset changes are discontinuities in it, and
    # every segment still decodes and starts on a keyframe at the source's cut instants.
    playlist = out / "160p" / "index.m3u8"
    assert playlist.read_text().count("#EXT-X-DISCONTINUITY\n") >= 3
    source_starts = [
        round(float(video_packets(out / "source" / uri)[0]["pts_time"]), 3)
        for _, uri in playlist_segments(out / "source" / "index.m3u8")
    ]
    for _, uri in playlist_segments(playlist):
        seg = playlist.parent / uri
        packets = video_packets(seg)
        assert decodes(seg) and packets[0]["flags"].startswith("K")
        assert round(float(packets[0]["pts_time"]), 3) in source_starts


def test_worker_refuses_settings_it_cannot_honour_with_a_clear_reason(
    small_clip: Path, tmp_path: Path
) -> None:
    """TS segments asked for an AV1 channel (the worker's argv as the node builds it): the worker says
    why on its event line and exits with EXIT_REFUSED (a restart would fail the same way)."""
    argv = [
        sys.executable, "-m", "ingest_node.media.worker", "--channel-id", "c1",
        "--out-dir", str(tmp_path / "out"), "--segment-seconds", "1", "--preset", "low",
        "--codec", "av1", "--segment-format", "ts", "--pipeline", "transcoder",
    ]  # fmt: skip
    run = subprocess.run(argv, input=small_clip.read_bytes(), capture_output=True, timeout=120, cwd=REPO_ROOT)
    assert run.returncode == EXIT_REFUSED, run.stderr.decode()[-2000:]
    events = [json.loads(line) for line in run.stdout.decode().splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "refused"
    assert "need fMP4 segments" in events[-1]["reason"]
