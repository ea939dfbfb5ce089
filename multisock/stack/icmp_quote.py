"""Parsing the packet quoted inside an ICMP error.

The quote is a truncated copy of a packet we sent: its IP header claims a total
length the quote does not have, so the normal parsers (which insist on complete
packets) do not fit. Only addresses, protocol and the first transport bytes
(ports) are needed to find the socket the error is about. The path-MTU floor such an
error may set lives here too, for the IP layer's cache and TCP alike.
"""

from __future__ import annotations

from multisock.wire.errors import MalformedPacket

#: the smallest path MTU an ICMP error may set: Linux's ip_rt_min_pmtu (512 bytes of data
#: plus 40 of headers) for IPv4, the minimum link MTU for IPv6 (RFC 8200 §5)
MIN_PMTU4 = 552
MIN_PMTU6 = 1280

_V6_EXTENSIONS = {0, 43, 60}


def clamp_path_mtu(mtu: int, v6: bool) -> int:
    """The path MTU to believe from an ICMP "fragmentation needed" / "packet too big":
    never below the family's minimum, so that a forged (or RFC 1191 "unknown", 0) MTU
    cannot shrink a connection's segments to a few bytes."""
    floor = MIN_PMTU6 if v6 else MIN_PMTU4
    return mtu if mtu > floor else floor
_V6_FRAGMENT = 44


class Quoted:
    """The addresses and protocol of the packet an ICMP error quotes.

    (A plain class: importing ``dataclasses`` pulls in ``inspect`` and ``ast``, ~1 MiB.)
    """

    __slots__ = ("src", "dst", "proto")

    def __init__(self, src: bytes, dst: bytes, proto: int) -> None:
        self.src = src
        self.dst = dst
        self.proto = proto

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quoted):
            return NotImplemented
        return (self.src, self.dst, self.proto) == (other.src, other.dst, other.proto)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"Quoted(src={self.src!r}, dst={self.dst!r}, proto={self.proto!r})"


def parse_quoted4(body: memoryview | bytes) -> tuple[Quoted, memoryview]:
    view = memoryview(body)
    if len(view) < 20 or view[0] >> 4 != 4:
        raise MalformedPacket("icmp-quote", "short or not IPv4")
    ihl = (view[0] & 0x0F) * 4
    if ihl < 20 or len(view) < ihl:
        raise MalformedPacket("icmp-quote", "bad header length")
    return Quoted(bytes(view[12:16]), bytes(view[16:20]), view[9]), view[ihl:]


def parse_quoted6(body: memoryview | bytes) -> tuple[Quoted, memoryview]:
    view = memoryview(body)
    if len(view) < 40 or view[0] >> 4 != 6:
        raise MalformedPacket("icmp-quote", "short or not IPv6")
    next_header = view[6]
    offset = 40
    for _ in range(8):
        if next_header in _V6_EXTENSIONS:
            if len(view) < offset + 2:
                raise MalformedPacket("icmp-quote", "truncated extension header")
            next_header, offset = view[offset], offset + (view[offset + 1] + 1) * 8
        elif next_header == _V6_FRAGMENT:
            if len(view) < offset + 8:
                raise MalformedPacket("icmp-quote", "truncated fragment header")
            next_header, offset = view[offset], offset + 8
        else:
            break
    if offset > len(view):
        raise MalformedPacket("icmp-quote", "extension headers past the quote")
    return Quoted(bytes(view[8:24]), bytes(view[24:40]), next_header), view[offset:]
