"""ICMPv6 (RFC 4443) and neighbour discovery messages (RFC 4861).

Checksums cover an IPv6 pseudo header: ``build_*`` compute them when given the
source and destination, otherwise leave zero for the IP layer to fill.
"""

from __future__ import annotations

import struct

from multisock.wire.checksum import transport_checksum, verify_transport_checksum
from multisock.wire.errors import MalformedPacket

DEST_UNREACH = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAM_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136

PROTO = 58
HEADER_LEN = 8
CHECKSUM_OFFSET = 2
MIN_MTU = 1280
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")


class ICMPv6Message:
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
        return self.rest

    @property
    def pointer(self) -> int:
        return self.rest

    def __repr__(self) -> str:
        return f"ICMPv6Message(type={self.type}, code={self.code}, rest={self.rest:#x})"


class NeighborMessage:
    __slots__ = ("target", "router", "solicited", "override", "lladdr")

    def __init__(self, target: bytes, router: bool, solicited: bool, override: bool,
                 lladdr: bytes | None) -> None:
        self.target = target
        self.router = router
        self.solicited = solicited
        self.override = override
        self.lladdr = lladdr


def parse(
    buf: bytes | bytearray | memoryview, src: bytes | None = None, dst: bytes | None = None
) -> ICMPv6Message:
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("icmpv6", "shorter than a header")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if src is not None and dst is not None and not verify_transport_checksum(src, dst, PROTO, view):
        raise MalformedPacket("icmpv6", "bad checksum")
    type_, code, csum, rest = _HEADER.unpack_from(view)
    return ICMPv6Message(type_, code, csum, rest, view[HEADER_LEN:])


def _finish(message: bytes, src: bytes | None, dst: bytes | None) -> bytes:
    if src is None or dst is None:
        return message
    value = transport_checksum(src, dst, PROTO, message)
    return message[:2] + value.to_bytes(2, "big") + message[4:]


def build_echo(type: int, ident: int, seq: int, data: bytes, src: bytes | None = None,
               dst: bytes | None = None) -> bytes:
    return _finish(_ECHO.pack(type, 0, 0, ident, seq) + data, src, dst)


def build_error(type: int, code: int, original: bytes | memoryview, rest: int = 0,
                src: bytes | None = None, dst: bytes | None = None) -> bytes:
    """Quote as much of the offending packet as fits the 1280-byte minimum MTU."""
    quoted = bytes(original[: MIN_MTU - 40 - HEADER_LEN])
    return _finish(_HEADER.pack(type, code, 0, rest) + quoted, src, dst)


def _lladdr_option(kind: int, lladdr: bytes) -> bytes:
    raw = bytes([kind, 0]) + lladdr
    raw += b"\0" * (-len(raw) % 8)
    return bytes([kind, len(raw) // 8]) + raw[2:]


def build_neighbor_solicit(target: bytes, src_lladdr: bytes | None = None,
                           src: bytes | None = None, dst: bytes | None = None) -> bytes:
    body = _HEADER.pack(NEIGHBOR_SOLICIT, 0, 0, 0) + target
    if src_lladdr is not None:
        body += _lladdr_option(OPT_SOURCE_LLADDR, src_lladdr)
    return _finish(body, src, dst)


def build_neighbor_advert(target: bytes, router: bool, solicited: bool, override: bool,
                          tgt_lladdr: bytes | None = None, src: bytes | None = None,
                          dst: bytes | None = None) -> bytes:
    flags = (0x80000000 if router else 0) | (0x40000000 if solicited else 0) | (
        0x20000000 if override else 0)
    body = _HEADER.pack(NEIGHBOR_ADVERT, 0, 0, flags) + target
    if tgt_lladdr is not None:
        body += _lladdr_option(OPT_TARGET_LLADDR, tgt_lladdr)
    return _finish(body, src, dst)


def parse_neighbor(msg: ICMPv6Message) -> NeighborMessage:
    if msg.type not in (NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
        raise MalformedPacket("icmpv6", "not a neighbour message")
    if msg.code != 0 or len(msg.body) < 16:
        raise MalformedPacket("icmpv6", "short neighbour message")
    target = bytes(msg.body[:16])
    lladdr = None
    options = msg.body[16:]
    i = 0
    while i < len(options):
        if i + 2 > len(options):
            raise MalformedPacket("icmpv6", "truncated option")
        kind, units = options[i], options[i + 1]
        if units == 0 or i + units * 8 > len(options):
            raise MalformedPacket("icmpv6", "bad option length")
        if kind in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR):
            lladdr = bytes(options[i + 2 : i + units * 8]).rstrip(b"\0") or bytes(6)
            lladdr = bytes(options[i + 2 : i + 8]) if units == 1 else lladdr
        i += units * 8
    rest = msg.rest
    return NeighborMessage(target, bool(rest & 0x80000000), bool(rest & 0x40000000),
                           bool(rest & 0x20000000), lladdr)
