"""Address helpers: the stack works on packed ``bytes`` addresses.

Packed bytes are what the wire carries and what dictionaries hash fastest, so the
stack never holds ``ipaddress`` objects on the hot path. Text conversion uses the
C module ``_socket`` directly: those functions are pure and stay the kernel-free
originals even while :mod:`socket` is monkey-patched.
"""

from __future__ import annotations

import _socket
from typing import Final

AF_INET: Final = _socket.AF_INET
AF_INET6: Final = _socket.AF_INET6

ANY4: Final = bytes(4)
ANY6: Final = bytes(16)
LOOPBACK4: Final = bytes([127, 0, 0, 1])
LOOPBACK6: Final = bytes(15) + b"\x01"
V4MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"


def family_of(addr: bytes) -> int:
    """The address family of a packed address, by its length."""
    return AF_INET if len(addr) == 4 else AF_INET6


def pack(text: str) -> bytes:
    """Text to packed bytes (either family); ``OSError`` for anything else."""
    if ":" in text:
        return _socket.inet_pton(AF_INET6, text.split("%", 1)[0])
    return _socket.inet_pton(AF_INET, text)


def unpack(addr: bytes) -> str:
    """Packed bytes to canonical text."""
    return _socket.inet_ntop(AF_INET if len(addr) == 4 else AF_INET6, addr)


def is_wildcard(addr: bytes) -> bool:
    return addr in (ANY4, ANY6)


def is_multicast(addr: bytes) -> bool:
    if len(addr) == 4:
        return 224 <= addr[0] <= 239
    return addr[0] == 0xFF


def is_v4_broadcast(addr: bytes) -> bool:
    return addr == b"\xff\xff\xff\xff"


def is_v4mapped(addr: bytes) -> bool:
    return len(addr) == 16 and addr[:12] == V4MAPPED_PREFIX


def to_v4mapped(addr: bytes) -> bytes:
    return V4MAPPED_PREFIX + addr


def is_loopback(addr: bytes) -> bool:
    if len(addr) == 4:
        return addr[0] == 127
    return addr == LOOPBACK6


def parse_cidr(text: str) -> tuple[bytes, int]:
    """``"10.0.0.1/24"`` -> (packed address, prefix length); a bare address is a host route."""
    if "/" in text:
        addr_text, _, length_text = text.partition("/")
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError(f"bad prefix length in {text!r}") from None
    else:
        addr_text, length = text, -1
    try:
        addr = pack(addr_text)
    except OSError:
        raise ValueError(f"not an IP address: {addr_text!r}") from None
    bits = len(addr) * 8
    if length == -1:
        length = bits
    if not 0 <= length <= bits:
        raise ValueError(f"prefix length out of range in {text!r}")
    return addr, length


def mask_int(value: int, length: int, bits: int) -> int:
    """Keep the top ``length`` bits of a ``bits``-wide integer."""
    if length == 0:
        return 0
    return value >> (bits - length) << (bits - length)


def same_prefix(a: bytes, b: bytes, length: int) -> bool:
    if len(a) != len(b):
        return False
    bits = len(a) * 8
    return mask_int(int.from_bytes(a, "big"), length, bits) == mask_int(
        int.from_bytes(b, "big"), length, bits
    )
