"""UDP through the gateway: datagrams no virtual socket wanted, relayed by kernel sockets.

Each virtual (source address, port) gets one kernel UDP socket (slirp's and passt's
mapping): the datagram goes out from it to where the relay's ``target`` maps the
destination, and whatever arrives on it comes back to that virtual source, from the address
the kernel saw it come from (the loopback seen as the gateway). A flow idle for
``timeout`` seconds closes its kernel socket. ICMP errors reach the kernel socket through
``IP_RECVERR`` and go back as ICMP port/host unreachable quoting the datagram, so a
*connected* virtual UDP socket gets ECONNREFUSED as on the kernel.

Inbound, :class:`UdpPublisher` is a kernel UDP port whose datagrams are sent into the
virtual network, one virtual socket per kernel client so replies find their way back.
"""

from __future__ import annotations

import _socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multisock.gateway import kernel
from multisock.stack import addresses as A
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6
from multisock.wire import udp as udp_wire

if TYPE_CHECKING:
    from multisock.net.driver import TimerHandle
    from multisock.net.host import Host

IP_RECVERR = 11  # linux/in.h (not exported by _socket)
IPV6_RECVERR = 25  # linux/in6.h
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
DEFAULT_TIMEOUT = 180.0  # passt's UDP flow timeout
DATAGRAMS_PER_WAKEUP = 64  # bounded work per readiness callback
MAX_DATAGRAM = 65535

# target(dst, port) -> (family, sockaddr) | None (not relayed)
Target = Callable[[bytes, int], Any]
# back(kernel address packed) -> the address the reply seems to come from, virtually
Back = Callable[[bytes], bytes]


class UdpFlow:
    """One virtual (address, port) and its kernel UDP socket."""

    __slots__ = ("relay", "src", "sport", "k", "fd", "last", "timer", "sent", "received")

    def __init__(self, relay: UdpRelay, src: bytes, sport: int, ksock: Any) -> None:
        self.relay = relay
        self.src = src
        self.sport = sport
        self.k = ksock
        self.fd: int = ksock.fileno()
        self.last = relay.driver.now()
        self.timer: TimerHandle | None = None
        self.sent = self.received = 0

    def arm(self) -> None:
        self.timer = self.relay.driver.call_at(self.last + self.relay.timeout, self._idle)

    def _idle(self) -> None:
        """Expire when idle; otherwise look again when the latest use would expire."""
        if self.relay.driver.now() - self.last >= self.relay.timeout:
            self.relay.counters["expired"] += 1
            self.relay._close(self)
        else:
            self.arm()

    def readable(self) -> None:
        relay = self.relay
        host = relay.host
        now = host.touch()
        self._errors(now)
        for _ in range(DATAGRAMS_PER_WAKEUP):
            try:
                data, address = self.k.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._errors(now)
                return
            self.last = now
            self.received += 1
            peer = relay.back(A.pack(address[0]))
            header = udp_wire.build(int(address[1]), self.sport, len(data))
            try:
                host.ip.output(peer, self.src, ipv4.PROTO_UDP, header, data,
                               csum_offset=udp_wire.CHECKSUM_OFFSET)
            except OSError:
                relay.counters["undeliverable"] += 1

    def _errors(self, now: float) -> None:
        """ICMP errors the kernel queued (IP_RECVERR): passed back quoting our datagram."""
        for _ in range(DATAGRAMS_PER_WAKEUP):
            try:
                data, ancillary, _flags, address = self.k.recvmsg(512, 512, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            for level, kind, blob in ancillary:
                if (level, kind) not in ((_socket.IPPROTO_IP, IP_RECVERR),
                                         (_socket.IPPROTO_IPV6, IPV6_RECVERR)):
                    continue
                if len(blob) < _EXTENDED_ERR.size or address is None:
                    continue
                _err, origin, type_, code, _pad, _info, _d = _EXTENDED_ERR.unpack_from(blob)
                if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
                    continue
                self.relay.icmp_back(self, A.pack(address[0]), int(address[1]), type_, code,
                                     bytes(data))


class UdpRelay:
    """Relays one host's socket-less UDP datagrams to kernel sockets (see module doc)."""

    def __init__(self, host: Host, target: Target, back: Back, *,
                 timeout: float = DEFAULT_TIMEOUT, max_flows: int = 4096) -> None:
        self.host = host
        self.driver: Any = host.driver
        self.target = target
        self.back = back
        self.timeout = timeout
        self.max_flows = max_flows
        self.flows: dict[tuple[bytes, int], UdpFlow] = {}
        self.counters: dict[str, int] = {"flows": 0, "expired": 0, "out": 0, "dropped": 0,
                                         "undeliverable": 0, "icmp": 0}
        with self.driver.lock:
            host.ip.udp.no_socket = self._no_socket

    def _no_socket(self, src: bytes, dst: bytes, sport: int, dport: int,
                   payload: memoryview) -> bool:
        target = self.target(dst, dport)
        if target is None:
            return False  # port unreachable, as without a gateway
        family, address = target
        flow = self.flows.get((src, sport))
        if flow is None or flow.k.family != family:
            if flow is not None:
                self._close(flow)
            if len(self.flows) >= self.max_flows:
                self.counters["dropped"] += 1
                return True
            try:
                ksock = kernel.open_socket(family, _socket.SOCK_DGRAM)
            except OSError:
                self.counters["dropped"] += 1
                return True
            if family == _socket.AF_INET:
                ksock.setsockopt(_socket.IPPROTO_IP, IP_RECVERR, 1)
            else:
                ksock.setsockopt(_socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            flow = self.flows[(src, sport)] = UdpFlow(self, src, sport, ksock)
            self.counters["flows"] += 1
            self.driver.add_reader(flow.fd, flow.readable)
            flow.arm()
        flow.last = self.driver.now()
        try:
            flow.k.sendto(payload, address)
            flow.sent += 1
            self.counters["out"] += 1
        except (BlockingIOError, InterruptedError):
            self.counters["dropped"] += 1  # a full kernel buffer loses it, as a NIC would
        except OSError:
            flow.readable()  # an error queued by an earlier datagram
        return True

    def icmp_back(self, flow: UdpFlow, dst_real: bytes, dport: int, type_: int, code: int,
                  data: bytes) -> None:
        """The kernel's ICMP error about ``flow``'s datagram to ``dst_real``: the same error
        to the virtual sender, from the destination it used, quoting its datagram."""
        self.counters["icmp"] += 1
        dst = self.back(dst_real)
        src = flow.src
        if len(dst) != len(src):
            return
        datagram = udp_wire.build(flow.sport, dport, len(data)) + data[:64]
        try:
            if len(src) == 4:
                quoted = ipv4.build(src, dst, ipv4.PROTO_UDP, len(datagram)) + datagram
                message = icmpv4.build_error(type_, code, quoted)
                self.host.ip.output(dst, src, ipv4.PROTO_ICMP, message)
            else:
                quoted = ipv6.build(src, dst, ipv6.UDP, len(datagram)) + datagram
                message = icmpv6.build_error(type_, code, quoted)
                self.host.ip.output(dst, src, 58, message, csum_offset=icmpv6.CHECKSUM_OFFSET)
        except OSError:
            pass

    def _close(self, flow: UdpFlow) -> None:
        if self.flows.get((flow.src, flow.sport)) is flow:
            del self.flows[(flow.src, flow.sport)]
        if flow.timer is not None:
            flow.timer.cancel()
        self.driver.remove_reader(flow.fd)
        flow.k.close()

    def close(self) -> None:
        with self.driver.operation():
            for flow in list(self.flows.values()):
                self._close(flow)
            if self.host.ip.udp.no_socket == self._no_socket:
                self.host.ip.udp.no_socket = None


class UdpPublisher:
    """Kernel UDP ``bind_addr:host_port`` -> virtual ``host``'s ``(virtual_addr, port)``:
    one virtual socket per kernel client, its replies sent back from the published port."""

    def __init__(self, host: Host, bind_addr: str, host_port: int, virtual_addr: str,
                 port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.driver: Any = host.driver
        self.target = (virtual_addr, port)
        self.timeout = timeout
        family = _socket.AF_INET6 if ":" in bind_addr else _socket.AF_INET
        ksock = kernel.open_socket(family, _socket.SOCK_DGRAM)
        try:
            if family == _socket.AF_INET6:
                ksock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
            ksock.bind((bind_addr, host_port))
        except OSError:
            ksock.close()
            raise
        self.k = ksock
        self.address = ksock.getsockname()
        self.clients: dict[Any, tuple[Any, float]] = {}  # kernel client -> (virtual socket, last)
        self.driver.add_reader(ksock.fileno(), self._readable)
        self._sweep: TimerHandle | None = None

    @property
    def port(self) -> int:
        return int(self.address[1])

    def _readable(self) -> None:
        udp = self.host.ip.udp
        vfamily = _socket.AF_INET6 if ":" in self.target[0] else _socket.AF_INET
        vaddr = A.pack(self.target[0])
        now = self.host.touch()
        for _ in range(DATAGRAMS_PER_WAKEUP):
            try:
                data, client = self.k.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error about a reply: nothing to tell anyone
            entry = self.clients.get(client)
            if entry is None:
                ep = udp.endpoint(vfamily)
                try:
                    udp.connect(ep, vaddr, self.target[1])
                except OSError:
                    udp.close(ep)
                    return
                ep.on_change = self._replies(ep, client)
            else:
                ep = entry[0]
            self.clients[client] = (ep, now)
            try:
                udp.sendto(ep, data, vaddr, self.target[1])
            except OSError:
                pass
            if self._sweep is None:
                self._sweep = self.driver.call_at(now + self.timeout, self._expire)

    def _replies(self, ep: Any, client: Any) -> Callable[[], None]:
        """Replies from the virtual server go back to ``client`` from the published port."""

        def changed() -> None:
            ep.take_error()  # an ICMP error about a datagram of ours: dropped, as UDP would
            while (item := ep.pop()) is not None:
                try:
                    self.k.sendto(item[0], client)
                except OSError:
                    pass

        return changed

    def _expire(self) -> None:
        self._sweep = None
        now = self.driver.now()
        for client, (ep, last) in list(self.clients.items()):
            if now - last >= self.timeout:
                del self.clients[client]
                self.host.ip.udp.close(ep)
        if self.clients:
            self._sweep = self.driver.call_at(now + self.timeout, self._expire)

    def close(self) -> None:
        with self.driver.operation():
            self.driver.remove_reader(self.k.fileno())
            self.k.close()
            for ep, _ in self.clients.values():
                self.host.ip.udp.close(ep)
            self.clients.clear()
