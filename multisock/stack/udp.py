"""UDP (RFC 768): port demultiplexing, datagram endpoints, ICMP error delivery."""

from __future__ import annotations

import errno
import os
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from multisock.stack.addresses import (
    AF_INET6,
    V4MAPPED_PREFIX,
    is_multicast,
    is_v4mapped,
    is_wildcard,
    to_v4mapped,
)
from multisock.stack.datagram import DatagramEndpoint, Meta
from multisock.stack.ports import PortTable, source_for_endpoint
from multisock.wire import udp as udp_wire

if TYPE_CHECKING:
    from multisock.stack.interface import Interface
    from multisock.stack.ip import IPStack

PROTO_UDP = 17
_UDP_HEADER = struct.Struct("!HHHH")  # udp_wire's header, packed and read inline per datagram
MAX_MEMBERSHIPS = 20  # Linux's net.ipv4.igmp_max_memberships (and a bound all the same)
MAX_PAYLOAD_V4 = 65535 - 20 - 8
MAX_PAYLOAD_V6 = 65535 - 8


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def wire_address(ep: DatagramEndpoint, addr: bytes) -> bytes:
    """Addresses a v6 socket gives in v4-mapped form travel as IPv4."""
    return addr[12:] if is_v4mapped(addr) else addr


class UdpStack:
    __slots__ = ("ip", "ports", "counters", "no_socket")

    def __init__(self, ip: IPStack, rng: random.Random) -> None:
        self.ip = ip
        self.ports = PortTable(rng)
        self.counters = {
            "in": 0,
            "out": 0,
            "no_port": 0,
            "bad_header": 0,
            "bad_checksum": 0,
            "rcvbuf_errors": 0,
        }
        # asked before a datagram no socket wants is answered with port unreachable:
        # (src, dst, src port, dst port, payload) -> True when taken (the host gateway's
        # relay, multisock/gateway); None: port unreachable as usual
        self.no_socket: Callable[[bytes, bytes, int, int, memoryview], bool] | None = None

    def endpoint(self, family: int) -> DatagramEndpoint:
        return DatagramEndpoint(family)

    def bind(self, ep: DatagramEndpoint, addr: bytes, port: int) -> None:
        self.ip.check_bind_address(ep.family, addr, ep.v6only if ep.family == AF_INET6 else False)
        self.ports.bind(ep, addr, port)

    def autobind(self, ep: DatagramEndpoint) -> None:
        if ep.local is None:
            self.ports.bind(ep, bytes(16) if ep.family == AF_INET6 else bytes(4), 0)

    def connect(self, ep: DatagramEndpoint, addr: bytes, port: int) -> None:
        """Fix the peer; like Linux, also fixes the local address if it was a wildcard."""
        target = wire_address(ep, addr)
        route_src = self.ip.select_source(target)
        if route_src is None:
            raise _oserror(errno.ENETUNREACH)
        self.autobind(ep)
        assert ep.local is not None
        if is_wildcard(ep.local[0]):
            local = route_src
            if ep.family == AF_INET6 and len(local) == 4:
                local = bytes(10) + b"\xff\xff" + local
            ep.local = (local, ep.local[1])
        ep.remote = (addr, port)
        ep.pending_error = 0

    def disconnect(self, ep: DatagramEndpoint) -> None:
        ep.remote = None

    def sendto(self, ep: DatagramEndpoint, data: bytes | memoryview, addr: bytes, port: int,
               ttl: int | None = None, tos: int | None = None,
               source: bytes | None = None) -> int:
        """``ttl``/``tos``: this datagram's own (sendmsg ancillary data), else the socket's;
        ``source``: the source address IP_PKTINFO/IPV6_PKTINFO chose (checked local)."""
        size = len(data)
        target = addr[12:] if len(addr) == 16 and addr[:12] == V4MAPPED_PREFIX else addr
        if size > (MAX_PAYLOAD_V4 if len(target) == 4 else MAX_PAYLOAD_V6):
            raise _oserror(errno.EMSGSIZE)
        if port == 0:
            raise _oserror(errno.EINVAL)
        local = ep.local
        if local is None:
            self.autobind(ep)
            local = ep.local
            assert local is not None
        if source is not None:
            src = source
        else:
            src = local[0]
            if len(src) == 16 and src[:12] == V4MAPPED_PREFIX:
                src = src[12:]
        if is_wildcard(src):
            src = b""
        header = _UDP_HEADER.pack(local[1], port, 8 + size, 0)
        if is_multicast(target):
            mc_if = ep.multicast_if
            self.ip.output(
                src, target, PROTO_UDP, header, data,
                ttl=ep.multicast_ttl if ttl is None else ttl,
                tos=ep.tos if tos is None else tos,
                csum_offset=udp_wire.CHECKSUM_OFFSET,
                mc_iface=mc_if[0] if mc_if is not None else None,
                mc_loop=ep.multicast_loop,
            )
        else:
            self.ip.udp_output(src, target, header, data, ep.ttl if ttl is None else ttl,
                               ep.tos if tos is None else tos, ep.broadcast)
        self.counters["out"] += 1
        ep.counters["tx"] += 1
        return size

    def input(self, src: bytes, dst: bytes, segment: memoryview, broadcast: bool,
              ttl: int = 64, tos: int = 0, ifindex: int = 0) -> bool:
        """Deliver one datagram; False when no socket wants it (caller sends port unreachable)."""
        # (udp_wire.parse's checks and trimming, inline: no header object per datagram)
        size = len(segment)
        if size < 8:
            self.counters["bad_header"] += 1
            return True
        sport, dport, length, _ = _UDP_HEADER.unpack_from(segment)
        if length < 8 or length > size:
            self.counters["bad_header"] += 1
            return True
        self.counters["in"] += 1
        receivers = self.ports.lookup(dst, dport, src, sport)
        if not receivers:
            no_socket = self.no_socket
            if not broadcast and no_socket is not None:
                view = segment if isinstance(segment, memoryview) else memoryview(segment)
                if no_socket(src, dst, sport, dport, view[8:length]):
                    return True
            self.counters["no_port"] += 1
            return False
        data = bytes(segment[8:length])
        if not broadcast:
            ep = receivers[0]
            # the IP fields only for a socket that asked for them (recvmsg's ancillary data)
            meta = Meta(ttl, tos, dst, ifindex) if ep.recv_meta else None
            source = (to_v4mapped(src) if ep.family == AF_INET6 and len(src) == 4 else src,
                      sport)
            if not ep.deliver(data, source, meta):
                self.counters["rcvbuf_errors"] += 1
            return True
        meta = Meta(ttl, tos, dst, ifindex)
        for ep in receivers:
            if not ep.deliver(data, (source_for_endpoint(ep, src), sport), meta):
                self.counters["rcvbuf_errors"] += 1
        return True

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int) -> None:
        """An ICMP error about a datagram we sent from src to dst; only connected sockets hear it."""
        if len(quoted) < 4:
            return
        sport = int.from_bytes(quoted[0:2], "big")
        dport = int.from_bytes(quoted[2:4], "big")
        for ep in self.ports.lookup(src, sport, dst, dport):
            if ep.remote is not None:
                ep.set_error(err)

    def join(self, ep: DatagramEndpoint, group: bytes, iface: Interface) -> None:
        """IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP once the interface is known."""
        joined = ep.memberships if ep.memberships is not None else []
        if (group, iface) in joined:
            raise _oserror(errno.EADDRINUSE)
        if len(joined) >= MAX_MEMBERSHIPS:
            raise _oserror(errno.ENOBUFS)
        joined.append((group, iface))
        ep.memberships = joined
        self.ip.join_group(iface, group)

    def leave(self, ep: DatagramEndpoint, group: bytes, iface: Interface | None) -> None:
        """IP_DROP_MEMBERSHIP / IPV6_LEAVE_GROUP; ``iface`` None: any interface."""
        for entry in ep.memberships or ():
            if entry[0] == group and (iface is None or entry[1] is iface):
                assert ep.memberships is not None
                ep.memberships.remove(entry)
                self.ip.leave_group(entry[1], group)
                return
        raise _oserror(errno.EADDRNOTAVAIL)

    def close(self, ep: DatagramEndpoint) -> None:
        for group, iface in ep.memberships or ():
            self.ip.leave_group(iface, group)
        ep.memberships = None
        ep.closed = True
        self.ports.unbind(ep)
        ep.queue.clear()
        ep.queued_bytes = 0
