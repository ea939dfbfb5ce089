"""ICMPv6 (RFC 4443) and the neighbour discovery messages the stack needs (RFC 4861).

The checksum covers an IPv6 pseudo header, so it needs the addresses: ``build_*``
compute it when given ``src`` and ``dst`` and otherwise leave the field zero for
the IP layer to fill at ``CHECKSUM_OFFSET`` (it picks the source address late),
and ``parse`` verifies it only when given both addresses.
"""

from __future__ import annotations

import struct

from multisock.wire.checksum import transport_checksum, verify_transport_checksum
from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

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

# Destination unreachable codes (RFC 4443 §3.1).
NO_ROUTE = 0
ADMIN_PROHIBITED = 1
BEYOND_SCOPE = 2
ADDR_UNREACH = 3
PORT_UNREACH = 4
# Time exceeded codes (§3.3).
HOP_LIMIT_EXCEEDED = 0
REASSEMBLY_TIMEOUT = 1
# Parameter problem codes (§3.4).
BAD_HEADER_FIELD = 0
UNKNOWN_NEXT_HEADER = 1
UNKNOWN_OPTION = 2

PROTO = 58
HEADER_LEN = 8
CHECKSUM_OFFSET = 2
MIN_MTU = 1280
IPV6_HEADER_LEN = 40
MAX_QUOTE = MIN_MTU - IPV6_HEADER_LEN - HEADER_LEN
NEIGHBOR_MIN_LEN = 24  # RFC 4861 §7.1.1: header, reserved/flags word and target

OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2

FLAG_ROUTER = 0x80000000
FLAG_SOLICITED = 0x40000000
FLAG_OVERRIDE = 0x20000000

_HEADER = struct.Struct("!BBHI")
_ECHO = struct.Struct("!BBHHH")
_LAYER = "icmpv6"


class ICMPv6Message:
    """A parsed ICMPv6 message; ``rest`` is the 32-bit word after the checksum."""

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
        """MTU of the next hop in a packet-too-big message (all 32 bits of ``rest``)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """Octet offset of the problem in the quoted packet (parameter problem)."""
        return self.rest

    @property
    def is_error(self) -> bool:
        """Error messages have types 0..127 (RFC 4443 §2.1) and quote a packet."""
        return self.type < 128

    def __repr__(self) -> str:
        return f"ICMPv6Message(type={self.type}, code={self.code}, rest={self.rest:#x})"


class NeighborMessage:
    """Neighbour solicitation or advertisement contents.

    ``lladdr`` is the link-layer address option's data (6 bytes on Ethernet):
    the source link-layer address of a solicitation, the target link-layer
    address of an advertisement, or None when the option is absent. The flags
    are always False in a solicitation.
    """

    __slots__ = ("type", "target", "router", "solicited", "override", "lladdr")

    def __init__(
        self,
        target: bytes,
        router: bool,
        solicited: bool,
        override: bool,
        lladdr: bytes | None,
        type: int = NEIGHBOR_ADVERT,
    ) -> None:
        self.type = type
        self.target = target
        self.router = router
        self.solicited = solicited
        self.override = override
        self.lladdr = lladdr

    @property
    def flags(self) -> int:
        """The flags as they sit in the message's reserved word."""
        return (
            (FLAG_ROUTER if self.router else 0)
            | (FLAG_SOLICITED if self.solicited else 0)
            | (FLAG_OVERRIDE if self.override else 0)
        )

    def __repr__(self) -> str:
        lladdr = self.lladdr.hex(":") if self.lladdr is not None else None
        return (
            f"NeighborMessage(type={self.type}, target={self.target.hex()}, R={self.router}, "
            f"S={self.solicited}, O={self.override}, lladdr={lladdr})"
        )


def parse(buf: Buffer, src: bytes | None = None, dst: bytes | None = None) -> ICMPv6Message:
    """The message; its checksum is verified only when both ``src`` and ``dst`` are given."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if src is not None and dst is not None and not verify_transport_checksum(src, dst, PROTO, view):
        raise MalformedPacket(_LAYER, "bad checksum")
    type_, code, csum, rest = _HEADER.unpack_from(view)
    return ICMPv6Message(type_, code, csum, rest, view[HEADER_LEN:])


def _finish(message: bytes, src: bytes | None, dst: bytes | None) -> bytes:
    if src is None or dst is None:
        return message
    value = transport_checksum(src, dst, PROTO, message)
    return message[:2] + value.to_bytes(2, "big") + message[4:]


def build_echo(
    type: int,
    ident: int,
    seq: int,
    data: Buffer,
    src: bytes | None = None,
    dst: bytes | None = None,
) -> bytes:
    """An echo request (128) or reply (129) carrying ``data``."""
    return _finish(_ECHO.pack(type, 0, 0, ident, seq) + data, src, dst)


def build_error(
    type: int,
    code: int,
    original: Buffer,
    rest: int = 0,
    src: bytes | None = None,
    dst: bytes | None = None,
) -> bytes:
    """An error message quoting as much of ``original`` as fits the 1280-byte minimum MTU.

    RFC 4443 §2.4(c): the whole error packet, IPv6 header included, must not
    exceed the minimum MTU. Bytes past the original's own length (link padding)
    are not quoted. ``rest`` is the MTU (PACKET_TOO_BIG) or pointer (PARAM_PROBLEM).
    """
    end = len(original)
    if end >= IPV6_HEADER_LEN:
        total = IPV6_HEADER_LEN + ((original[4] << 8) | original[5])
        if total < end:
            end = total
    quoted = original[: min(end, MAX_QUOTE)]
    return _finish(_HEADER.pack(type, code, 0, rest) + quoted, src, dst)


def _lladdr_option(kind: int, lladdr: bytes) -> bytes:
    """Type, length in 8-byte units, address, zero padding to a multiple of 8 (RFC 4861 §4.6.1)."""
    size = (2 + len(lladdr) + 7) & ~7
    return bytes((kind, size >> 3)) + lladdr + bytes(size - 2 - len(lladdr))


def build_neighbor_solicit(
    target: bytes,
    src_lladdr: bytes | None = None,
    src: bytes | None = None,
    dst: bytes | None = None,
) -> bytes:
    """A neighbour solicitation for ``target``, with a source link-layer address option."""
    if len(target) != 16:
        raise ValueError("target must be a 16-byte IPv6 address")
    body = _HEADER.pack(NEIGHBOR_SOLICIT, 0, 0, 0) + target
    if src_lladdr is not None:
        body += _lladdr_option(OPT_SOURCE_LLADDR, src_lladdr)
    return _finish(body, src, dst)


def build_neighbor_advert(
    target: bytes,
    router: bool,
    solicited: bool,
    override: bool,
    tgt_lladdr: bytes | None = None,
    src: bytes | None = None,
    dst: bytes | None = None,
) -> bytes:
    """A neighbour advertisement for ``target``, with a target link-layer address option."""
    if len(target) != 16:
        raise ValueError("target must be a 16-byte IPv6 address")
    flags = (
        (FLAG_ROUTER if router else 0)
        | (FLAG_SOLICITED if solicited else 0)
        | (FLAG_OVERRIDE if override else 0)
    )
    body = _HEADER.pack(NEIGHBOR_ADVERT, 0, 0, flags) + target
    if tgt_lladdr is not None:
        body += _lladdr_option(OPT_TARGET_LLADDR, tgt_lladdr)
    return _finish(body, src, dst)


def parse_neighbor(msg: ICMPv6Message) -> NeighborMessage:
    """Validate a solicitation or advertisement (RFC 4861 §7.1) and read its contents.

    Checks here are those the message alone allows: code 0, length, a unicast
    target, and options that all have a non-zero length inside the message.
    Checks that need the IP header (hop limit 255, source and destination
    addresses) belong to the caller. Options other than the link-layer address
    that fits the message type are skipped, as the RFC requires.
    """
    if msg.type == NEIGHBOR_SOLICIT:
        wanted = OPT_SOURCE_LLADDR
    elif msg.type == NEIGHBOR_ADVERT:
        wanted = OPT_TARGET_LLADDR
    else:
        raise MalformedPacket(_LAYER, "not a neighbour message")
    if msg.code != 0:
        raise MalformedPacket(_LAYER, "neighbour message code is not 0")
    body = msg.body
    if len(body) < NEIGHBOR_MIN_LEN - HEADER_LEN:
        raise MalformedPacket(_LAYER, "short neighbour message")
    target = bytes(body[:16])
    if target[0] == 0xFF:
        raise MalformedPacket(_LAYER, "neighbour target is multicast")
    lladdr = None
    i, n = 16, len(body)
    while i < n:
        if i + 2 > n:
            raise MalformedPacket(_LAYER, "truncated option")
        kind, size = body[i], body[i + 1] << 3
        if size == 0 or i + size > n:
            raise MalformedPacket(_LAYER, "bad option length")
        if kind == wanted and lladdr is None:
            lladdr = bytes(body[i + 2 : i + size])
        i += size
    rest = msg.rest if msg.type == NEIGHBOR_ADVERT else 0
    return NeighborMessage(
        target,
        bool(rest & FLAG_ROUTER),
        bool(rest & FLAG_SOLICITED),
        bool(rest & FLAG_OVERRIDE),
        lladdr,
        msg.type,
    )
