"""Heartbeat packets on a byte stream (a serial line): framing and resynchronisation. Pure.

A UDP datagram arrives whole or not at all; a serial line delivers bytes, and a peer that
reboots mid-frame, line noise or a cable plugged in mid-stream give torn frames and
garbage. Each packet (nodeagent/heartbeat/packet.py, already authenticated) travels as

    offset  size  field
    0       2     sync: 0x7E 0xA5
    2       2     L = payload length, big-endian (MIN_PAYLOAD..MAX_PACKET)
    4       L     payload: one heartbeat packet, which starts with b"VGHB"
    4+L     4     CRC-32 (zlib) of the length and payload bytes, big-endian

The decoder looks for the sync bytes, checks the length, that the payload starts with the
packet magic and repeats the length (the packet's own `total` field, bytes 6..7), then
the CRC. The early checks matter: a sync pattern in garbage followed by a plausible
length would otherwise hold every good frame behind it until that many bytes arrived,
long enough (a heartbeat line carries a few hundred bytes a second) to cost the serving
lease; with them a false start is given up after 12 bytes. On any failure it drops one
byte and looks for the next sync: a torn frame costs that frame and at most the one
after it. The CRC only finds line errors: authenticity and replays are the packet's
business (HMAC, incarnation, per-link sequence in membership.py), so a replayed frame
passes here and is refused there.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, fields

from nodeagent.heartbeat.packet import MAGIC, MAX_PACKET, MIN_PACKET

PAYLOAD_LENGTH_AT = 6  # the packet header's total length field (packet.py)

SYNC = b"\x7e\xa5"
_LEN = struct.Struct(">H")
_CRC = struct.Struct(">I")
HEADER = len(SYNC) + _LEN.size
TRAILER = _CRC.size
MIN_PAYLOAD = MIN_PACKET
MAX_PAYLOAD = MAX_PACKET
MAX_FRAME = HEADER + MAX_PAYLOAD + TRAILER


class FramingError(ValueError):
    pass


def encode_frame(payload: bytes) -> bytes:
    """One frame around `payload` (a whole heartbeat packet)."""
    if not MIN_PAYLOAD <= len(payload) <= MAX_PAYLOAD:
        raise FramingError(
            f"a frame carries {MIN_PAYLOAD}..{MAX_PAYLOAD} bytes; this payload has {len(payload)}"
        )
    length = _LEN.pack(len(payload))
    return SYNC + length + payload + _CRC.pack(zlib.crc32(length + payload))


@dataclass
class FrameStats:
    """What the decoder did with the bytes it was fed (all totals since it was made)."""

    frames: int = 0
    """Whole frames with a good CRC, handed on."""
    dropped_bytes: int = 0
    """Bytes that were not part of a good frame: garbage, torn frames, bad frames."""
    bad_frames: int = 0
    """Candidates that began with the sync bytes but were refused (length, magic, CRC)."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class FrameDecoder:
    """Feed it bytes as they arrive; it returns the payloads of the whole good frames."""

    def __init__(self, magic: bytes = MAGIC) -> None:
        self.magic = magic
        self.stats = FrameStats()
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held: the start of a frame not yet whole."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (the line was reopened): its bytes count as dropped."""
        self.stats.dropped_bytes += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._next(out):
            pass
        return out

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self.stats.dropped_bytes += count

    def _reject(self) -> bool:
        # Skip this sync's first byte only: the real frame may start inside the bad one.
        self.stats.bad_frames += 1
        self._drop(1)
        return True

    def _next(self, out: list[bytes]) -> bool:
        """Consume what can be decided now; True if there may be more to decide."""
        buf = self._buf
        at = buf.find(SYNC)
        if at < 0:
            # Keep a last byte that may be the first half of a sync split across reads.
            keep = 1 if buf[-1:] == SYNC[:1] else 0
            if len(buf) > keep:
                self._drop(len(buf) - keep)
            return False
        if at:
            self._drop(at)
        if len(buf) < HEADER:
            return False
        (length,) = _LEN.unpack_from(buf, len(SYNC))
        if not MIN_PAYLOAD <= length <= MAX_PAYLOAD:
            return self._reject()
        seen = min(len(self.magic), len(buf) - HEADER)
        if buf[HEADER : HEADER + seen] != self.magic[:seen]:
            return self._reject()
        at = HEADER + PAYLOAD_LENGTH_AT
        if len(buf) >= at + _LEN.size and _LEN.unpack_from(buf, at)[0] != length:
            return self._reject()
        end = HEADER + length + TRAILER
        if len(buf) < end:
            return False
        (crc,) = _CRC.unpack_from(buf, HEADER + length)
        if zlib.crc32(buf[len(SYNC) : HEADER + length]) != crc:
            return self._reject()
        out.append(bytes(buf[HEADER : HEADER + length]))
        del buf[:end]
        self.stats.frames += 1
        return True


__all__ = [
    "MAX_FRAME",
    "SYNC",
    "FrameDecoder",
    "FrameStats",
    "FramingError",
    "encode_frame",
]
