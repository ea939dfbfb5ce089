"""ICMPv4 (RFC 792): echo, destination unreachable, time exceeded, parameter problem."""

from __future__ import annotations

import struct

from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

ECHO_REPLY = 0
DEST_UNREACH = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12

NET_UNREACH = 0
HOST_UNREACH = 1
PROTO_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4
ADMIN_PROHIBITED = 13

HEADER_LEN = 8
MAX_ERROR_LEN = 576 - 20  # RFC 1812 §4.3.2.3: the error packet fits in 576 bytes
_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")


class ICMPv4Message:
    __slots__ = ("type", "code", "checksum", "rest", "body")

    def __init__(self, type: int, code: int, checksum: int, rest: int, body: memoryview) -> None:
        self.type = type
        self.code = code
        self.checksum = checksum
        self.rest = rest
        self.body = body

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        return self.rest >> 24

    def __repr__(self) -> str:
        return f"ICMPv4Message(type={self.type}, code={self.code}, rest={self.rest:#x})"


def parse(buf: bytes | bytearray | memoryview, verify_checksum: bool = True) -> ICMPv4Message:
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("icmpv4", "shorter than a header")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if verify_checksum and internet_checksum(view) != 0:
        raise MalformedPacket("icmpv4", "bad checksum")
    type_, code, csum, rest = _HEADER.unpack_from(view)
    return ICMPv4Message(type_, code, csum, rest, view[HEADER_LEN:])


def _with_checksum(message: bytes) -> bytes:
    value = internet_checksum(message)
    return message[:2] + value.to_bytes(2, "big") + message[4:]


def build_echo(type: int, ident: int, seq: int, data: bytes) -> bytes:
    return _with_checksum(_ECHO.pack(type, 0, 0, ident, seq) + data)


def build_error(type: int, code: int, original: bytes | memoryview, rest: int = 0) -> bytes:
    """Quote the original IP header and as much of its payload as fits in 576 bytes."""
    quoted = bytes(original[: MAX_ERROR_LEN - HEADER_LEN])
    return _with_checksum(_HEADER.pack(type, code, 0, rest) + quoted)
