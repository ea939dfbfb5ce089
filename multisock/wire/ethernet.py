"""Ethernet II frames (and 802.1Q/802.1ad VLAN tags, which are skipped).

Used by links that carry layer-2 frames (a TAP device, a pcap with link type
Ethernet, Linux ``lo`` captured through AF_PACKET). The frame check sequence is
never present: NICs and the kernel strip it before software sees a frame.
"""

from __future__ import annotations

import struct

from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_QINQ = 0x88A8
HEADER_LEN = 14
VLAN_TAG_LEN = 4
MIN_ETHERTYPE = 0x0600  # below: an 802.3 length field, not a type (IEEE 802.3 §3.2.6)
MAX_VLAN_TAGS = 2  # an outer service tag and an inner customer tag (802.1ad)
MIN_FRAME_LEN = 60  # without FCS; shorter frames are padded by the sender
BROADCAST = b"\xff" * 6

_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_TAG_TYPES = frozenset((ETHERTYPE_VLAN, ETHERTYPE_QINQ))
_LAYER = "ethernet"


class EthernetFrame:
    """A parsed frame; ``ethertype`` is the one after any VLAN tags, ``vlan`` the innermost ID."""

    __slots__ = ("dst", "src", "ethertype", "payload", "vlan")

    def __init__(
        self,
        dst: bytes,
        src: bytes,
        ethertype: int,
        payload: memoryview,
        vlan: int | None = None,
    ) -> None:
        self.dst = dst
        self.src = src
        self.ethertype = ethertype
        self.payload = payload
        self.vlan = vlan

    def __repr__(self) -> str:
        return (
            f"EthernetFrame({self.src.hex(':')} -> {self.dst.hex(':')}, "
            f"type={self.ethertype:#06x}, vlan={self.vlan}, {len(self.payload)} bytes)"
        )


def parse(buf: Buffer) -> EthernetFrame:
    """The frame; the payload keeps any padding (the network layer trims by its own length)."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket(_LAYER, "shorter than a header")
    dst, src, ethertype = _HEADER.unpack_from(buf)
    offset = HEADER_LEN
    vlan = None
    tags = 0
    while ethertype in _TAG_TYPES:
        tags += 1
        if tags > MAX_VLAN_TAGS:
            raise MalformedPacket(_LAYER, "too many VLAN tags")
        if len(buf) < offset + VLAN_TAG_LEN:
            raise MalformedPacket(_LAYER, "truncated VLAN tag")
        tci, ethertype = _TAG.unpack_from(buf, offset)
        vlan = tci & 0x0FFF
        offset += VLAN_TAG_LEN
    if ethertype < MIN_ETHERTYPE:
        raise MalformedPacket(_LAYER, "802.3 length field, not an ethertype")
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return EthernetFrame(dst, src, ethertype, view[offset:], vlan)


def build(dst: bytes, src: bytes, ethertype: int, payload: Buffer = b"") -> bytes:
    """The 14-byte header followed by ``payload`` (pass none to get the header alone).

    No padding to 60 bytes is added: a TAP device or AF_PACKET socket accepts
    short frames and the kernel or NIC pads what goes on a wire.
    """
    if len(dst) != 6 or len(src) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    if not MIN_ETHERTYPE <= ethertype <= 0xFFFF:
        raise ValueError("ethertype outside 0x0600..0xffff")
    header = _HEADER.pack(dst, src, ethertype)
    return header + payload if payload else header
