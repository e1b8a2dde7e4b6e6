"""FLV framing of RTMP messages: the byte stream a worker reads on stdin (what ffmpeg's `-f flv` reads).

RTMP audio, video and data messages carry exactly the bodies of FLV tags, so a tag is an 11-byte
header, the message payload and the previous-tag-size trailer. The sequence headers (AVC/HEVC decoder
configuration, AAC AudioSpecificConfig) and the metadata are remembered per stream, so a restarted
worker can be given a stream that starts cleanly: header, metadata, sequence headers, then media from
the next video keyframe on.
"""

from __future__ import annotations

import struct

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
FLV_HEADER = b"FLV\x01\x05" + struct.pack(">I", 9) + struct.pack(">I", 0)  # audio + video, header size 9
SET_DATA_FRAME = b"\x02\x00\x0d@setDataFrame"


def tag(kind: int, timestamp: int, payload: bytes) -> bytes:
    ts = timestamp & 0xFFFFFFFF
    head = bytes([kind]) + len(payload).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
    head += bytes([ts >> 24]) + b"\x00\x00\x00"
    return head + payload + struct.pack(">I", 11 + len(payload))


def script_payload(payload: bytes) -> bytes:
    """`@setDataFrame onMetaData {...}` as RTMP sends it becomes FLV's `onMetaData {...}`."""
    return payload[len(SET_DATA_FRAME) :] if payload.startswith(SET_DATA_FRAME) else payload


def is_video_sequence_header(payload: bytes) -> bool:
    if len(payload) < 2:
        return False
    if payload[0] & 0x80:  # enhanced RTMP (HEVC, AV1): packet type in the low nibble, 0 = SequenceStart
        return payload[0] & 0x0F == 0
    return payload[0] & 0x0F in (7, 12) and payload[1] == 0  # AVC / legacy HEVC, AVCPacketType 0


def is_keyframe(payload: bytes) -> bool:
    return bool(payload) and (payload[0] >> 4) & 0x07 == 1


def is_audio_sequence_header(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[0] >> 4 == 10 and payload[1] == 0  # AAC, AACPacketType 0


class FlvFramer:
    """Turns one publisher's messages into FLV bytes, remembering what a fresh reader needs first."""

    def __init__(self) -> None:
        self.metadata: bytes | None = None
        self.video_header: bytes | None = None
        self.audio_header: bytes | None = None
        self.waiting_for_keyframe = True

    def restart(self) -> bytes:
        """The preamble for a new reader; media resumes at the next keyframe (when there is video)."""
        self.waiting_for_keyframe = True
        out = FLV_HEADER
        if self.metadata is not None:
            out += tag(TAG_SCRIPT, 0, self.metadata)
        if self.video_header is not None:
            out += tag(TAG_VIDEO, 0, self.video_header)
        if self.audio_header is not None:
            out += tag(TAG_AUDIO, 0, self.audio_header)
        return out

    def frame(self, kind: int, timestamp: int, payload: bytes) -> bytes:
        """FLV bytes for one message (empty while waiting for a keyframe)."""
        if kind == TAG_SCRIPT:
            self.metadata = script_payload(payload)
            return tag(TAG_SCRIPT, timestamp, self.metadata)
        if kind == TAG_VIDEO:
            if is_video_sequence_header(payload):
                self.video_header = payload
                return tag(kind, timestamp, payload)
            if self.waiting_for_keyframe:
                if not is_keyframe(payload):
                    return b""
                self.waiting_for_keyframe = False
            return tag(kind, timestamp, payload)
        if kind == TAG_AUDIO:
            if is_audio_sequence_header(payload):
                self.audio_header = payload
                return tag(kind, timestamp, payload)
            if self.waiting_for_keyframe and self.video_header is not None:
                return b""
            return tag(kind, timestamp, payload)
        return b""
