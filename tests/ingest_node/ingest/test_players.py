"""Real players play the node's live HLS while ffmpeg publishes to its RTMP port, as OBS would.

- hls.js (pinned in players/package-lock.json) in Debian's headless Chromium: the Media Source
  Extensions path of every web player outside Safari, with TS and with fMP4 segments. The page comes from
  an origin of its own (another port), so every request hls.js makes is cross-origin: the node's CORS
  headers are checked by a browser that enforces them.
- ffplay (FFmpeg's player) and VLC, headless: each opens the master playlist and decodes video frames.

Safari cannot run here; docs/players.md says what stands in for it. The node transcodes with the `low`
preset, so the master playlist has two variants (the 360p source and 160p) and a player can switch.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import Settings
from tests.conftest import free_port
from tests.ingest_node.ingest.conftest import FFPROBE, IngestNode, finish, wait_until
from tests.ingest_node.live_node import ServerThread, running_node
from tests.ingest_node.money.cdp import CHROMIUM, Browser

pytestmark = [pytest.mark.slow, pytest.mark.db]

PLAYERS = Path(__file__).resolve().parents[3] / "players"
HLS_JS = PLAYERS / "node_modules" / "hls.js" / "dist" / "hls.min.js"
FFPLAY = "/usr/bin/ffplay"
CVLC = shutil.which("cvlc") or "/usr/bin/cvlc"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
# Long enough that each player starts while the stream is live and plays several seconds of it.
PUBLISH_SECONDS = 20
PLAY_SECONDS = 4
SHOWINFO_FRAME = re.compile(r"\[Parsed_showinfo_\d+ @ [^\]]+\] n:\s*\d+ .* s:(\d+)x(\d+) ")

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is needed (make setup installs it)"
)
needs_hls_js = pytest.mark.skipif(
    not HLS_JS.exists(), reason="hls.js is not installed (make setup runs `npm ci` in players/)"
)
needs_ffplay = pytest.mark.skipif(
    not Path(FFPLAY).exists(), reason="ffplay is needed (Debian's ffmpeg; make setup installs it)"
)
needs_vlc = pytest.mark.skipif(
    shutil.which(CVLC) is None, reason="VLC is needed (vlc-bin, vlc-plugin-base; make setup installs them)"
)


@pytest.fixture(scope="module")
def player_node(
    node_settings: Settings, sandbox: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngestNode]:
    port = free_port()
    settings = node_settings.model_copy(
        update={
            "node_id": "player-node",
            "node_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "rtmp_enabled": True,
            "rtmp_host": "127.0.0.1",
            "rtmp_port": free_port(),
            "hls_dir": tmp_path_factory.mktemp("player-live"),
            "hls_segment_seconds": 1.0,
            "stream_pipeline": "transcoder",
            "stream_quality_preset": "low",
        }
    )
    with running_node(settings) as started:
        yield IngestNode(started)


@dataclass
class LiveStream:
    channel_id: str
    master_url: str
    publisher: subprocess.Popen[str]
    variants: list[tuple[int, int]]  # (width, height) of each variant of the master playlist served


def _rendition_segments(folder: Path) -> int:
    return sum(1 for p in folder.glob("seg*") if p.suffix in (".ts", ".m4s"))


def _variants(master: str) -> list[tuple[int, int]]:
    found = re.findall(r"#EXT-X-STREAM-INF:.*RESOLUTION=(\d+)x(\d+)", master)
    return [(int(w), int(h)) for w, h in found]


@pytest.fixture
def live_stream(player_node: IngestNode, request: pytest.FixtureRequest) -> Iterator[LiveStream]:
    """A channel streaming live for PUBLISH_SECONDS; yielded once every rendition has two segments.

    Indirect parameter: the channel's segment format ("ts" or "fmp4"), "ts" when not parametrized.
    """
    segment_format = getattr(request, "param", "ts")
    channel_id, key = player_node.channel_with_key()
    with player_node.node.admin() as http:
        answer = http.put(f"/api/v1/channels/{channel_id}/media", json={"segment_format": segment_format})
    assert answer.status_code == 200, answer.text
    publisher = player_node.publish(key, seconds=PUBLISH_SECONDS)
    try:
        root = player_node.hls_dir(channel_id)
        wait_until(lambda: (root / "master.m3u8").exists(), "the master playlist")
        renditions = [
            line.split("/")[0]
            for line in (root / "master.m3u8").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        for rendition in renditions:
            wait_until(lambda r=rendition: _rendition_segments(root / r) >= 2, f"two {rendition} segments")
        # Every rendition, the passthrough source included, takes the channel's format: one container
        # across the ladder, so a player can switch between any two.
        suffix = ".m4s" if segment_format == "fmp4" else ".ts"
        for rendition in renditions:
            assert {p.suffix for p in (root / rendition).glob("seg*")} == {suffix}, rendition
        url = f"{player_node.node.url}/live/{channel_id}/master.m3u8"
        served = httpx.get(url, timeout=30)
        assert served.status_code == 200, served.text
        variants = _variants(served.text)
        assert sorted(variants) == [(284, 160), (640, 360)], served.text
        yield LiveStream(channel_id, url, publisher, variants)
        code, err = finish(publisher)
        assert code == 0, err
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """players/ served on a port of its own: the player page's origin is not the node's."""
    handler = functools.partial(_QuietHandler, directory=str(PLAYERS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="player-page", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser(wait_seconds=120)
    try:
        yield started
    finally:
        started.close()


def _player(browser: Browser) -> dict[str, Any]:
    state: dict[str, Any] = browser.evaluate("JSON.parse(JSON.stringify(window.efirPlayer))")
    return state


def _played_past(browser: Browser, seconds: float) -> None:
    """Wait until the video played past `seconds` (or hls.js gave up); fails with what hls.js said."""
    reached = browser.wait_until(
        f"window.efirPlayer.fatal !== null || document.getElementById('video').currentTime > {seconds}"
    )
    state = _player(browser)
    assert state["fatal"] is None, f"hls.js gave up: {state['fatal']} (errors: {state['errors']})"
    assert reached, f"playback never passed {seconds} s (errors: {state['errors']})"


@needs_chromium
@needs_hls_js
@pytest.mark.parametrize(
    "live_stream",
    [
        "ts",
        "fmp4",
    ],
    indirect=True,
)
def test_hls_js_in_chromium_plays_the_live_stream_and_switches_rendition(
    live_stream: LiveStream, browser: Browser, page_origin: str
) -> None:
    assert browser.evaluate("MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.64001f,mp4a.40.2\"')"), (
        "this Chromium cannot decode H.264/AAC through MSE"
    )
    browser.navigate(f"{page_origin}/hlsjs.html?{httpx.QueryParams(src=live_stream.master_url)}")
    assert browser.wait_until("window.efirPlayer !== undefined"), "the player page did not load"
    assert _player(browser)["supported"], "hls.js says this browser has no MSE"
    assert browser.wait_until("window.efirPlayer.fatal !== null || window.efirPlayer.levels.length > 0"), (
        "hls.js never parsed the master playlist"
    )
    _played_past(browser, 3)

    state = _player(browser)
    levels = [(level["width"], level["height"]) for level in state["levels"]]
    assert sorted(levels) == sorted(live_stream.variants)
    assert all(level["videoCodec"].startswith("avc1.") for level in state["levels"]), state["levels"]
    assert state["loadedLevels"], "no media playlist was loaded"
    video = browser.evaluate(
        "(() => { const v = document.getElementById('video');"
        " return {width: v.videoWidth, height: v.videoHeight,"
        " frames: v.getVideoPlaybackQuality().totalVideoFrames}; })()"
    )
    assert (video["width"], video["height"]) in live_stream.variants, video
    assert video["frames"] > 0, video

    # Switch to the other rendition by hand: it must load, play and show its own picture size.
    playing = levels.index((video["width"], video["height"]))
    other = 1 - playing
    at = browser.evaluate("document.getElementById('video').currentTime")
    browser.evaluate(f"window.efirHls.currentLevel = {other}")
    switched = browser.wait_until(
        "window.efirPlayer.fatal !== null || "
        f"document.getElementById('video').videoHeight === {levels[other][1]}"
    )
    _played_past(browser, at + 1)
    state = _player(browser)
    assert switched and state["fatal"] is None, state
    assert other in state["switchedLevels"] and other in state["loadedLevels"], state


@needs_chromium
@needs_hls_js
@pytest.mark.parametrize("live_stream", ["fmp4"], indirect=True)
def test_hls_js_plays_each_rendition_of_an_fmp4_channel_on_its_own(
    live_stream: LiveStream, browser: Browser, page_origin: str
) -> None:
    """Each fMP4 rendition, the passthrough source included, plays through MSE on its own."""
    for rendition, size in (("160p", (284, 160)), ("source", (640, 360))):
        url = live_stream.master_url.replace("master.m3u8", f"{rendition}/index.m3u8")
        browser.navigate(f"{page_origin}/hlsjs.html?{httpx.QueryParams(src=url)}")
        assert browser.wait_until("window.efirPlayer !== undefined"), "the player page did not load"
        _played_past(browser, 2)
        shown = browser.evaluate(
            "(() => { const v = document.getElementById('video'); return [v.videoWidth, v.videoHeight]; })()"
        )
        assert tuple(shown) == size, (rendition, shown)


@needs_ffplay
def test_ffplay_plays_the_live_master_playlist(live_stream: LiveStream) -> None:
    argv = [FFPLAY, "-hide_banner", "-loglevel", "info", "-autoexit", "-t", str(PLAY_SECONDS)]
    argv += ["-vf", "showinfo", live_stream.master_url]
    # SDL's dummy drivers: frames are decoded and "shown" without a display or a sound card. (-nodisp
    # would not do: it turns video decoding off.)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    played = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert played.returncode == 0, played.stderr[-3000:]
    frames = SHOWINFO_FRAME.findall(played.stderr)
    sizes = {(int(w), int(h)) for w, h in frames}
    assert len(frames) >= PLAY_SECONDS * 10, played.stderr[-3000:]
    assert sizes and sizes <= set(live_stream.variants), sizes


@needs_vlc
@pytest.mark.parametrize("live_stream", ["fmp4"], indirect=True)
def test_vlc_plays_the_live_master_playlist(live_stream: LiveStream) -> None:
    # VLC refuses to run as root; a root test run plays it as `nobody`, in a folder that user may write.
    work = Path(tempfile.mkdtemp(prefix="efir-vlc-"))
    try:
        work.chmod(0o777)
        frames_file = work / "frames.y4m"
        argv = [CVLC, "--intf", "dummy", "--aout", "dummy", "--play-and-exit"]
        argv += ["--run-time", str(PLAY_SECONDS), "--no-video-title-show"]
        # The `yuv` video output writes every picture VLC decodes and displays to a file.
        argv += ["--vout", "yuv", "--yuv-file", str(frames_file), "--yuv-yuv4mpeg2"]
        argv += [live_stream.master_url]
        if os.geteuid() == 0:
            argv = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
        env = {**os.environ, "HOME": str(work)}
        played = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert played.returncode == 0, played.stderr[-3000:]
        assert frames_file.exists(), played.stderr[-3000:]
        entries = "stream=width,height,nb_read_frames"
        probe = subprocess.run(
            [
                FFPROBE,
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                entries,
                "-of",
                "json",
                str(frames_file),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr
        stream = json.loads(probe.stdout)["streams"][0]
        assert (stream["width"], stream["height"]) in live_stream.variants, stream
        assert int(stream["nb_read_frames"]) >= PLAY_SECONDS * 10, (stream, played.stderr[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
