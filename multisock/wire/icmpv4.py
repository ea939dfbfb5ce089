"""ICMPv4 (RFC 792): echo, destination unreachable, time exceeded, parameter problem.

Every ICMPv4 message is the same 8 bytes (type, code, checksum, 4 type-specific
bytes kept as ``rest``) followed by a body, so one class serves them all and
properties read ``rest`` the way each type defines it. The checksum has no
pseudo header, so ``build_*`` always compute it.
"""

from __future__ import annotations

import struct

from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12
ERROR_TYPES = frozenset((DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM))

# Destination unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
NET_UNREACH = 0
HOST_UNREACH = 1
PROTO_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4
SOURCE_ROUTE_FAILED = 5
NET_UNKNOWN = 6
HOST_UNKNOWN = 7
NET_PROHIBITED = 9
HOST_PROHIBITED = 10
ADMIN_PROHIBITED = 13
# Time exceeded codes.
TTL_EXCEEDED = 0
REASSEMBLY_TIMEOUT = 1

HEADER_LEN = 8
CHECKSUM_OFFSET = 2
IP_HEADER_LEN = 20
# RFC 1812 §4.3.2.3: the whole error datagram (IP header included) fits in 576 bytes.
MAX_ERROR_DATAGRAM = 576
MAX_QUOTE = MAX_ERROR_DATAGRAM - IP_HEADER_LEN - HEADER_LEN
MIN_QUOTE_PAYLOAD = 8  # RFC 792: the original header plus its first 64 bits of data

_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")
_LAYER = "icmpv4"


class ICMPv4Message:
    """A parsed ICMPv4 message; ``rest`` is the 32-bit word after the checksum."""

    __slots__ = ("type", "code", "checksum", "rest", "body")

    def __init__(self, type: int, code: int, checksum: int, rest: int, body: memoryview) -> None:
        self.type = type
        self.code = code
        self.checksum = checksum
        self.rest = rest
        self.body = body

    @property
    def ident(self) -> int:
        """Echo identifier (high half of ``rest``)."""
        return self.rest >> 16

    @property
    def seq(self) -> int:
        """Echo sequence number (low half of ``rest``)."""
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        """Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4), 0 if unset."""
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        """Octet offset of the problem in the quoted header (parameter problem, RFC 792)."""
        return self.rest >> 24

    @property
    def is_error(self) -> bool:
        """True for messages that quote an offending datagram in their body."""
        return self.type in ERROR_TYPES

    def __repr__(self) -> str:
        return f"ICMPv4Message(type={self.type}, code={self.code}, rest={self.rest:#x})"


def parse(buf: Buffer, verify_checksum: bool = True) -> ICMPv4Message:
    """The message; ``body`` is a view of everything after the 8-byte header."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if verify_checksum and internet_checksum(view) != 0:
        raise MalformedPacket(_LAYER, "bad checksum")
    type_, code, csum, rest = _HEADER.unpack_from(view)
    return ICMPv4Message(type_, code, csum, rest, view[HEADER_LEN:])


def _with_checksum(first: bytes, body: Buffer) -> bytes:
    message = first + body
    return message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:]


def build_echo(type: int, ident: int, seq: int, data: Buffer) -> bytes:
    """An echo request (8) or reply (0) carrying ``data``."""
    return _with_checksum(_ECHO.pack(type, 0, 0, ident, seq), data)


def build_error(type: int, code: int, original: Buffer, rest: int = 0) -> bytes:
    """An error message quoting ``original`` (the offending IP datagram).

    RFC 792 asks for the IP header and the first 8 bytes of its payload; RFC 1812
    §4.3.2.3 allows as much as keeps the error datagram within 576 bytes, which
    gives the receiver more of the transport header to match a socket with (and
    is what Linux sends). Bytes past the original's total length (link padding)
    are not quoted. ``rest`` is the type-specific word, e.g. the MTU for
    FRAG_NEEDED or ``pointer << 24`` for PARAM_PROBLEM.
    """
    end = len(original)
    if end >= 4:
        total = (original[2] << 8) | original[3]
        if IP_HEADER_LEN <= total < end:
            end = total
    quoted = original[: min(end, MAX_QUOTE)]
    return _with_checksum(_HEADER.pack(type, code, 0, rest), quoted)
