"""H.264 parameter sets of a passthrough source: when a publisher starts sending new ones mid-stream.

An fMP4 rendition's init segment (`avcC` in its `moov`) carries the SPS and PPS its segments are
decoded with, and its `tkhd`/`avc1` the picture size. A publisher that changes resolution mid-stream
sends new parameter sets, either as a new FLV sequence header (OBS after a canvas change; the demuxer
hands it over as `new_extradata` side data on the next packet) or only inside its keyframes (an MPEG-TS
source copied to RTMP). The passthrough rendition must then start a new init segment, so this module
finds the new parameter sets and rebuilds the extradata in the form the source already uses (`avcC`
for FLV, Annex B for MPEG-TS, which the MP4 muxer converts itself).
"""

from __future__ import annotations

from typing import Any

from ingest_node.media.codec_strings import BitReader, annexb_nals, unescape_rbsp

SPS, PPS = 7, 8
HIGH_PROFILES = {100, 110, 122, 144}  # avcC carries chroma format and bit depths for these


def new_extradata_side_data(packet: Any) -> bytes | None:
    """The extradata a demuxer attached to `packet` (a new FLV sequence header), if any."""
    try:
        if packet.has_sidedata("new_extradata"):
            return bytes(packet.get_sidedata("new_extradata")) or None
    except (AttributeError, ValueError, TypeError):  # a PyAV without packet side data
        return None
    return None


def _length_prefixed(data: bytes, size: int) -> list[bytes]:
    nals, pos = [], 0
    while pos + size <= len(data):
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        if length == 0 or pos + length > len(data):
            break
        nals.append(data[pos : pos + length])
        pos += length
    return nals


def _is_avcc(extradata: bytes) -> bool:
    return len(extradata) >= 7 and extradata[0] == 1


def parameter_sets(extradata: bytes) -> tuple[list[bytes], list[bytes]]:
    """(SPS list, PPS list) of H.264 extradata, `avcC` or Annex B."""
    if _is_avcc(extradata):
        sps: list[bytes] = []
        pps: list[bytes] = []
        pos = 6
        try:
            for _ in range(extradata[5] & 0x1F):
                n = int.from_bytes(extradata[pos : pos + 2], "big")
                sps.append(extradata[pos + 2 : pos + 2 + n])
                pos += 2 + n
            count = extradata[pos]
            pos += 1
            for _ in range(count):
                n = int.from_bytes(extradata[pos : pos + 2], "big")
                pps.append(extradata[pos + 2 : pos + 2 + n])
                pos += 2 + n
        except IndexError:
            pass
        return sps, pps
    nals = list(annexb_nals(extradata))
    return [n for n in nals if n and n[0] & 0x1F == SPS], [n for n in nals if n and n[0] & 0x1F == PPS]


def _ue(bits: BitReader) -> int:
    zeros = 0
    while bits.read(1) == 0:
        zeros += 1
    return (1 << zeros) - 1 + bits.read(zeros)


def build_avcc(sps: list[bytes], pps: list[bytes], length_size: int = 4) -> bytes:
    """An `AVCDecoderConfigurationRecord` (ISO 14496-15) for these parameter sets."""
    first = sps[0]
    out = bytearray([1, first[1], first[2], first[3], 0xFC | (length_size - 1), 0xE0 | len(sps)])
    for nal in sps:
        out += len(nal).to_bytes(2, "big") + nal
    out.append(len(pps))
    for nal in pps:
        out += len(nal).to_bytes(2, "big") + nal
    if first[1] in HIGH_PROFILES:
        try:
            bits = BitReader(unescape_rbsp(first[4:]))
            _ue(bits)  # seq_parameter_set_id
            chroma = _ue(bits)
            if chroma == 3:
                bits.read(1)  # separate_colour_plane_flag
            luma, chroma_depth = _ue(bits), _ue(bits)
        except IndexError:
            chroma, luma, chroma_depth = 1, 0, 0
        out += bytes([0xFC | chroma, 0xF8 | luma, 0xF8 | chroma_depth, 0])  # no SPS extensions
    return bytes(out)


def in_band_extradata(keyframe: bytes, extradata: bytes) -> bytes | None:
    """New extradata, in `extradata`'s own form, when `keyframe` carries an SPS or PPS that `extradata`
    lacks; None when it carries none or the same ones."""
    avcc = _is_avcc(extradata)
    nals = _length_prefixed(keyframe, (extradata[4] & 3) + 1) if avcc else list(annexb_nals(keyframe))
    sps = [n for n in nals if n and n[0] & 0x1F == SPS and len(n) >= 4]
    pps = [n for n in nals if n and n[0] & 0x1F == PPS]
    if not sps or not pps:
        return None
    known_sps, known_pps = parameter_sets(extradata)
    if set(sps) <= set(known_sps) and set(pps) <= set(known_pps):
        return None
    if avcc:
        return build_avcc(sps, pps, (extradata[4] & 3) + 1)
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in (*sps, *pps))
