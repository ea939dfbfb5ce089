"""A virtual host: an IP stack plus its place in a :class:`~multisock.net.network.Network`.

The host is where sans-IO meets the driver: received packets and timer expiries
enter the stack with the driver's ``now``, and after every operation the host
re-arms one driver timer at the stack's earliest deadline.
"""

from __future__ import annotations

import _socket
import random
import struct
from typing import TYPE_CHECKING, Any

from multisock import net as _net
from multisock.net.impairments import Impairment
from multisock.stack import addresses as A
from multisock.stack.interface import Interface
from multisock.stack.ip import IPStack
from multisock.stack.ping import PingStack
from multisock.stack.tcp import TcpStack
from multisock.stack.udp import UdpStack

if TYPE_CHECKING:
    from multisock.net.driver import Driver, TimerHandle
    from multisock.net.network import Network
    from multisock.net.pcap import PcapWriter
    from multisock.security import Security
    from multisock.security.firewall import Firewall
    from multisock.security.nat import Nat


def _build_stack(name: str, rng: random.Random, tcp_rng: random.Random, now: float) -> IPStack:
    """The host's protocol stack: IP, with UDP, ping and TCP registered in its slots (the
    IP layer imports no transport: the transports sit above it and register with it)."""
    ip = IPStack(name, rng=rng)
    ip.udp = UdpStack(ip, rng)
    ip.ping = PingStack(ip, rng)
    ip.now = now
    ip.tcp = TcpStack(ip, rng=tcp_rng)
    return ip


class Host:
    def __init__(
        self,
        net: Network,
        name: str,
        addresses: tuple[str, ...],
        *,
        forwarding: bool = False,
        mtu: int | None = None,
    ) -> None:
        self.net = net
        self.name = name
        self.hostname: str | None = None  # sethostname()'s; gethostname() falls back to name
        self.driver: Driver = net.driver
        self.ip = _build_stack(name, net.derive_rng("host", name), net.derive_rng("tcp", name),
                               self.driver.now())
        self.ip.forwarding = forwarding
        self.loopback = self.ip.interfaces[0]
        self.loopback_impairment = Impairment(net.derive_rng("lo", name))
        self.loopback.transmit = self._loopback_transmit
        self.loopback.transmit_split = self._loopback_transmit_split
        self._loopback_taps: list[Any] = []
        self._armed: TimerHandle | None = None
        self._armed_at: float | None = None
        self._seen_pushes = -1  # TimerHeap.pushes + reassemblies when last computed
        self._nothing_due = False  # that computation found no deadline at all
        self._rearm_callback = self.rearm  # one bound method, queued after each operation
        self._attached: set[str] = set()
        self.hosts_table: Any = None  # a multisock.hosts.HostsTable, consulted before DNS
        self.resolver: Any = None  # a DNS stub resolver over this host's own UDP
        self._security: Security | None = None  # made on first use (see ``security``)
        eth0 = self.ip.add_interface("eth0", mtu=mtu or net.default_mtu)
        for cidr in addresses:
            self.ip.add_address(eth0, cidr)

    # ------------------------------------------------------------ the network

    @property
    def interfaces(self) -> list[Interface]:
        return self.ip.interfaces

    def free_interface(self, mtu: int) -> Interface:
        """The first interface not yet plugged into a link (a new ``ethN`` if none)."""
        for iface in self.ip.interfaces:
            if not iface.loopback and iface.name not in self._attached:
                iface.mtu = mtu
                self._attached.add(iface.name)
                return iface
        iface = self.ip.add_interface(f"eth{len(self.ip.interfaces) - 1}", mtu=mtu)
        self._attached.add(iface.name)
        return iface

    def receive(self, packet: bytes, iface: Interface, now: float, verify: bool = False) -> None:
        """A packet arrives from a link (driver lock held); ``verify``: its link did not
        vouch for its checksums (IPStack.input)."""
        self.ip.input(packet, iface, now, verify)
        self.driver.after_drain(self._rearm_callback)

    def receive_split(self, head: bytes, payload: bytes | memoryview, iface: Interface,
                      now: float) -> None:
        """``receive`` of a packet as its headers and its payload (``HostPort.deliver_split``)."""
        self.ip.input_split(head, payload, iface, now)
        self.driver.after_drain(self._rearm_callback)

    def _loopback_transmit(self, packet: bytes, next_hop: bytes, now: float) -> None:
        for tap in self._loopback_taps:
            tap(packet)
        impairment = self.loopback_impairment
        if impairment.is_ideal:
            self.driver.call_soon(self._loop_arrive, packet)
            return
        for when, copy in impairment.offer(packet, now):
            if when <= now:
                self.driver.call_soon(self._loop_arrive, copy)
            else:
                self.driver.call_at(when, self._loop_arrive, copy)

    def _loop_arrive(self, packet: bytes) -> None:
        self.receive(packet, self.loopback, self.driver.now())

    def _loopback_transmit_split(self, head: bytes, payload: bytes | memoryview,
                                 next_hop: bytes, now: float) -> None:
        """The loopback's ``Interface.transmit_split``: with no capture and no impairment the
        payload arrives as it is, for the reasons ``net.link.Direction.send_split`` gives;
        anything else is joined into a packet and takes ``_loopback_transmit``."""
        if self._loopback_taps or not self.loopback_impairment.is_ideal:
            self._loopback_transmit(b"".join((head, payload)), next_hop, now)
            return
        self.driver.call_soon(self._loop_arrive_split, head, payload)

    def _loop_arrive_split(self, head: bytes, payload: bytes | memoryview) -> None:
        self.receive_split(head, payload, self.loopback, self.driver.now())

    def impair_loopback(self, **impairments: Any) -> None:
        """Give this host's loopback the same impairments a link can have."""
        with self.driver.lock:
            self.loopback_impairment.set(**impairments)
            self.loopback.trusted = self.loopback_impairment.corrupt == 0

    def capture_loopback(self, writer: PcapWriter) -> None:
        wall = self.driver.wall  # time.time(), or a virtual network's own clock
        self._loopback_taps.append(lambda packet: writer.write(packet, wall()))

    # ----------------------------------------------------------------- timers

    def touch(self) -> float:
        """Called by every socket operation (lock held): sets the stack's clock and
        makes sure the host's timer is re-armed once the operation's work drains."""
        driver = self.driver
        now = self.ip.now = driver.clock()
        driver.after_drain(self._rearm_callback)
        return now

    def rearm(self) -> None:
        """Point the host's one driver timer at the stack's earliest deadline.

        Runs after every operation, so the common case must cost nothing: a deadline can
        only move earlier through a new TCP timer-heap entry or a new reassembly, so while
        neither count has moved since the last look, the armed timer (or the knowledge that
        nothing is due) still stands."""
        ip = self.ip
        tcp: TcpStack | None = ip.tcp  # (typed: compiled code reads its timers natively)
        seen = (tcp.timers.pushes if tcp is not None else 0) + ip.reassembly4.started \
            + ip.reassembly6.started
        if seen == self._seen_pushes and (self._armed_at is not None or self._nothing_due):
            return
        self._seen_pushes = seen
        deadline = ip.next_deadline()
        self._nothing_due = deadline is None
        if deadline is None:
            return
        if self._armed_at is not None and self._armed_at <= deadline:
            return
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = deadline
        self._armed = self.driver.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._armed = None
        self._armed_at = None
        now = self.driver.now()
        self.ip.on_timer(now)
        self.driver.after_drain(self._rearm_callback)

    # ------------------------------------------------------------------ config

    def add_address(self, cidr: str, iface: str = "eth0") -> None:
        with self.driver.lock:
            self.ip.add_address(self.ip.interface(iface), cidr)

    def add_route(self, cidr: str, *, via: str | None = None, dev: str | None = None,
                  metric: int = 0) -> None:
        with self.driver.lock:
            self.ip.add_route(cidr, via=via, dev=dev, metric=metric)

    @property
    def security(self) -> Security:
        """Conntrack, firewall, NAT, detectors and IDS of this host (``docs/security.md``).
        Made on first use; it hooks into the stack only once something is configured."""
        if self._security is None:
            # imported here: a host without a firewall loads none of the security layer
            from multisock.security import Security

            self._security = Security(self.ip, self.driver.lock)
        return self._security

    @property
    def firewall(self) -> Firewall:
        """``add_rule(chain, action, **match)``, ``set_policy``, ``rules()``, ``clear()``."""
        return self.security.firewall

    @property
    def nat(self) -> Nat:
        """``masquerade(out, source=CIDR)``, ``forward_port(proto, port, address, port)``."""
        return self.security.nat

    @property
    def forwarding(self) -> bool:
        return self.ip.forwarding

    @forwarding.setter
    def forwarding(self, value: bool) -> None:
        self.ip.forwarding = value

    def attach_tun(
        self, name: str, addrs: list[str], peers: list[str], *, mtu: int = 1500,
        default_route: bool = True, offload: bool = True,
    ) -> Any:
        """Plug this host into the real kernel through TUN device ``name`` (needs root);
        ``offload``: large TCP segments and checksum offload with the kernel (net/tun.py)."""
        from multisock.net.tun import TunLink

        return TunLink(self, name, addrs, peers, mtu=mtu, default_route=default_route,
                       offload=offload)

    def addresses(self) -> list[str]:
        return [A.unpack(a) for iface in self.ip.interfaces if not iface.loopback
                for a, _ in iface.addresses]

    # ----------------------------------------------------------------- sockets

    def socket(self, family: int = A.AF_INET, type: int = 1, proto: int = 0) -> Any:
        """A socket living on this host: the same class ``multisock.socket.socket`` is."""
        factory = _net.socket_factory
        assert factory is not None, "multisock/__init__.py registers it before net is imported"
        return factory(family, type, proto, host=self)

    def ping(self, dst: str, timeout: float = 1.0, size: int = 56) -> float:
        """One ICMP echo to ``dst``; returns the round-trip time in seconds.

        Raises ``TimeoutError`` when no reply arrives in ``timeout`` seconds and
        ``OSError`` (ENETUNREACH...) when the request cannot be sent.
        """
        target = A.pack(dst)
        family = A.family_of(target)
        proto = 1 if family == A.AF_INET else 58
        echo_type = 8 if family == A.AF_INET else 128
        with self.socket(family, _socket.SOCK_DGRAM, proto) as sock:
            sock.settimeout(timeout)
            seq = self.ip.rng.randrange(65536)
            payload = bytes(range(256)) * (size // 256 + 1)
            message = struct.pack("!BBHHH", echo_type, 0, 0, 0, seq) + payload[:size]
            start = self.driver.now()
            sock.sendto(message, (dst, 0))
            deadline = start + timeout
            while True:
                remaining = deadline - self.driver.now()
                if remaining <= 0:
                    raise TimeoutError("ping timed out")
                sock.settimeout(remaining)
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    raise TimeoutError("ping timed out") from None
                if len(data) >= 8 and int.from_bytes(data[6:8], "big") == seq:
                    return self.driver.now() - start

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ip": dict(self.ip.counters), "udp": dict(self.ip.udp.counters)}
        if self.ip.tcp is not None:
            out["tcp"] = dict(self.ip.tcp.counters)
        out["interfaces"] = {i.name: dict(i.counters) for i in self.ip.interfaces}
        return out

    def __repr__(self) -> str:
        return f"<Host {self.name} {' '.join(self.addresses())}>"
