"""Parse JackTrip's UDP ``DefaultHeader`` (16 bytes, host byte order = little-endian on x86).

From ``src/PacketHeader.h`` (identical in Debian's 1.7.0 and upstream v2.7.2)::

    struct DefaultHeaderStruct {
        uint64_t TimeStamp;                  // usec since epoch (gettimeofday)
        uint16_t SeqNumber;                  // +1 per JACK period, wraps at 65536
        uint16_t BufferSize;                 // samples per channel (= JACK period)
        uint8_t  SamplingRate;               // enum samplingRateT (3 = 48 kHz)
        uint8_t  BitResolution;              // 8, 16, 24 or 32
        uint8_t  NumIncomingChannelsFromNet;
        uint8_t  NumOutgoingChannelsToNet;   // 0 = same as incoming
    };

The payload follows: ``BufferSize`` samples per channel, channel after channel
(non-interleaved), ``BitResolution/8`` bytes each. With ``-r N`` (redundancy) a datagram
holds N full packets, newest first. Control datagrams (exit) are short runs of ``0xff``;
2.x hub mode adds a TCP handshake (not used here: we run P2P).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["HEADER_SIZE_BYTES", "JackTripHeader", "parse_header", "payload_is_silent"]

HEADER_SIZE_BYTES = 16
_FMT = struct.Struct("<QHHBBBB")


@dataclass(frozen=True)
class JackTripHeader:
    """One parsed ``DefaultHeader``."""

    timestamp_us: int
    seq: int
    buffer_size_samples: int
    sampling_rate_code: int
    bit_resolution: int
    channels_in: int
    channels_out: int

    def packet_size_bytes(self) -> int:
        """Size of header + one packet's audio (for redundancy = 1)."""
        chans = self.channels_in if self.channels_out in (0, 255) else max(self.channels_in, 1)
        return HEADER_SIZE_BYTES + self.buffer_size_samples * chans * max(self.bit_resolution // 8, 1)


def parse_header(datagram: bytes) -> JackTripHeader | None:
    """The header of an audio datagram, or ``None`` for control/short/implausible datagrams."""
    if len(datagram) < HEADER_SIZE_BYTES:
        return None
    fields = _FMT.unpack_from(datagram, 0)
    hdr = JackTripHeader(*fields)
    if hdr.bit_resolution not in (8, 16, 24, 32) or hdr.buffer_size_samples == 0:
        return None  # e.g. an all-0xff exit packet
    return hdr


def payload_is_silent(datagram: bytes) -> bool:
    """True if every audio byte after the header is zero (JackTrip sends exact zeros for silence)."""
    return datagram.count(0, HEADER_SIZE_BYTES) == len(datagram) - HEADER_SIZE_BYTES
