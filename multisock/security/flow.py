"""The fields every security part matches on, read once per packet from a hook's ``Packet``.

The firewall, conntrack, the detectors and the IDS all ask the same questions (protocol,
ports, TCP flags, ICMP type), so the hook reads them once into a :class:`Flow` and hands
that object down. Reading never trusts the bytes: a transport header that is too short or
claims an impossible length makes :func:`parse` return None, and the caller counts and
drops the packet (the stack would have dropped it as malformed a moment later anyway).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multisock.stack.hooks import Packet

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_TCP = struct.Struct("!HHIIBB")
_PORTS = struct.Struct("!HH")
_ICMP_ECHO = struct.Struct("!BBHH")
_ECHO4 = (0, 8)  # reply, request
_ECHO6 = (129, 128)
_ERRORS4 = frozenset((3, 4, 5, 11, 12))
_ERRORS6 = frozenset((1, 2, 3, 4))
# IPv6 extension headers: at FORWARD the transport lies behind them (not walked here: such a
# packet is matched by addresses and protocol number only)
_V6_EXTENSIONS = frozenset((0, 43, 44, 50, 51, 60, 135))


class Flow:
    """One packet's matchable fields. ``sport``/``dport`` are the ICMP echo identifier for
    echo messages (conntrack's "port" for ICMP, as netfilter's), 0 where there is none."""

    __slots__ = ("proto", "src", "dst", "sport", "dport", "flags", "seq", "itype", "icode",
                 "data_offset", "size", "payload", "iface", "inner", "fragment")

    def __init__(self, proto: int, src: bytes, dst: bytes, payload: memoryview, size: int,
                 iface: str) -> None:
        self.proto = proto
        self.src = src
        self.dst = dst
        self.sport = 0
        self.dport = 0
        self.flags = 0  # TCP flags
        self.seq = 0  # TCP sequence number
        self.itype = -1  # ICMP type, -1 for other protocols
        self.icode = -1
        self.data_offset = 0  # where the application bytes start in ``payload``
        self.size = size  # bytes counted by the rule counters (the IP packet's length)
        self.payload = payload  # the transport header and data
        self.iface = iface  # the arriving interface's name ("" when unknown)
        self.inner: Flow | None = None  # the packet an ICMP error quotes (reversed later)
        self.fragment = False  # a non-first fragment: no transport header to read

    def __repr__(self) -> str:
        return (f"<Flow proto={self.proto} {self.src.hex()}:{self.sport} -> "
                f"{self.dst.hex()}:{self.dport} flags={self.flags:#x} type={self.itype}>")


def parse(packet: Packet) -> Flow | None:
    """The :class:`Flow` of a hook's packet; None when its transport header is malformed."""
    payload = packet.payload
    if payload.__class__ is not memoryview:
        payload = memoryview(payload)
    data = packet.data
    size = len(data) if data is not None else len(payload) + (20 if len(packet.src) == 4 else 40)
    iface = packet.iface
    flow = Flow(packet.proto, packet.src, packet.dst, payload, size,
                iface.name if iface is not None else "")
    if data is not None and packet.point != "input":
        # each fragment is seen apart before reassembly: only the first has the ports
        if len(packet.src) == 4:
            if (data[6] & 0x1F) or data[7]:
                flow.fragment = True
                return flow
        elif packet.proto in _V6_EXTENSIONS:
            return flow  # matched by address and protocol alone
    if flow.proto == TCP:  # the usual packet, without the call
        if len(payload) < 20:
            return None
        flow.sport, flow.dport, flow.seq, _ack, offset, flow.flags = _TCP.unpack_from(payload)
        offset = (offset >> 4) * 4
        if offset < 20 or offset > len(payload):
            return None
        flow.data_offset = offset
        return flow
    if _fill(flow, payload, len(packet.src) == 16):
        return flow
    return None


def _fill(flow: Flow, payload: memoryview, v6: bool) -> bool:
    """Read the transport header into ``flow``; False when it is malformed."""
    proto = flow.proto
    n = len(payload)
    if proto == TCP:
        if n < 20:
            return False
        flow.sport, flow.dport, flow.seq, _ack, offset, flow.flags = _TCP.unpack_from(payload)
        offset = (offset >> 4) * 4
        if offset < 20 or offset > n:
            return False
        flow.data_offset = offset
    elif proto == UDP:
        if n < 8:
            return False
        flow.sport, flow.dport = _PORTS.unpack_from(payload)
        flow.data_offset = 8
    elif proto in (ICMP, ICMPV6):
        if n < 8 or (proto == ICMP) == v6:
            return False
        flow.itype, flow.icode, _csum, ident = _ICMP_ECHO.unpack_from(payload)
        flow.data_offset = 8
        if flow.itype in (_ECHO6 if v6 else _ECHO4):
            flow.sport = flow.dport = ident
        elif flow.itype in (_ERRORS6 if v6 else _ERRORS4):
            flow.inner = quoted(payload[8:], v6)
    return True


def quoted(body: memoryview, v6: bool) -> Flow | None:
    """The flow of the (truncated) packet an ICMP error quotes: addresses, protocol and the
    first eight transport bytes; None when even those are missing."""
    if v6:
        if len(body) < 48 or body[0] >> 4 != 6:
            return None
        proto, src, dst, start = body[6], bytes(body[8:24]), bytes(body[24:40]), 40
    else:
        if len(body) < 28 or body[0] >> 4 != 4:
            return None
        ihl = (body[0] & 0x0F) * 4
        if ihl < 20 or len(body) < ihl + 8:
            return None
        proto, src, dst, start = body[9], bytes(body[12:16]), bytes(body[16:20]), ihl
    inner = Flow(proto, src, dst, body[start:], 0, "")
    if proto in (TCP, UDP):
        inner.sport, inner.dport = _PORTS.unpack_from(body, start)
    elif proto in (ICMP, ICMPV6):
        inner.itype, inner.icode, _csum, ident = _ICMP_ECHO.unpack_from(body, start)
        inner.sport = inner.dport = ident
    return inner
