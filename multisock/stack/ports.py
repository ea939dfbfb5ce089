"""Port bindings for datagram protocols (UDP ports, ICMP ping identifiers).

Linux rules, which applications depend on:
- two bindings of one port conflict when their addresses overlap (equal, or
  either is a wildcard); an IPv6 wildcard that is not ``IPV6_V6ONLY`` also covers
  every IPv4 address;
- the conflict is allowed when both set SO_REUSEADDR or both set SO_REUSEPORT;
- ephemeral ports are drawn at random from 32768-60999 (RFC 6056 "simple
  randomisation", Linux's ``ip_local_port_range``);
- the receiver of a datagram is the most specific match: a connected socket whose
  peer matches beats one bound to the exact address, which beats a wildcard.
"""

from __future__ import annotations

import errno
import os
import random

from multisock.stack.addresses import (
    AF_INET,
    AF_INET6,
    ANY6,
    is_v4mapped,
    is_wildcard,
    to_v4mapped,
)
from multisock.stack.datagram import DatagramEndpoint

EPHEMERAL_LOW = 32768
EPHEMERAL_HIGH = 60999


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _covers_v4(ep: DatagramEndpoint) -> bool:
    """Does this endpoint's local address take IPv4 traffic?"""
    assert ep.local is not None
    addr = ep.local[0]
    if ep.family == AF_INET:
        return True
    return (addr == ANY6 and not ep.v6only) or is_v4mapped(addr)


def _covers_v6(ep: DatagramEndpoint) -> bool:
    assert ep.local is not None
    return ep.family == AF_INET6 and not is_v4mapped(ep.local[0])


def _v4_view(ep: DatagramEndpoint) -> bytes:
    """The endpoint's local address as IPv4 (wildcard -> 0.0.0.0)."""
    assert ep.local is not None
    addr = ep.local[0]
    if len(addr) == 4:
        return addr
    return addr[12:] if is_v4mapped(addr) else bytes(4)


def _overlap(a: DatagramEndpoint, b: DatagramEndpoint) -> bool:
    assert a.local is not None and b.local is not None
    if _covers_v4(a) and _covers_v4(b):
        x, y = _v4_view(a), _v4_view(b)
        if is_wildcard(x) or is_wildcard(y) or x == y:
            return True
    if _covers_v6(a) and _covers_v6(b):
        x, y = a.local[0], b.local[0]
        if is_wildcard(x) or is_wildcard(y) or x == y:
            return True
    return False


class PortTable:
    """Bindings of one datagram protocol on one host."""

    __slots__ = ("_ports", "_rng", "low", "high")

    def __init__(self, rng: random.Random, low: int = EPHEMERAL_LOW, high: int = EPHEMERAL_HIGH) -> None:
        self._ports: dict[int, list[DatagramEndpoint]] = {}
        self._rng = rng
        self.low = low
        self.high = high

    def _conflicts(self, ep: DatagramEndpoint, port: int) -> bool:
        for other in self._ports.get(port, ()):
            if other is ep:
                continue
            if not _overlap(ep, other):
                continue
            if (ep.reuseaddr and other.reuseaddr) or (ep.reuseport and other.reuseport):
                continue
            return True
        return False

    def bind(self, ep: DatagramEndpoint, addr: bytes, port: int) -> None:
        """Bind ``ep`` to (addr, port); port 0 picks a free ephemeral port."""
        if ep.local is not None:
            raise _oserror(errno.EINVAL)
        if port:
            ep.local = (addr, port)
            if self._conflicts(ep, port):
                ep.local = None
                raise _oserror(errno.EADDRINUSE)
            self._ports.setdefault(port, []).append(ep)
            return
        span = self.high - self.low + 1
        start = self._rng.randrange(span)
        for i in range(span):
            candidate = self.low + (start + i) % span
            ep.local = (addr, candidate)
            if not self._conflicts(ep, candidate):
                self._ports.setdefault(candidate, []).append(ep)
                return
        ep.local = None
        raise _oserror(errno.EAGAIN)

    def unbind(self, ep: DatagramEndpoint) -> None:
        if ep.local is None:
            return
        bound = self._ports.get(ep.local[1])
        if bound and ep in bound:
            bound.remove(ep)
            if not bound:
                del self._ports[ep.local[1]]

    def lookup(
        self, dst: bytes, dst_port: int, src: bytes, src_port: int
    ) -> list[DatagramEndpoint]:
        """Receivers of a datagram, best match first (all of them for multicast/broadcast)."""
        candidates = self._ports.get(dst_port)
        if not candidates:
            return []
        v4 = len(dst) == 4
        scored: list[tuple[int, DatagramEndpoint]] = []
        for ep in candidates:
            assert ep.local is not None
            if ep.closed:
                continue
            if v4:
                if not _covers_v4(ep):
                    continue
                local = _v4_view(ep)
                remote = ep.remote
                if remote is not None:
                    raddr = remote[0][12:] if len(remote[0]) == 16 else remote[0]
                    if len(remote[0]) == 16 and not is_v4mapped(remote[0]):
                        continue
                    remote = (raddr, remote[1])
            else:
                if not _covers_v6(ep):
                    continue
                local = ep.local[0]
                remote = ep.remote
            score = 0
            if local == dst:
                score = 2
            elif not is_wildcard(local):
                continue
            else:
                score = 1
            if remote is not None:
                if remote != (src, src_port):
                    continue
                score += 4
            scored.append((score, ep))
        if len(scored) == 1:  # the usual case: nothing to order
            return [scored[0][1]]
        scored.sort(key=lambda item: -item[0])
        return [ep for _, ep in scored]

    def endpoints(self) -> list[DatagramEndpoint]:
        return [ep for eps in self._ports.values() for ep in eps]


def source_for_endpoint(ep: DatagramEndpoint, src: bytes) -> bytes:
    """The address a received datagram's sender is reported as, in the socket's family."""
    if ep.family == AF_INET6 and len(src) == 4:
        return to_v4mapped(src)
    return src
