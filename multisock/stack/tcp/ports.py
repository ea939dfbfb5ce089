"""TCP port ownership: bind() conflicts, listen() conflicts, ephemeral ports.

Linux's rules, which servers rely on:
- two sockets on one port conflict when their local addresses overlap (equal, or
  either is a wildcard; an IPv6 wildcard without IPV6_V6ONLY also covers IPv4);
- SO_REUSEADDR on both lifts the conflict unless one of them is listening, and the
  new socket may always rebind over a TIME-WAIT one when it sets SO_REUSEADDR;
- SO_REUSEPORT on both lifts it completely (listeners then share the SYNs);
- ephemeral ports are random (RFC 6056 §3.3.1) within 32768-60999; connect() may take
  over a 4-tuple held by a TIME-WAIT record when ``TcpConfig.tw_reuse`` allows it
  (Linux's net.ipv4.tcp_tw_reuse, checked during the same search: __inet_hash_connect).
"""

from __future__ import annotations

import errno as E
import random
import socket as _socket
from typing import TYPE_CHECKING, Protocol

from multisock.stack.tcp.config import TcpState
from multisock.stack.tcp.timewait import TimeWait

if TYPE_CHECKING:
    from typing import TypeAlias

    from multisock.stack.tcp.connection import TcpSocket

    # what holds a port: a control block, or the TIME-WAIT record that replaced one
    Holder: TypeAlias = TcpSocket | TimeWait


class _Host(Protocol):
    def is_local_address(self, addr: bytes) -> bool: ...


def _error(code: int) -> OSError:
    import os

    return OSError(code, os.strerror(code))


def _covers(sock: Holder, addr: bytes) -> bool:
    """Does ``sock``'s local address take traffic for ``addr``?"""
    assert sock.local is not None
    mine = sock.local[0]
    if mine == addr:
        return True
    if not any(mine):
        if len(mine) == len(addr):
            return True
        return len(mine) == 16 and len(addr) == 4 and not sock.v6only
    return False


def overlap(a: Holder, b: Holder) -> bool:
    assert a.local is not None and b.local is not None
    return _covers(a, b.local[0]) or _covers(b, a.local[0])


class PortTable:
    __slots__ = ("by_port", "rng", "low", "high", "host")

    def __init__(self, rng: random.Random, low: int, high: int, host: _Host) -> None:
        self.by_port: dict[int, list[Holder]] = {}
        self.rng = rng
        self.low = low
        self.high = high
        self.host = host

    def _conflict(self, sock: TcpSocket, other: Holder) -> bool:
        if not overlap(sock, other):
            return False
        if sock.reuseport and other.reuseport:
            return False
        if sock.reuseaddr and other.state is TcpState.TIME_WAIT:
            return False
        return not (sock.reuseaddr and other.reuseaddr and other.state is not TcpState.LISTEN)

    def bind(self, sock: TcpSocket, addr: bytes, port: int) -> None:
        if not 0 <= port <= 0xFFFF:
            raise OverflowError("port must be 0-65535")
        want = 4 if sock.family == _socket.AF_INET else 16
        if len(addr) != want and not (want == 16 and len(addr) == 4):
            raise _error(E.EINVAL)
        if any(addr) and not self.host.is_local_address(addr):
            raise _error(E.EADDRNOTAVAIL)
        sock.local = (addr, port)
        if port == 0:
            sock.local = (addr, self._pick())
        else:
            for other in self.by_port.get(port, ()):
                if other is not sock and self._conflict(sock, other):
                    sock.local = None
                    raise _error(E.EADDRINUSE)
        self._add(sock)

    def connect_bind(
        self, sock: TcpSocket, src: bytes, dst: bytes, dport: int, now: float = 0.0,
        tw_reuse: int = 0,
    ) -> TimeWait | None:
        """Give a connecting socket its local address (and port, when it has none).

        Returns the TIME-WAIT record whose 4-tuple the chosen port takes over (already
        retired; ``tw_reuse`` as in ``TcpConfig``), or None. An explicitly bound port is
        kept as it is, if its 4-tuple is free (``_check_bound_tuple``)."""
        if sock.bound:
            assert sock.local is not None
            bound = sock.local
            if not any(bound[0]):
                self._remove(sock)
                sock.local = (src, bound[1])
                self._add(sock)
            try:
                return self._check_bound_tuple(sock, (dst, dport), now)
            except OSError:
                if sock.local != bound:  # the failed connect leaves the bind as it was
                    self._remove(sock)
                    sock.local = bound
                    self._add(sock)
                raise
        sock.local = (src, 0)
        port, reused = self._pick_connect(src, (dst, dport), now, tw_reuse)
        sock.local = (src, port)
        self._add(sock)
        return reused

    def _check_bound_tuple(self, sock: TcpSocket, remote: tuple[bytes, int],
                           now: float) -> TimeWait | None:
        """An explicitly bound port connecting to ``remote``: the 4-tuple must be free.

        Linux's ``__inet_check_established`` without a TIME-WAIT pointer: a TIME-WAIT
        record holding the 4-tuple is taken over at once when timestamps were in use on
        it, whatever ``tw_reuse`` says (the application asked for this port with
        SO_REUSEADDR); any other holder - a live connection, a record without timestamps
        - makes the connect fail with EADDRNOTAVAIL."""
        assert sock.local is not None
        addr = sock.local[0]
        for other in self.by_port.get(sock.local[1], ()):
            if other is sock or other.remote != remote or other.local is None:
                continue
            if other.local[0] != addr:
                continue
            if isinstance(other, TimeWait) and other.state is TcpState.TIME_WAIT and other.ts_ok:
                other.take_over(now)
                return other
            raise _error(E.EADDRNOTAVAIL)
        return None

    def _pick(self) -> int:
        """A free port for bind(port=0): one nobody else holds."""
        span = self.high - self.low + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = self.low + (start + i) % span
            if not self.by_port.get(port):
                return port
        raise _error(E.EADDRINUSE)

    def _pick_connect(
        self, addr: bytes, remote: tuple[bytes, int], now: float, tw_reuse: int
    ) -> tuple[int, TimeWait | None]:
        """A port for (addr, ?, remote): free, or shared only with connections to other
        peers (RFC 6056), or held for this 4-tuple only by a TIME-WAIT record that may be
        reused (then retired here and returned)."""
        span = self.high - self.low + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = self.low + (start + i) % span
            users = self.by_port.get(port)
            if not users:
                return port, None
            holder: Holder | None = None
            for o in users:
                if o.remote is None:
                    break  # unconnected or listening on it: never shared
                if o.remote == remote and _covers(o, addr):
                    holder = o  # (one at most: a 4-tuple has one owner)
            else:
                if holder is None:
                    return port, None  # only connections to other peers
                if tw_reuse and isinstance(holder, TimeWait) and holder.reusable(now, tw_reuse):
                    holder.take_over(now)  # frees the port entry and the 4-tuple
                    return port, holder
        raise _error(E.EADDRNOTAVAIL)

    def check_listen(self, sock: TcpSocket) -> None:
        assert sock.local is not None
        for other in self.by_port.get(sock.local[1], ()):
            if other is sock or other.state is not TcpState.LISTEN:
                continue
            if overlap(sock, other) and not (sock.reuseport and other.reuseport):
                raise _error(E.EADDRINUSE)

    def _add(self, sock: TcpSocket) -> None:
        assert sock.local is not None
        self.by_port.setdefault(sock.local[1], []).append(sock)
        sock.bound = True

    def add_child(self, child: TcpSocket) -> None:
        self._add(child)

    def _remove(self, sock: Holder) -> None:
        if sock.local is None:
            return
        users = self.by_port.get(sock.local[1])
        if users and sock in users:
            users.remove(sock)
            if not users:
                del self.by_port[sock.local[1]]

    def release(self, sock: Holder) -> None:
        self._remove(sock)

    def replace(self, sock: TcpSocket, record: TimeWait) -> None:
        """``record`` holds ``sock``'s port from now on (its TIME-WAIT, timewait.py)."""
        if sock.local is None:
            return
        users = self.by_port.get(sock.local[1])
        if users:
            for i, user in enumerate(users):
                if user is sock:
                    users[i] = record
                    return
