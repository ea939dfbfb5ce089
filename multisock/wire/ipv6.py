"""IPv6 header (RFC 8200) and its extension-header chain.

``parse`` walks hop-by-hop, routing and destination-options headers (their
lengths checked, their options skipped) and stops at a fragment header, which
the reassembler needs as such; ``walk_extensions`` continues a chain inside a
reassembled payload.
"""

from __future__ import annotations

import struct

from multisock.wire.errors import MalformedPacket

HOP_BY_HOP = 0
TCP = 6
UDP = 17
ROUTING = 43
FRAGMENT = 44
ESP = 50
AUTH = 51
ICMPV6 = 58
NO_NEXT = 59
DEST_OPTS = 60
HEADER_LEN = 40
MAX_EXTENSIONS = 8

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BxHI")
_SKIPPABLE = (HOP_BY_HOP, ROUTING, DEST_OPTS)


class FragmentHeader:
    __slots__ = ("next_header", "offset", "more", "ident")

    def __init__(self, next_header: int, offset: int, more: bool, ident: int) -> None:
        self.next_header = next_header
        self.offset = offset
        self.more = more
        self.ident = ident


class IPv6Header:
    __slots__ = (
        "traffic_class", "flow_label", "payload_length", "hop_limit", "src", "dst",
        "next_header", "fragment", "ext_headers",
    )

    def __init__(
        self, traffic_class: int, flow_label: int, payload_length: int, hop_limit: int,
        src: bytes, dst: bytes, next_header: int, fragment: FragmentHeader | None,
        ext_headers: list[tuple[int, bytes]],
    ) -> None:
        self.traffic_class = traffic_class
        self.flow_label = flow_label
        self.payload_length = payload_length
        self.hop_limit = hop_limit
        self.src = src
        self.dst = dst
        self.next_header = next_header
        self.fragment = fragment
        self.ext_headers = ext_headers

    def __repr__(self) -> str:
        return (f"IPv6Header(src={self.src.hex()}, dst={self.dst.hex()}, nh={self.next_header}, "
                f"plen={self.payload_length}, hlim={self.hop_limit})")


def _walk(
    next_header: int, view: memoryview, first: bool, ext: list[tuple[int, bytes]]
) -> tuple[int, int, FragmentHeader | None]:
    """-> (upper protocol, offset of its data, fragment header or None)."""
    offset = 0
    for count in range(MAX_EXTENSIONS + 1):
        if next_header in _SKIPPABLE:
            if next_header == HOP_BY_HOP and not (first and count == 0):
                raise MalformedPacket("ipv6", "hop-by-hop header not first")
            if len(view) < offset + 2:
                raise MalformedPacket("ipv6", "truncated extension header")
            length = (view[offset + 1] + 1) * 8
            if len(view) < offset + length:
                raise MalformedPacket("ipv6", "extension header beyond packet")
            ext.append((next_header, bytes(view[offset : offset + length])))
            next_header = view[offset]
            offset += length
        elif next_header == FRAGMENT:
            if len(view) < offset + 8:
                raise MalformedPacket("ipv6", "truncated fragment header")
            nh, frag, ident = _FRAGMENT.unpack_from(view, offset)
            if nh == FRAGMENT:
                raise MalformedPacket("ipv6", "nested fragment header")
            return nh, offset + 8, FragmentHeader(nh, frag & 0xFFF8, bool(frag & 1), ident)
        else:
            return next_header, offset, None
    raise MalformedPacket("ipv6", "too many extension headers")


def parse(buf: bytes | bytearray | memoryview) -> tuple[IPv6Header, memoryview]:
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("ipv6", "shorter than a header")
    word, plen, nh, hlim, src, dst = _HEADER.unpack_from(buf)
    if word >> 28 != 6:
        raise MalformedPacket("ipv6", "version is not 6")
    if plen == 0 and nh == HOP_BY_HOP:
        raise MalformedPacket("ipv6", "jumbograms are not supported")
    if HEADER_LEN + plen > len(buf):
        raise MalformedPacket("ipv6", "payload length beyond packet")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    body = view[HEADER_LEN : HEADER_LEN + plen]
    ext: list[tuple[int, bytes]] = []
    upper, offset, fragment = _walk(nh, body, True, ext)
    header = IPv6Header(
        (word >> 20) & 0xFF, word & 0xFFFFF, plen, hlim, src, dst, upper, fragment, ext
    )
    if upper == NO_NEXT and fragment is None:
        return header, body[len(body) :]
    return header, body[offset:]


def walk_extensions(next_header: int, data: bytes | memoryview) -> tuple[int, memoryview]:
    """Skip the extension headers at the start of a reassembled payload."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    upper, offset, fragment = _walk(next_header, view, False, [])
    if fragment is not None:
        raise MalformedPacket("ipv6", "fragment header inside a reassembled payload")
    return upper, view[offset:]


def build(
    src: bytes, dst: bytes, next_header: int, payload_len: int, *, hop_limit: int = 64,
    traffic_class: int = 0, flow_label: int = 0,
) -> bytes:
    if payload_len > 0xFFFF:
        raise ValueError("IPv6 payload longer than 65535 bytes (jumbograms unsupported)")
    word = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return _HEADER.pack(word, payload_len, next_header, hop_limit, src, dst)


def build_fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    if offset % 8:
        raise ValueError("fragment offset must be a multiple of 8")
    return _FRAGMENT.pack(next_header, offset | (1 if more else 0), ident)
