"""A live channel's thumbnail: a JPEG of its video every N media seconds, for players and dashboards.

Made from the source's own keyframes with a decoder of its own, so it costs one keyframe decode per
interval whatever the pipeline (a remux decodes nothing else; a ladder's shared decoder is not touched).
Written to `<out_dir>/thumbnail.jpg` through a temporary file and a rename: a reader never sees half
a JPEG. Frames taller than MAX_HEIGHT are scaled down to it (aspect kept); smaller ones keep the
source size.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import av
from av.codec.context import CodecContext

log = logging.getLogger(__name__)

THUMBNAIL_NAME = "thumbnail.jpg"
MAX_HEIGHT = 720
JPEG_QUALITY = 80


class Thumbnailer:
    def __init__(self, out_dir: Path, every_seconds: float, stream: Any) -> None:
        self.path = out_dir / THUMBNAIL_NAME
        self.every = every_seconds
        ctx = stream.codec_context
        self.decoder: Any = CodecContext.create(ctx.name, "r")
        if ctx.extradata:
            self.decoder.extradata = ctx.extradata
        self.decoder.thread_count = 1
        self.last: float | None = None
        self.written = 0

    def packet(self, packet: Any) -> None:
        """Look at one source video packet (before any bitstream filter); maybe refresh the JPEG."""
        if not packet.is_keyframe or packet.pts is None or packet.time_base is None:
            return
        now = float(packet.pts * packet.time_base)
        if self.last is not None and now - self.last < self.every:
            return
        try:
            frames = list(self.decoder.decode(packet))
            if not frames:  # a decoder with a reorder delay holds the picture: drain it, start over
                frames = list(self.decoder.decode(None))
                self.decoder.flush_buffers()
        except (av.FFmpegError, ValueError) as exc:
            log.warning("thumbnail: could not decode a keyframe: %s", exc)
            return
        if not frames:
            return
        self.last = now
        try:
            self.write(frames[-1])
        except OSError as exc:
            log.warning("thumbnail: could not write %s: %s", self.path, exc)

    def write(self, frame: Any) -> None:
        if frame.height > MAX_HEIGHT:
            width = max(2, round(frame.width * MAX_HEIGHT / frame.height / 2) * 2)
            frame = frame.reformat(width=width, height=MAX_HEIGHT)
        buffer = io.BytesIO()
        frame.to_image().save(buffer, format="JPEG", quality=JPEG_QUALITY)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, self.path)
        self.written += 1
