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


def avc_sps_of_header(payload: bytes) -> tuple[bytes | None, int]:
    """The first SPS of an AVC sequence header (an avcC record after the 5-byte FLV video header) and
    the NAL length size it declares; (None, 4) for anything else."""
    record = payload[5:]
    if len(payload) < 2 or payload[0] & 0x0F != 7 or len(record) < 8 or record[0] != 1:
        return None, 4
    length_size = (record[4] & 0x03) + 1
    if record[5] & 0x1F == 0:
        return None, length_size
    size = int.from_bytes(record[6:8], "big")
    sps = record[8 : 8 + size]
    return (sps if len(sps) == size else None), length_size


def avc_inband_sps(payload: bytes, length_size: int) -> bytes | None:
    """The SPS a publisher repeats inside an AVC keyframe (MPEG-TS sources copied to RTMP do), if any."""
    if len(payload) < 5 or payload[0] & 0x0F != 7 or payload[1] != 1:
        return None
    data, pos = memoryview(payload)[5:], 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > len(data):
            return None
        if data[pos] & 0x1F == 7:
            return bytes(data[pos : pos + size])
        pos += size
    return None


def is_audio_sequence_header(payload: bytes) -> bool:
    return len(payload) >= 2 and payload[0] >> 4 == 10 and payload[1] == 0  # AAC, AACPacketType 0


class FlvFramer:
    """Turns one publisher's messages into FLV bytes, remembering what a fresh reader needs first."""

    def __init__(self) -> None:
        self.metadata: bytes | None = None
        self.video_header: bytes | None = None
        self.audio_header: bytes | None = None
        self.waiting_for_keyframe = True
        # A new video configuration mid-stream: OBS sends a new sequence header after a canvas or
        # encoder change; a copied MPEG-TS source carries a different SPS inside its keyframes. Either
        # goes through as it came (the worker's demuxer hands it to its decoder or remuxer, and the
        # source rendition switches at that keyframe); the count lets the node log it.
        self.video_changes = 0
        self._sps: bytes | None = None
        self._nal_length_size = 4

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
                sps, self._nal_length_size = avc_sps_of_header(payload)
                if self.video_header is not None and payload != self.video_header:
                    self.video_changes += 1
                elif sps is not None and self._sps is not None and sps != self._sps:
                    self.video_changes += 1  # a repeated header after an in-band change
                self._sps = sps or self._sps
                self.video_header = payload
                return tag(kind, timestamp, payload)
            if is_keyframe(payload):
                sps = avc_inband_sps(payload, self._nal_length_size)
                if sps is not None:
                    if self._sps is not None and sps != self._sps:
                        self.video_changes += 1
                    self._sps = sps
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
