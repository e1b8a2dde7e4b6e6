"""RFC 6381 codec strings for the master playlist's CODECS attribute, read from the bitstream itself.

Players (Safari above all) refuse a variant whose CODECS promise more than the decoder can do, and
hls.js picks variants by them, so the strings must be the real profile and level of what was encoded,
not a guess: they are parsed from the H.264/H.265 SPS or the AV1 sequence header of the first keyframe.
"""

from __future__ import annotations

from collections.abc import Iterator


def annexb_nals(data: bytes) -> Iterator[bytes]:
    """NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01)."""
    i, n = 0, len(data)
    starts = []
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        yield data[s:end].rstrip(b"\x00") if k + 1 < len(starts) else data[s:end]


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def h264_codec_string(data: bytes) -> str | None:
    """`avc1.PPCCLL` from an Annex B packet holding an SPS, or from avcC extradata (FLV/MP4)."""
    if len(data) > 4 and data[0] == 1:  # avcC: version 1, then profile, compatibility, level
        return f"avc1.{data[1]:02x}{data[2]:02x}{data[3]:02x}"
    for nal in annexb_nals(data):
        if nal and nal[0] & 0x1F == 7 and len(nal) >= 4:
            return f"avc1.{nal[1]:02x}{nal[2]:02x}{nal[3]:02x}"
    return None


def _hevc_ptl_string(ptl: bytes) -> str:
    """`hvc1.<profile>.<compat>.<tier><level>.<constraints>` from the 12 bytes of general PTL."""
    space = (ptl[0] >> 6) & 3
    tier = "H" if ptl[0] & 0x20 else "L"
    profile = ptl[0] & 0x1F
    compat = int.from_bytes(ptl[1:5], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = list(ptl[5:11])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    level = ptl[11]
    prefix = "" if space == 0 else "ABC"[space - 1]
    parts = [f"hvc1.{prefix}{profile}", f"{reversed_compat:x}", f"{tier}{level}"]
    parts += [f"{c:02X}" for c in constraints] or ["B0"]
    return ".".join(parts)


def hevc_codec_string(data: bytes) -> str | None:
    """`hvc1...` from an Annex B packet holding an SPS, or from hvcC extradata."""
    if len(data) > 13 and data[0] == 1:  # hvcC: version, then the 12-byte general PTL
        return _hevc_ptl_string(data[1:13])
    for nal in annexb_nals(data):
        if len(nal) > 3 and (nal[0] >> 1) & 0x3F == 33:  # SPS
            raw = unescape_rbsp(nal)
            return _hevc_ptl_string(raw[3:15])  # 2-byte header, 1 byte vps id/sub layers
    return None


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    return value, pos + 8


def av1_codec_string(data: bytes) -> str | None:
    """`av01.P.LLT.DD` from the sequence header OBU of an AV1 keyframe (8-bit assumed when the header
    carries timing info we do not parse)."""
    pos = 0
    try:
        while pos < len(data):
            header = data[pos]
            obu_type = (header >> 3) & 0xF
            has_ext = header & 0x4
            has_size = header & 0x2
            pos += 2 if has_ext else 1
            size, pos = _leb128(data, pos) if has_size else (len(data) - pos, pos)
            if obu_type == 1:  # sequence header
                bits = BitReader(data[pos : pos + size])
                profile = bits.read(3)
                bits.read(1)  # still picture
                reduced = bits.read(1)
                if reduced:
                    level, tier = bits.read(5), 0
                else:
                    if bits.read(1):  # timing info present: not parsed
                        return f"av01.{profile}.08M.08"
                    bits.read(1)  # initial display delay present (0 with no timing info)
                    bits.read(5)  # operating points - 1
                    bits.read(12)  # idc of point 0
                    level = bits.read(5)
                    tier = bits.read(1) if level > 7 else 0
                return f"av01.{profile}.{level:02d}{'H' if tier else 'M'}.08"
            pos += size
    except IndexError:
        return None
    return None


def video_codec_string(codec: str, data: bytes) -> str | None:
    """Codec string of an H.264/H.265/AV1 packet or extradata; None when it holds no parameter set."""
    if codec == "h264":
        return h264_codec_string(data)
    if codec == "hevc":
        return hevc_codec_string(data)
    if codec == "av1":
        return av1_codec_string(data)
    return None


def aac_codec_string(profile: str | None) -> str:
    """`mp4a.40.<object type>`: LC is 2, HE-AAC 5, HE-AAC v2 29."""
    if profile and "HE-AACv2" in profile:
        return "mp4a.40.29"
    if profile and "HE" in profile:
        return "mp4a.40.5"
    return "mp4a.40.2"
