"""ICMP echo through the gateway: a ping from a virtual host to a real address.

The gateway host is transparent (it takes every packet, whatever its destination), so
without this relay its IP stack would answer every echo request itself - a fake reply from
addresses that may not exist. :class:`IcmpRelay` takes the echo requests instead (the IP
stack's ``echo_hook``) and sends each through a kernel *ping socket* (``SOCK_DGRAM`` +
``IPPROTO_ICMP``/``IPPROTO_ICMPV6``, what slirp4netns and passt use): no root needed, but
the kernel lets only the groups in ``net.ipv4.ping_group_range`` open one. One kernel
socket per virtual (source, echo identifier); the kernel puts its own identifier on the
wire, replies are given back the virtual one.

When the kernel refuses the ping socket (EACCES: our group is outside the range), nothing
is answered - except the gateway's own address, which stands for the kernel's loopback,
and the loopback always answers: the gateway node replies itself there.
"""

from __future__ import annotations

import _socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from multisock.gateway import kernel
from multisock.stack import addresses as A
from multisock.wire import icmpv4, icmpv6, ipv4

if TYPE_CHECKING:
    from multisock.gateway.plan import AddressPlan
    from multisock.net.driver import TimerHandle
    from multisock.net.host import Host

TIMEOUT = 60.0  # an echo flow idle this long closes its kernel socket (passt's ICMP timeout)
REPLIES_PER_WAKEUP = 64  # bounded work per readiness callback
_ECHO = struct.Struct("!BBHHH")
Key = tuple[bytes, int]  # (virtual source, its echo identifier)


class EchoFlow:
    """One virtual (source, identifier) and its kernel ping socket."""

    __slots__ = ("relay", "src", "ident", "k", "fd", "last", "timer", "peer", "sent",
                 "received")

    def __init__(self, relay: IcmpRelay, src: bytes, ident: int, ksock: Any) -> None:
        self.relay = relay
        self.src = src
        self.ident = ident
        self.k = ksock
        self.fd: int = ksock.fileno()
        self.last = relay.driver.now()
        self.timer: TimerHandle | None = None
        self.peer: Any = None
        self.sent = self.received = 0

    def arm(self) -> None:
        self.timer = self.relay.driver.call_at(self.last + self.relay.timeout, self._idle)

    def _idle(self) -> None:
        if self.relay.driver.now() - self.last >= self.relay.timeout:
            self.relay.close_flow(self)
        else:
            self.arm()

    def row(self, state: str = "open") -> dict[str, Any]:
        return {"proto": "icmp", "virtual": (A.unpack(self.src), self.ident, None, None),
                "kernel_peer": self.peer, "to_kernel": self.sent,
                "to_virtual": self.received, "state": state}

    def readable(self) -> None:
        relay = self.relay
        host = relay.host
        host.touch()
        for _ in range(REPLIES_PER_WAKEUP):
            try:
                data, address = self.k.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error about our request: the ping just gets no reply
            if len(data) < _ECHO.size:
                continue
            type_, _code, _csum, _kident, seq = _ECHO.unpack_from(data)
            if type_ not in (icmpv4.ECHO_REPLY, icmpv6.ECHO_REPLY):
                continue
            self.last = relay.driver.now()
            self.received += 1
            relay.counters["replies"] += 1
            peer = relay.plan.virtual_address(A.pack(address[0]))
            try:
                if len(self.src) == 4:
                    reply = icmpv4.build_echo(icmpv4.ECHO_REPLY, self.ident, seq, data[8:])
                    host.ip.output(peer, self.src, ipv4.PROTO_ICMP, reply)
                else:
                    reply = icmpv6.build_echo(icmpv6.ECHO_REPLY, self.ident, seq, data[8:])
                    host.ip.output(peer, self.src, 58, reply,
                                   csum_offset=icmpv6.CHECKSUM_OFFSET)
            except OSError:
                pass


class IcmpRelay:
    """Relays the gateway host's echo requests to kernel ping sockets (see module doc)."""

    def __init__(self, host: Host, plan: AddressPlan, *, timeout: float = TIMEOUT,
                 max_flows: int = 1024) -> None:
        self.host = host
        self.driver: Any = host.driver
        self.plan = plan
        self.timeout = timeout
        self.max_flows = max_flows
        self.flows: dict[Key, EchoFlow] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)
        self.counters: dict[str, int] = {"requests": 0, "replies": 0, "denied": 0,
                                         "dropped": 0}
        with self.driver.lock:
            host.ip.echo_hook = self._echo

    def _echo(self, src: bytes, dst: bytes, ident: int, seq: int, data: bytes) -> bool:
        """The IP stack's hook: True when the request is taken (relayed or dropped)."""
        real = self.plan.kernel_address(dst)
        local = self.host.ip.is_local_address(dst)
        if real is None or A.is_multicast(dst) or A.is_v4_broadcast(dst):
            return not local  # virtual-only or multicast: never faked, never relayed
        flow = self.flows.get((src, ident))
        if flow is None:
            if len(self.flows) >= self.max_flows:
                self.counters["dropped"] += 1
                return True
            six = len(real) == 16
            try:
                ksock = kernel.open_socket(
                    _socket.AF_INET6 if six else _socket.AF_INET, _socket.SOCK_DGRAM,
                    _socket.IPPROTO_ICMPV6 if six else _socket.IPPROTO_ICMP)
            except OSError:
                # EACCES outside net.ipv4.ping_group_range (or out of fds): the loopback
                # the gateway address stands for would answer; anything else gets nothing
                self.counters["denied"] += 1
                return not local
            flow = self.flows[(src, ident)] = EchoFlow(self, src, ident, ksock)
            self.driver.add_reader(flow.fd, flow.readable)
            flow.arm()
        flow.last = self.driver.now()
        echo_type = icmpv6.ECHO_REQUEST if len(real) == 16 else icmpv4.ECHO_REQUEST
        message = _ECHO.pack(echo_type, 0, 0, 0, seq) + data  # the kernel sets id, checksum
        _family, address = kernel.sockaddr(real, 0)
        flow.peer = address
        try:
            flow.k.sendto(message, address)
            flow.sent += 1
            self.counters["requests"] += 1
        except OSError:
            self.counters["dropped"] += 1  # unreachable from here: the ping gets nothing
        return True

    def rows(self) -> list[dict[str, Any]]:
        return list(self.history) + [flow.row() for flow in self.flows.values()]

    def close_flow(self, flow: EchoFlow) -> None:
        if self.flows.get((flow.src, flow.ident)) is flow:
            del self.flows[(flow.src, flow.ident)]
            self.history.append(flow.row("closed"))
        if flow.timer is not None:
            flow.timer.cancel()
        self.driver.remove_reader(flow.fd)
        flow.k.close()

    def close(self) -> None:
        with self.driver.operation():
            for flow in list(self.flows.values()):
                self.close_flow(flow)
            if self.host.ip.echo_hook == self._echo:
                self.host.ip.echo_hook = None
