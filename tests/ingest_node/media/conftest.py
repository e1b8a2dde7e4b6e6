"""Real media for the pipeline tests: short clips made once per session with Debian's ffmpeg CLI (the
independent publisher, as OBS would be)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest_node.media.probe import FFMPEG, FFPROBE, ffmpeg

if not Path(FFMPEG).exists() or not Path(FFPROBE).exists():  # pragma: no cover - setup installs them
    pytest.skip("ffmpeg/ffprobe are needed (make setup installs them)", allow_module_level=True)

LAVFI_VIDEO = "testsrc2=size={size}:rate=30"
LAVFI_AUDIO = "sine=frequency=440:sample_rate=48000"


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """640x360 30 fps clips of 4 s: FLV with H.264 (B-frames, 1 s GOP) and AAC as OBS sends it, plus
    audio-only, video-only, MP3 audio, and an MPEG-TS whose resolution changes mid-stream."""
    folder = tmp_path_factory.mktemp("clips")
    video = ["-f", "lavfi", "-i", LAVFI_VIDEO.format(size="640x360")]
    audio = ["-f", "lavfi", "-i", LAVFI_AUDIO]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p"]
    made = {
        "flv": folder / "clip.flv",
        "audio_only": folder / "audio.flv",
        "video_only": folder / "video.flv",
        "mp3": folder / "mp3.flv",
        "res_change": folder / "res_change.ts",
    }
    ffmpeg(*video, *audio, "-t", "4", *x264, "-c:a", "aac", "-shortest", str(made["flv"]))
    ffmpeg(*audio, "-t", "3", "-c:a", "aac", str(made["audio_only"]))
    ffmpeg(*video, "-t", "3", *x264, str(made["video_only"]))
    ffmpeg(
        *video, *audio, "-t", "3", *x264, "-c:a", "libmp3lame", "-ar", "44100", "-shortest", str(made["mp3"])
    )
    first, second = folder / "a.ts", folder / "b.ts"
    ffmpeg(*video, *audio, "-t", "2", *x264, "-c:a", "aac", "-shortest", str(first))
    ffmpeg(
        "-f", "lavfi", "-i", LAVFI_VIDEO.format(size="320x240"), *audio, "-t", "2", *x264, "-c:a", "aac",
        "-shortest", "-output_ts_offset", "2.1", str(second),
    )  # fmt: skip
    made["res_change"].write_bytes(first.read_bytes() + second.read_bytes())
    return made
