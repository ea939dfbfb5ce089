"""Internet checksum (RFC 1071), fast in pure Python.

The ones'-complement sum of 16-bit words equals the big-endian integer of the
buffer reduced modulo 0xFFFF (with 0 standing for 0xFFFF when the buffer is not
all zeros), because 0x10000 ≡ 1 (mod 0xFFFF). ``int.from_bytes`` plus one
modulo runs in C over the whole buffer: a 64 KiB segment costs tens of
microseconds instead of the milliseconds a per-word loop would.
"""

from __future__ import annotations

import struct

_PSEUDO4 = struct.Struct("!4s4sxBH")
_PSEUDO6_TAIL = struct.Struct("!IxxxB")


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """Folded 16-bit ones'-complement sum (not complemented) of ``data``."""
    if len(data) % 2:
        value = int.from_bytes(bytes(data) + b"\0", "big")
    else:
        value = int.from_bytes(data, "big")
    if value == 0:
        return 0
    folded = value % 0xFFFF
    return folded if folded else 0xFFFF


def _fold(value: int) -> int:
    while value > 0xFFFF:
        value = (value & 0xFFFF) + (value >> 16)
    return value


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The checksum to put in a header: the complement of the ones'-complement sum."""
    return ~_fold(ones_sum(data) + _fold(initial)) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Unfolded-safe sum of the IPv4 (RFC 793) or IPv6 (RFC 8200 §8.1) pseudo header."""
    if len(src) == 4:
        return ones_sum(_PSEUDO4.pack(src, dst, proto, length))
    return ones_sum(src + dst + _PSEUDO6_TAIL.pack(length, proto))


def transport_checksum(
    src: bytes, dst: bytes, proto: int, segment: bytes | bytearray | memoryview
) -> int:
    """Checksum of a TCP/UDP/ICMPv6 message whose checksum field is zero."""
    return internet_checksum(segment, pseudo_header_sum(src, dst, proto, len(segment)))


def verify_transport_checksum(
    src: bytes, dst: bytes, proto: int, segment: bytes | bytearray | memoryview
) -> bool:
    """True when the message (checksum field included) sums to 0xFFFF with its pseudo header."""
    total = _fold(ones_sum(segment) + pseudo_header_sum(src, dst, proto, len(segment)))
    return total == 0xFFFF
