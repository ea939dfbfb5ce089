"""Raw ICMP sockets (SOCK_RAW + IPPROTO_ICMP / IPPROTO_ICMPV6), as Linux has them.

Every ICMP message the host receives is copied to every raw socket of its family
(IPv4: with the IP header, as Linux delivers it; IPv6: the ICMPv6 message only).
On send, the stack builds the IP header; for IPv4 the caller computes the ICMP
checksum, for IPv6 the stack does (RFC 3542 §3.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.stack.datagram import DatagramEndpoint
from multisock.stack.udp import wire_address
from multisock.wire import icmpv6

if TYPE_CHECKING:
    from multisock.stack.ip import IPStack

PROTO_ICMP = 1
PROTO_ICMPV6 = 58


class RawIcmp:
    __slots__ = ("ip", "endpoints")

    def __init__(self, ip: IPStack) -> None:
        self.ip = ip
        self.endpoints: list[DatagramEndpoint] = []
        ip.raw_listeners.append(self._packet)

    def open(self, ep: DatagramEndpoint) -> None:
        self.endpoints.append(ep)

    def close(self, ep: DatagramEndpoint) -> None:
        ep.closed = True
        if ep in self.endpoints:
            self.endpoints.remove(ep)

    def _packet(self, src: bytes, dst: bytes, proto: int, packet: bytes) -> None:
        if proto not in (PROTO_ICMP, PROTO_ICMPV6) or not self.endpoints:
            return
        v4 = len(src) == 4
        for ep in self.endpoints:
            if ep.is_v4 != v4 or (proto == PROTO_ICMP) != v4:
                continue
            if ep.local is not None and ep.local[0] not in (bytes(len(dst)), dst):
                continue
            data = bytes(packet) if v4 else bytes(packet[40:])
            ep.deliver(data, (src, 0))

    def sendto(self, ep: DatagramEndpoint, data: bytes | memoryview, addr: bytes) -> int:
        target = wire_address(ep, addr)
        src = ep.local[0] if ep.local is not None and any(ep.local[0]) else b""
        if ep.is_v4:
            self.ip.output(src, target, PROTO_ICMP, bytes(data), ttl=ep.ttl, tos=ep.tos)
        else:
            self.ip.output(src, target, PROTO_ICMPV6, bytes(data), ttl=ep.ttl,
                           csum_offset=icmpv6.CHECKSUM_OFFSET)
        return len(data)
