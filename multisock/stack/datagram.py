"""Datagram endpoints: the sans-IO state behind UDP and ICMP ping sockets.

An endpoint is a bounded queue of received datagrams plus addressing and a
pending error. The socket facade reads it under the network lock and waits on
``on_change``; the protocol stacks (``udp.py``, ``ping.py``) fill it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from multisock.stack.addresses import AF_INET

DEFAULT_RCVBUF = 212992  # Linux net.core.rmem_default
DEFAULT_SNDBUF = 212992
# What Linux charges per queued datagram beyond its payload (skb truesize overhead,
# roughly); keeps a flood of tiny datagrams from queueing unboundedly.
PER_DATAGRAM_OVERHEAD: Final = 256


RECV_HOPLIMIT = 1  # IP_RECVTTL / IPV6_RECVHOPLIMIT
RECV_TCLASS = 2  # IP_RECVTOS / IPV6_RECVTCLASS
RECV_PKTINFO = 4  # IP_PKTINFO / IPV6_RECVPKTINFO


class Meta(NamedTuple):
    """The IP header fields of one received datagram that ancillary data can report, and
    the interface it arrived on (IP_PKTINFO's index)."""

    ttl: int
    tos: int
    dst: bytes = b""
    ifindex: int = 0


class DatagramEndpoint:
    """State shared by UDP and ping sockets."""

    __slots__ = (
        "family",
        "local",
        "remote",
        "queue",
        "queued_bytes",
        "rcvbuf",
        "sndbuf",
        "pending_error",
        "on_change",
        "closed",
        "reuseaddr",
        "reuseport",
        "broadcast",
        "v6only",
        "ttl",
        "tos",
        "multicast_ttl",
        "multicast_loop",
        "multicast_if",
        "memberships",
        "counters",
        "shut_rd",
        "shut_wr",
        "recv_meta",
    )

    def __init__(self, family: int) -> None:
        self.family = family
        self.local: tuple[bytes, int] | None = None
        self.remote: tuple[bytes, int] | None = None
        # (payload, (source address, source port or ident), truncated-origin length)
        self.queue: deque[tuple[bytes, tuple[bytes, int], Meta | None]] = deque()
        self.queued_bytes = 0
        self.rcvbuf = DEFAULT_RCVBUF
        self.sndbuf = DEFAULT_SNDBUF
        self.pending_error = 0
        self.on_change: Callable[[], None] | None = None
        self.closed = False
        self.reuseaddr = False
        self.reuseport = False
        self.broadcast = False
        self.v6only = False
        self.ttl: int | None = None
        self.tos = 0
        self.multicast_ttl = 1
        self.multicast_loop = True
        # IP_MULTICAST_IF / IPV6_MULTICAST_IF: (the interface, the address it was named by)
        self.multicast_if: tuple[Any, bytes] | None = None
        # the groups this socket joined, as (group, interface); None until the first join
        self.memberships: list[tuple[bytes, Any]] | None = None
        self.shut_rd = False
        self.shut_wr = False
        # which per-datagram IP header fields recvmsg() reports (IP_RECVTTL/IPV6_RECVHOPLIMIT,
        # IP_RECVTOS/IPV6_RECVTCLASS): a set of RECV_* bits
        self.recv_meta = 0
        self.counters = {"rx": 0, "tx": 0, "rx_dropped": 0}

    @property
    def is_v4(self) -> bool:
        return self.family == AF_INET

    def deliver(self, data: bytes, source: tuple[bytes, int], meta: Meta | None = None) -> bool:
        """Queue one received datagram; False (and counted) when the receive buffer is full."""
        if self.closed or self.shut_rd:
            return False
        cost = len(data) + PER_DATAGRAM_OVERHEAD
        if self.queued_bytes + cost > self.rcvbuf and self.queue:
            self.counters["rx_dropped"] += 1
            return False
        self.queue.append((data, source, meta if self.recv_meta else None))
        self.queued_bytes += cost
        self.counters["rx"] += 1
        self.changed()
        return True

    def pop(self, peek: bool = False) -> tuple[bytes, tuple[bytes, int], Meta | None] | None:
        if not self.queue:
            return None
        if peek:
            return self.queue[0]
        item = self.queue.popleft()
        self.queued_bytes -= len(item[0]) + PER_DATAGRAM_OVERHEAD
        return item

    def set_error(self, err: int) -> None:
        self.pending_error = err
        self.changed()

    def take_error(self) -> int:
        err, self.pending_error = self.pending_error, 0
        return err

    def changed(self) -> None:
        callback = self.on_change
        if callback is not None:
            callback()

    @property
    def readable(self) -> bool:
        return bool(self.queue) or self.pending_error != 0 or self.shut_rd or self.closed

    @property
    def writable(self) -> bool:
        return True
