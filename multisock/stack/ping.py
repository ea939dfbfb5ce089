"""ICMP echo sockets: Linux "ping sockets" (SOCK_DGRAM + IPPROTO_ICMP/ICMPV6).

Like Linux, the identifier field is the socket's "port": the stack overwrites it
on send with the bound identifier and demultiplexes replies by it, and computes
the checksum. Applications read back the ICMP header and data (no IP header).
"""

from __future__ import annotations

import errno
import os
import random
from typing import TYPE_CHECKING

from multisock.stack.addresses import AF_INET6, is_wildcard
from multisock.stack.datagram import DatagramEndpoint
from multisock.stack.ports import PortTable, source_for_endpoint
from multisock.stack.udp import wire_address
from multisock.wire import icmpv4, icmpv6

if TYPE_CHECKING:
    from multisock.stack.ip import IPStack


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class PingStack:
    __slots__ = ("ip", "idents", "counters")

    def __init__(self, ip: IPStack, rng: random.Random) -> None:
        self.ip = ip
        self.idents = PortTable(rng, low=1, high=65535)
        self.counters = {"out": 0, "in": 0}

    def bind(self, ep: DatagramEndpoint, addr: bytes, ident: int) -> None:
        self.ip.check_bind_address(ep.family, addr, False)
        self.idents.bind(ep, addr, ident)

    def autobind(self, ep: DatagramEndpoint) -> None:
        if ep.local is None:
            self.idents.bind(ep, bytes(16) if ep.family == AF_INET6 else bytes(4), 0)

    def sendto(self, ep: DatagramEndpoint, data: bytes | memoryview, addr: bytes) -> int:
        """Send an echo request given as ICMP header + data; type must be echo request."""
        v6 = ep.family == AF_INET6
        if len(data) < 8:
            raise _oserror(errno.EINVAL)
        want = icmpv6.ECHO_REQUEST if v6 else icmpv4.ECHO_REQUEST
        if data[0] != want or data[1] != 0:
            raise _oserror(errno.EINVAL)
        self.autobind(ep)
        assert ep.local is not None
        ident = ep.local[1]
        seq = int.from_bytes(data[6:8], "big")
        target = wire_address(ep, addr)
        src = wire_address(ep, ep.local[0])
        if is_wildcard(src):
            src = b""
        if v6:
            message = icmpv6.build_echo(icmpv6.ECHO_REQUEST, ident, seq, bytes(data[8:]))
            self.ip.output(src, target, 58, message, b"", ttl=ep.ttl, csum_offset=icmpv6.CHECKSUM_OFFSET)
        else:
            message = icmpv4.build_echo(icmpv4.ECHO_REQUEST, ident, seq, bytes(data[8:]))
            self.ip.output(src, target, 1, message, b"", ttl=ep.ttl, tos=ep.tos)
        self.counters["out"] += 1
        return len(data)

    def echo_reply(self, src: bytes, dst: bytes, ident: int, message: bytes) -> None:
        for ep in self.idents.lookup(dst, ident, src, 0)[:1]:
            ep.deliver(message, (source_for_endpoint(ep, src), 0))
            self.counters["in"] += 1

    def close(self, ep: DatagramEndpoint) -> None:
        ep.closed = True
        self.idents.unbind(ep)
