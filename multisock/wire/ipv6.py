"""IPv6 header (RFC 8200) and its extension-header chain.

``parse`` walks the hop-by-hop, routing and destination-options headers (their
lengths checked, their contents kept raw and otherwise skipped: the stack acts
on none of their options) and stops at a fragment header, because the
reassembler needs the fragment's offset and identification and the rest of the
chain only exists in the first fragment. After reassembly, ``walk_extensions``
continues the chain inside the reassembled payload.

The walk is bounded (``MAX_EXTENSIONS``) so that a packet made of hundreds of
tiny extension headers cannot make the input path loop for long.
"""

from __future__ import annotations

import struct

from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

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
FRAGMENT_HEADER_LEN = 8
MAX_EXTENSIONS = 8

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BxHI")
_SKIPPABLE = frozenset((HOP_BY_HOP, ROUTING, DEST_OPTS))
_LAYER = "ipv6"


class FragmentHeader:
    """The fragment extension header; ``offset`` is in bytes (the 13-bit field times 8)."""

    __slots__ = ("next_header", "offset", "more", "ident")

    def __init__(self, next_header: int, offset: int, more: bool, ident: int) -> None:
        self.next_header = next_header
        self.offset = offset
        self.more = more
        self.ident = ident

    def __repr__(self) -> str:
        return (
            f"FragmentHeader(nh={self.next_header}, offset={self.offset}, "
            f"more={self.more}, ident={self.ident:#x})"
        )


class IPv6Header:
    """A parsed IPv6 header.

    ``next_header`` is the protocol of the payload that ``parse`` returned: the
    upper layer, or, when ``fragment`` is set, the protocol of the fragmentable
    part (the fragment header's own next header). ``ext_headers`` lists the
    extension headers walked before it as ``(type, raw bytes)``.
    """

    __slots__ = (
        "traffic_class",
        "flow_label",
        "payload_length",
        "hop_limit",
        "src",
        "dst",
        "next_header",
        "fragment",
        "ext_headers",
    )

    def __init__(
        self,
        traffic_class: int,
        flow_label: int,
        payload_length: int,
        hop_limit: int,
        src: bytes,
        dst: bytes,
        next_header: int,
        fragment: FragmentHeader | None = None,
        ext_headers: list[tuple[int, bytes]] | None = None,
    ) -> None:
        self.traffic_class = traffic_class
        self.flow_label = flow_label
        self.payload_length = payload_length
        self.hop_limit = hop_limit
        self.src = src
        self.dst = dst
        self.next_header = next_header
        self.fragment = fragment
        self.ext_headers = ext_headers if ext_headers is not None else []

    def __repr__(self) -> str:
        return (
            f"IPv6Header(src={self.src.hex()}, dst={self.dst.hex()}, nh={self.next_header}, "
            f"plen={self.payload_length}, hlim={self.hop_limit}, frag={self.fragment!r})"
        )


def _walk(
    next_header: int, view: memoryview, hop_by_hop_allowed: bool, ext: list[tuple[int, bytes]]
) -> tuple[int, int, FragmentHeader | None]:
    """Follow the chain in ``view``: (upper protocol, offset of its data, fragment header).

    One more pass than ``MAX_EXTENSIONS`` lets the last allowed header be followed by
    the upper layer or a fragment header; a further skippable header ends the loop.
    """
    offset = 0
    for count in range(MAX_EXTENSIONS + 1):
        if next_header in _SKIPPABLE:
            if next_header == HOP_BY_HOP and not (hop_by_hop_allowed and count == 0):
                raise MalformedPacket(_LAYER, "hop-by-hop header not first")
            if len(view) < offset + 2:
                raise MalformedPacket(_LAYER, "truncated extension header")
            length = (view[offset + 1] + 1) << 3
            if len(view) < offset + length:
                raise MalformedPacket(_LAYER, "extension header beyond packet")
            ext.append((next_header, bytes(view[offset : offset + length])))
            next_header = view[offset]
            offset += length
        elif next_header == FRAGMENT:
            if len(view) < offset + FRAGMENT_HEADER_LEN:
                raise MalformedPacket(_LAYER, "truncated fragment header")
            nh, frag, ident = _FRAGMENT.unpack_from(view, offset)
            if nh == FRAGMENT:
                raise MalformedPacket(_LAYER, "nested fragment header")
            return (
                nh,
                offset + FRAGMENT_HEADER_LEN,
                FragmentHeader(nh, frag & 0xFFF8, bool(frag & 1), ident),
            )
        else:
            return next_header, offset, None
    raise MalformedPacket(_LAYER, "too many extension headers")


def parse(buf: Buffer) -> tuple[IPv6Header, memoryview]:
    """Header and payload (trimmed to the payload length: link padding dropped).

    The payload starts after the walked extension headers; after a fragment
    header it is the fragment data; after "no next header" (59) it is empty.
    """
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    word, plen, nh, hlim, src, dst = _HEADER.unpack_from(buf)
    if word >> 28 != 6:
        raise MalformedPacket(_LAYER, "version is not 6")
    if plen == 0 and nh == HOP_BY_HOP:
        raise MalformedPacket(_LAYER, "jumbograms are not supported")
    if HEADER_LEN + plen > len(buf):
        raise MalformedPacket(_LAYER, "payload length beyond packet")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    body = view[HEADER_LEN : HEADER_LEN + plen]
    ext: list[tuple[int, bytes]] = []
    upper, offset, fragment = _walk(nh, body, True, ext)
    header = IPv6Header(
        (word >> 20) & 0xFF, word & 0xFFFFF, plen, hlim, src, dst, upper, fragment, ext
    )
    if upper == NO_NEXT and fragment is None:
        return header, body[plen:]
    return header, body[offset:]


def walk_extensions(next_header: int, data: Buffer) -> tuple[int, memoryview]:
    """Skip the extension headers at the start of a reassembled payload.

    Returns the upper-layer protocol and its data. A hop-by-hop header or a
    second fragment header cannot legally appear there and is refused.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    upper, offset, fragment = _walk(next_header, view, False, [])
    if fragment is not None:
        raise MalformedPacket(_LAYER, "fragment header inside a reassembled payload")
    if upper == NO_NEXT:
        return upper, view[len(view) :]
    return upper, view[offset:]


def build(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_len: int,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """The 40-byte fixed header (the caller appends extension headers and payload)."""
    if not 0 <= payload_len <= 0xFFFF:
        raise ValueError("IPv6 payload length outside 0..65535 (jumbograms unsupported)")
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError("traffic class is 8 bits and flow label 20 bits")
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    word = 0x60000000 | (traffic_class << 20) | flow_label
    return _HEADER.pack(word, payload_len, next_header, hop_limit, src, dst)


def build_fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    """The 8-byte fragment header; ``offset`` in bytes, a multiple of 8."""
    if offset % 8 or not 0 <= offset <= 0xFFF8:
        raise ValueError("fragment offset must be a multiple of 8 below 65536")
    return _FRAGMENT.pack(next_header, offset | (1 if more else 0), ident)
