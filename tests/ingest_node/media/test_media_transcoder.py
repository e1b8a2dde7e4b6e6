"""The transcoding pipeline end to end on real media, checked by ffprobe: decodes, durations, keyframe
alignment across renditions, master playlist attributes, passthrough untouched, pipes, odd inputs."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from ingest_node.media.encoders import EncoderSelector, EncodeSpec, LibavEncoderFactory, VideoEncoder
from ingest_node.media.governor import LoadGovernor
from ingest_node.media.ladder import Ladder, Rendition, ladder
from ingest_node.media.pipeline_events import (
    EncoderFellBack,
    LadderChanged,
    MediaEvent,
    PipelineError,
    SegmentWritten,
    StreamEnded,
    StreamStarted,
)
from ingest_node.media.transcoder import MediaInputError, Transcoder
from tests.ingest_node.media.probe import (
    FFMPEG,
    decodes,
    framemd5,
    master_variants,
    playlist_segments,
    streams,
    video_packets,
)

H264_PROFILES = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}


@dataclass
class Run:
    out: Path
    events: list[MediaEvent] = field(default_factory=list)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def transcode(source: object, out: Path, lad: Ladder, seconds: float = 1.0, **kwargs: object) -> Run:
    run = Run(out)
    kwargs.setdefault("governor", LoadGovernor(enabled=False))  # no load shedding on a noisy test machine
    kwargs.setdefault("window", None)
    Transcoder(source, out, lad, seconds, on_event=run.events.append, **kwargs).run()  # type: ignore[arg-type]
    return run


def small_ladder(*names: str) -> Ladder:
    """The `high` preset cut down to the named renditions (fast enough for tests)."""
    return Ladder(name="test", renditions=tuple(r for r in ladder("high").renditions if r.name in names))


@pytest.fixture(scope="module")
def flv_run(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return transcode(clips["flv"], tmp_path_factory.mktemp("hls"), ladder("high"))


def renditions_of(run: Run) -> dict[str, list[Path]]:
    result = {}
    for _attrs, uri in master_variants(run.out / "master.m3u8"):
        playlist = run.out / uri
        result[uri.split("/")[0]] = [playlist.parent / seg for _, seg in playlist_segments(playlist)]
    return result


def test_ladder_fits_the_source_and_every_segment_decodes(flv_run: Run) -> None:
    renditions = renditions_of(flv_run)
    assert list(renditions) == ["source", "360p", "160p"]  # 1080p/720p/480p are above a 360p source
    for name, segments in renditions.items():
        assert len(segments) == 4, name
        for seg in segments:
            assert decodes(seg), seg
    started = flv_run.of(StreamStarted)[0]
    assert dict(started.encoders) == {"source": "copy", "360p": "libx264", "160p": "libx264"}
    assert len(flv_run.of(SegmentWritten)) == 12
    ended = flv_run.of(StreamEnded)
    assert ended and ended[0].reason == "eof" and ended[0].segments == 12


def test_segments_start_on_keyframes_at_the_same_timestamps_in_every_rendition(flv_run: Run) -> None:
    starts: dict[str, list[float]] = {}
    for name, segments in renditions_of(flv_run).items():
        starts[name] = []
        for seg in segments:
            packets = video_packets(seg)
            assert packets[0]["flags"].startswith("K"), (name, seg)
            starts[name].append(float(packets[0]["pts_time"]))
    reference = starts["source"]
    for name, values in starts.items():
        assert values == pytest.approx(reference, abs=0.002), name
    gaps = [b - a for a, b in itertools.pairwise(reference)]
    assert gaps == pytest.approx([1.0] * len(gaps), abs=0.05)


def test_playlist_durations_match_the_segments(flv_run: Run) -> None:
    for _attrs, uri in master_variants(flv_run.out / "master.m3u8"):
        playlist = flv_run.out / uri
        text = playlist.read_text()
        assert "#EXT-X-TARGETDURATION:1" in text
        assert "#EXT-X-MEDIA-SEQUENCE:0" in text
        assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == 4
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        entries = playlist_segments(playlist)
        for duration, _ in entries[:-1]:
            assert duration == pytest.approx(1.0, abs=0.05)
        assert sum(d for d, _ in entries) == pytest.approx(4.0, abs=0.15)


def test_master_playlist_matches_what_ffprobe_sees(flv_run: Run) -> None:
    variants = master_variants(flv_run.out / "master.m3u8")
    assert len(variants) == 3
    for attrs, uri in variants:
        first = flv_run.out / uri.split("/")[0] / "seg-000000.ts"
        video = next(s for s in streams(first) if s["codec_type"] == "video")
        audio = next(s for s in streams(first) if s["codec_type"] == "audio")
        assert attrs["RESOLUTION"] == f"{video['width']}x{video['height']}"
        vcodec, acodec = attrs["CODECS"].split(",")
        assert vcodec.startswith("avc1.") and video["codec_name"] == "h264"
        assert int(vcodec[5:7], 16) == H264_PROFILES[video["profile"]]
        assert int(vcodec[9:11], 16) == video["level"]
        assert acodec == "mp4a.40.2" and audio["codec_name"] == "aac" and audio["profile"] == "LC"
        one_second = flv_run.out / uri.split("/")[0] / "seg-000001.ts"  # a full 1 s segment
        assert float(attrs["FRAME-RATE"]) == pytest.approx(len(video_packets(one_second)), abs=0.01)
        peak, average = int(attrs["BANDWIDTH"]), int(attrs["AVERAGE-BANDWIDTH"])
        sizes = [p.stat().st_size for p in (flv_run.out / uri).parent.glob("seg-*.ts")]
        assert peak >= average > 0
        assert average == pytest.approx(sum(sizes) * 8 / 4.0, rel=0.1)


def test_passthrough_is_not_reencoded(flv_run: Run, clips: dict[str, Path]) -> None:
    joined = flv_run.out / "source-joined.ts"
    joined.write_bytes(b"".join(p.read_bytes() for p in renditions_of(flv_run)["source"]))
    source_sizes = [int(p["size"]) for p in video_packets(clips["flv"])]
    ours = [int(p["size"]) for p in video_packets(joined)]
    assert len(ours) == len(source_sizes)
    assert framemd5(joined) == framemd5(clips["flv"])  # the very same pictures: no re-encode
    # Non-key packets are the source's bytes (4-byte length prefix -> 4-byte start code), plus the 6-byte
    # access unit delimiter that MPEG-TS wants; a re-encode could never keep every size like this.
    non_key = [i for i, p in enumerate(video_packets(clips["flv"])) if not p["flags"].startswith("K")]
    assert {ours[i] - source_sizes[i] for i in non_key} <= {0, 6}


def test_reads_flv_from_a_pipe_as_the_rtmp_server_hands_it(clips: dict[str, Path], tmp_path: Path) -> None:
    """ffmpeg writes FLV to stdout (as the RTMP server relays OBS) and the pipeline reads the pipe."""
    publisher = subprocess.Popen(
        [FFMPEG, "-v", "error", "-i", str(clips["flv"]), "-c", "copy", "-f", "flv", "-"],
        stdout=subprocess.PIPE,
    )
    assert publisher.stdout is not None
    run = transcode(publisher.stdout, tmp_path, small_ladder("source", "160p"))
    publisher.wait(timeout=30)
    assert [v[1] for v in master_variants(tmp_path / "master.m3u8")] == [
        "source/index.m3u8",
        "160p/index.m3u8",
    ]
    for name in ("source", "160p"):
        segments = sorted((tmp_path / name).glob("seg-*.ts"))
        assert len(segments) == 4 and all(decodes(s) for s in segments)
    assert run.of(StreamEnded)[0].reason == "eof"


def test_reads_from_an_os_pipe(clips: dict[str, Path], tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    data = clips["flv"].read_bytes()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as w:
            for i in range(0, len(data), 4096):
                w.write(data[i : i + 4096])

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb") as r:
        run = transcode(r, tmp_path, small_ladder("source"))
    feeder.join()
    assert len(run.of(SegmentWritten)) == 4


class FailingAfter:
    """An encoder that works for `frames` frames and then fails as a GPU encoder does when the device
    is lost; it wraps the real libx264 so the packets before the failure are real."""

    def __init__(self, frames: int) -> None:
        self.name = "flaky_gpu"
        self.frames = frames

    def open(self, spec: EncodeSpec) -> VideoEncoder:
        inner = LibavEncoderFactory("libx264").open(spec)
        budget = self.frames

        class Flaky:
            name = "flaky_gpu"
            time_base = inner.time_base

            def encode(self, frame):  # type: ignore[no-untyped-def]
                nonlocal budget
                budget -= 1
                if budget < 0:
                    raise RuntimeError("device lost")
                return inner.encode(frame)

        return Flaky()


def test_encoder_that_fails_mid_stream_is_replaced_without_ending_the_stream(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    selector = EncoderSelector({"h264": [FailingAfter(45), "libx264"]})
    run = transcode(clips["flv"], tmp_path, small_ladder("source", "160p"), encoders=selector)
    fell = run.of(EncoderFellBack)
    assert [(f.rendition, f.failed, f.replacement) for f in fell] == [("160p", "flaky_gpu", "libx264")]
    segments = sorted((tmp_path / "160p").glob("seg-*.ts"))
    assert len(segments) >= 4 and all(decodes(s) for s in segments)
    for seg in segments:
        assert video_packets(seg)[0]["flags"].startswith("K")
    text = (tmp_path / "160p" / "index.m3u8").read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    total = sum(d for d, _ in playlist_segments(tmp_path / "160p" / "index.m3u8"))
    assert total == pytest.approx(4.0, abs=0.05)  # the failed encoder's lookahead was re-encoded
    assert run.of(StreamEnded)[0].reason == "eof"


def test_hardware_encoder_that_does_not_open_is_skipped(clips: dict[str, Path], tmp_path: Path) -> None:
    """h264_nvenc is in the library but this machine has no NVIDIA GPU: opening it fails, libx264 is
    used. (On a machine with a GPU, NVENC opens and is picked: the assertion adapts.)"""
    probe_spec = EncodeSpec("h264", 256, 144, Fraction(30), Fraction(1, 1000), 300_000)
    try:
        LibavEncoderFactory("h264_nvenc").open(probe_spec)
        expected = "h264_nvenc"
    except Exception:
        expected = "libx264"
    selector = EncoderSelector({"h264": ["h264_nvenc", "libx264"]})
    run = transcode(clips["flv"], tmp_path, small_ladder("160p"), encoders=selector)
    assert dict(run.of(StreamStarted)[0].encoders) == {"160p": expected}
    assert not run.of(EncoderFellBack)


def test_audio_only_input(clips: dict[str, Path], tmp_path: Path) -> None:
    run = transcode(clips["audio_only"], tmp_path, ladder("medium"))
    [(attrs, uri)] = master_variants(tmp_path / "master.m3u8")
    assert uri == "audio/index.m3u8" and attrs["CODECS"] == "mp4a.40.2" and "RESOLUTION" not in attrs
    segments = sorted((tmp_path / "audio").glob("seg-*.ts"))
    assert all(decodes(s) for s in segments)
    durations = [d for d, _ in playlist_segments(tmp_path / "audio" / "index.m3u8")]
    assert durations[:3] == pytest.approx([1.0, 1.0, 1.0], abs=0.03)
    assert sum(durations) == pytest.approx(3.02, abs=0.03)  # the clip is 3.021 s of AAC
    assert [s["codec_type"] for s in streams(segments[0])] == ["audio"]
    assert run.of(StreamEnded)[0].reason == "eof"


def test_video_only_input(clips: dict[str, Path], tmp_path: Path) -> None:
    transcode(clips["video_only"], tmp_path, small_ladder("source", "160p"))
    variants = master_variants(tmp_path / "master.m3u8")
    assert [a["CODECS"].count(",") for a, _ in variants] == [0, 0]
    for _, uri in variants:
        segments = sorted((tmp_path / uri).parent.glob("seg-*.ts"))
        assert len(segments) == 3 and all(decodes(s) for s in segments)
        assert [s["codec_type"] for s in streams(segments[0])] == ["video"]


def test_non_aac_audio_is_encoded_to_aac_once(clips: dict[str, Path], tmp_path: Path) -> None:
    transcode(clips["mp3"], tmp_path, small_ladder("source", "160p"))
    for attrs, uri in master_variants(tmp_path / "master.m3u8"):
        assert attrs["CODECS"].endswith(",mp4a.40.2")
        seg = (tmp_path / uri).parent / "seg-000001.ts"
        assert {s["codec_name"] for s in streams(seg)} == {"h264", "aac"}
        assert decodes(seg)


@pytest.mark.parametrize("seed", range(4))
def test_garbage_input_fails_with_a_clear_error(tmp_path: Path, seed: int) -> None:
    junk = tmp_path / "junk.flv"
    # Random bytes are sometimes probed as an FLV without streams, sometimes not at all: both must be a
    # clear MediaInputError, so several seeded inputs cover both paths deterministically.
    junk.write_bytes(random.Random(seed).randbytes(20_000))
    events: list[MediaEvent] = []
    with pytest.raises(MediaInputError, match=r"cannot read the input|neither a video nor an audio stream"):
        Transcoder(junk, tmp_path / "out", ladder("low"), 2.0, on_event=events.append).run()
    errors = [e for e in events if isinstance(e, PipelineError)]
    assert errors and errors[0].fatal
    assert not (tmp_path / "out" / "master.m3u8").exists()


def test_resolution_change_mid_stream_keeps_going(clips: dict[str, Path], tmp_path: Path) -> None:
    """640x360 then 320x240 in one MPEG-TS stream: the scaled renditions keep their size, passthrough
    carries the new one, and every segment decodes."""
    run = transcode(clips["res_change"], tmp_path, small_ladder("source", "160p"))
    assert run.of(StreamEnded)[0].reason == "eof"
    sizes = set()
    for name in ("source", "160p"):
        segments = sorted((tmp_path / name).glob("seg-*.ts"))
        assert len(segments) >= 3 and all(decodes(s) for s in segments)
        if name == "160p":
            sizes = {
                (s["width"], s["height"])
                for seg in segments
                for s in streams(seg)
                if s["codec_type"] == "video"
            }
    assert sizes == {(284, 160)}
    last_source = sorted((tmp_path / "source").glob("seg-*.ts"))[-1]
    assert [(s["width"], s["height"]) for s in streams(last_source) if s["codec_type"] == "video"] == [
        (320, 240)
    ]


def test_live_window_slides_and_old_segments_go(clips: dict[str, Path], tmp_path: Path) -> None:
    transcode(clips["flv"], tmp_path, small_ladder("source"), seconds=1.0, window=2)
    text = (tmp_path / "source" / "index.m3u8").read_text()
    assert "#EXT-X-MEDIA-SEQUENCE:2" in text and text.count("#EXTINF") == 2
    assert "#EXT-X-PLAYLIST-TYPE" not in text
    assert sorted(p.name for p in (tmp_path / "source").glob("seg-*.ts")) == [
        f"seg-00000{i}.ts" for i in range(4)
    ]  # two out of the window are kept one more window, as RFC 8216 asks


def test_reconnect_continues_the_broadcast_with_a_discontinuity(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    transcode(clips["flv"], tmp_path, small_ladder("source", "160p"))
    run = transcode(clips["flv"], tmp_path, small_ladder("source", "160p"), resume=True)
    for name in ("source", "160p"):
        playlist = tmp_path / name / "index.m3u8"
        text = playlist.read_text()
        assert text.count("#EXT-X-DISCONTINUITY\n") == 1
        assert [uri for _, uri in playlist_segments(playlist)] == [f"seg-{i:06d}.ts" for i in range(8)]
        assert text.rstrip().endswith("#EXT-X-ENDLIST") and text.count("#EXT-X-ENDLIST") == 1
    assert min(e.sequence for e in run.of(SegmentWritten)) == 4


class StepClock:
    """A clock that advances `step` seconds per reading: each packet then 'costs' one step of busy
    time, so a large step makes the pipeline look slower than real time and a tiny one fast."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_sheds_the_most_expensive_rendition_when_behind_and_restores_it(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    clock = StepClock(1e-6)
    run = Run(tmp_path)
    masters: list[list[str]] = []

    def on_event(event: MediaEvent) -> None:
        run.events.append(event)
        if isinstance(event, SegmentWritten) and not run.of(LadderChanged):
            clock.step = 0.2  # the machine gets busy once the stream is up
        if isinstance(event, LadderChanged):
            masters.append([uri for _, uri in master_variants(tmp_path / "master.m3u8")])
            if event.dropped:
                clock.step = 1e-6  # headroom comes back

    governor = LoadGovernor(window_seconds=0.5)
    # Already at the fastest preset: shedding is the only step left (presets first: test_media_adapt).
    fastest = small_ladder("source", "360p", "160p").with_codec(None, "ultrafast")
    Transcoder(
        clips["flv"], tmp_path, fastest, 1.0,
        on_event=on_event, governor=governor, clock=clock, window=None,
    ).run()  # fmt: skip
    changes = run.of(LadderChanged)
    assert changes[0].dropped == ("360p",) and changes[0].active == ("source", "160p")
    assert changes[0].speed is not None and changes[0].speed < 1
    assert "360p/index.m3u8" not in masters[0] and "source/index.m3u8" in masters[0]
    # Current viewers of 360p are not broken: its playlist is complete and ends cleanly.
    assert (tmp_path / "360p" / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert changes[1].restored == ("360p",) and changes[1].active == ("source", "360p", "160p")
    restored = tmp_path / "360p" / "index-2.m3u8"
    assert "360p/index-2.m3u8" in [uri for _, uri in master_variants(tmp_path / "master.m3u8")]
    segments = playlist_segments(restored)
    assert segments, "the restored rendition produced segments"
    for _, uri in segments:
        seg = restored.parent / uri
        assert decodes(seg) and video_packets(seg)[0]["flags"].startswith("K")


def test_rendition_list_is_validated() -> None:
    with pytest.raises(ValueError, match="height"):
        Rendition(name="broken", video_kbps=100)
    with pytest.raises(ValueError, match="duplicate"):
        Ladder(
            name="x",
            renditions=(Rendition(name="a", passthrough=True), Rendition(name="a", passthrough=True)),
        )


def test_stop_ends_cleanly_with_endlist(clips: dict[str, Path], tmp_path: Path) -> None:
    events: list[MediaEvent] = []
    transcoder: Transcoder

    def on_event(event: MediaEvent) -> None:
        events.append(event)
        if isinstance(event, SegmentWritten):
            transcoder.stop()

    transcoder = Transcoder(
        clips["flv"], tmp_path, small_ladder("source", "160p"), 1.0, on_event=on_event, window=None,
        governor=LoadGovernor(enabled=False),
    )  # fmt: skip
    transcoder.run()
    ended = [e for e in events if isinstance(e, StreamEnded)]
    assert ended and ended[0].reason == "stopped" and ended[0].media_seconds < 3
    for name in ("source", "160p"):
        text = (tmp_path / name / "index.m3u8").read_text()
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        assert all(
            decodes(tmp_path / name / uri) for _, uri in playlist_segments(tmp_path / name / "index.m3u8")
        )
