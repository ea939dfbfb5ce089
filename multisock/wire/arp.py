"""ARP (RFC 826) for Ethernet and IPv4, the only pairing the stack resolves.

Any other hardware or protocol type is refused as malformed: a packet this
stack cannot act on is counted and dropped like a broken one.
"""

from __future__ import annotations

import struct

from multisock.wire.errors import MalformedPacket

Buffer = bytes | bytearray | memoryview

OP_REQUEST = 1
OP_REPLY = 2
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
PACKET_LEN = 28

_PACKET = struct.Struct("!HHBBH6s4s6s4s")
_LAYER = "arp"


class ARPPacket:
    """An Ethernet/IPv4 ARP request or reply; addresses are packed bytes."""

    __slots__ = ("op", "sender_mac", "sender_ip", "target_mac", "target_ip")

    def __init__(
        self, op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
    ) -> None:
        self.op = op
        self.sender_mac = sender_mac
        self.sender_ip = sender_ip
        self.target_mac = target_mac
        self.target_ip = target_ip

    @property
    def is_gratuitous(self) -> bool:
        """An announcement of the sender's own address (RFC 5227 §3): sender IP equals target IP."""
        return self.sender_ip == self.target_ip

    def __repr__(self) -> str:
        kind = {OP_REQUEST: "request", OP_REPLY: "reply"}.get(self.op, str(self.op))
        return (
            f"ARPPacket({kind}, sender={self.sender_mac.hex(':')}/{self.sender_ip.hex()}, "
            f"target={self.target_mac.hex(':')}/{self.target_ip.hex()})"
        )


def parse(buf: Buffer) -> ARPPacket:
    """The packet; bytes after the 28 (Ethernet minimum-frame padding) are ignored."""
    if len(buf) < PACKET_LEN:
        raise MalformedPacket(_LAYER, "shorter than an Ethernet/IPv4 ARP packet")
    htype, ptype, hlen, plen, op, smac, sip, tmac, tip = _PACKET.unpack_from(buf)
    if htype != HTYPE_ETHERNET or hlen != 6:
        raise MalformedPacket(_LAYER, "hardware type is not Ethernet")
    if ptype != PTYPE_IPV4 or plen != 4:
        raise MalformedPacket(_LAYER, "protocol type is not IPv4")
    if op not in (OP_REQUEST, OP_REPLY):
        raise MalformedPacket(_LAYER, "operation is not request or reply")
    return ARPPacket(op, smac, sip, tmac, tip)


def build(
    op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
) -> bytes:
    """The 28-byte packet (a request carries a zero ``target_mac``)."""
    if len(sender_mac) != 6 or len(target_mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    if len(sender_ip) != 4 or len(target_ip) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    return _PACKET.pack(
        HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip
    )
