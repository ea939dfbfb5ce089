"""The public, scriptable in-process network: hosts, links, switches, capture.

Determinism: every random decision (impairments, ISNs, ephemeral ports) comes
from a ``random.Random`` derived from the network seed and a stable label
(``derive_rng("link", "3", "a->b")``), so adding a host does not change the fate
of packets on an existing link, and the same seed replays the same run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from multisock import net as _net
from multisock.net.backends import make_driver
from multisock.net.driver import TimerHandle
from multisock.net.host import Host
from multisock.net.link import Direction, HostPort, Link, LinkEnd
from multisock.net.switch import Switch, SwitchPort
from multisock.net.units import parse_duration
from multisock.stack.interface import Interface

if TYPE_CHECKING:
    from multisock.net.pcap import PcapWriter


class Network:
    """An in-process virtual network with its own driver (lock, timers, thread or gevent hub)."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        mtu: int = 65535,
        clock: Callable[[], float] = time.monotonic,
        name: str = "net",
        backend: str | None = None,
    ) -> None:
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.default_mtu = mtu
        self.name = name
        self.driver = make_driver(clock, name, backend)  # threads or gevent: net.backends
        self.hosts: dict[str, Host] = {}
        self.switches: dict[str, Switch] = {}
        self.links: list[Link] = []
        self._captures: list[PcapWriter] = []
        self.gateways: list[Any] = []

    # ---------------------------------------------------------------- timeline

    def now(self) -> float:
        """Seconds since the network was made, on its driver's clock (virtual or real)."""
        return self.driver.now() - self.driver.origin

    def at(self, t: float | str, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Call ``callback(*args)`` at time ``t`` of the network (seconds since it was made,
        or a duration such as ``"20s"``), on the driver with its lock held; a fault schedule
        (``net.at(20, link.down)``). A time already past runs at the next timer pass. An
        exception is recorded in ``driver.errors`` (a simulation reports it)."""
        when = self.driver.origin + parse_duration(t)
        with self.driver.lock:
            return self.driver.call_at(when, callback, *args)

    def derive_rng(self, *labels: str) -> random.Random:
        return random.Random(f"{self.seed}/" + "/".join(labels))

    # --------------------------------------------------------------- topology

    def add_host(
        self, name: str, *addresses: str, forwarding: bool = False, mtu: int | None = None
    ) -> Host:
        """A host with ``eth0`` carrying ``addresses`` (CIDR strings) and a loopback."""
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        with self.driver.lock:
            host = Host(self, name, addresses, forwarding=forwarding, mtu=mtu)
            self.hosts[name] = host
            for writer in self._captures:
                host.capture_loopback(writer)
        return host

    def add_router(self, name: str, *addresses: str, mtu: int | None = None) -> Host:
        """A host that forwards between its interfaces."""
        return self.add_host(name, *addresses, forwarding=True, mtu=mtu)

    def add_switch(self, name: str | None = None) -> Switch:
        name = name or f"sw{len(self.switches)}"
        switch = Switch(name)
        self.switches[name] = switch
        return switch

    def add_gateway(self, name: str = "gateway", **options: Any) -> Any:
        """A host gateway (``multisock.gateway.Gateway``, slirp's model): attach hosts with
        ``gateway.attach(host, **impairments)``; flows to addresses outside the virtual
        network leave through kernel sockets, 10.0.2.2 / fd00::2 reach the kernel's
        loopback, ``gateway.publish(...)`` lets kernel clients in. See docs/gateway.md."""
        factory = _net.gateway_factory
        assert factory is not None, "multisock/__init__.py registers it before net is imported"
        gateway = factory(self, name, **options)
        self.gateways.append(gateway)
        return gateway

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def link(
        self,
        a: Host | Switch,
        b: Host | Switch,
        *,
        mtu: int | None = None,
        a_addr: str | list[str] | None = None,
        b_addr: str | list[str] | None = None,
        **impairments: Any,
    ) -> Link:
        """Wire ``a`` to ``b``; impairments (delay, jitter, loss, reorder, duplicate,
        corrupt, rate, queue) apply to each direction independently."""
        if isinstance(a, Switch) and isinstance(b, Switch):
            raise ValueError("switch-to-switch links are not supported")
        mtu = mtu or self.default_mtu
        with self.driver.lock:
            index = str(len(self.links))
            end_a, iface_a = self._end(a, mtu, a_addr)
            end_b, iface_b = self._end(b, mtu, b_addr)
            link = Link(
                self.driver,
                end_a,
                end_b,
                self.derive_rng("link", index, "a->b"),
                self.derive_rng("link", index, "b->a"),
                mtu,
                impairments,
                (iface_a, iface_b),
            )
            self._wire(end_a, iface_a, link.a_to_b)
            self._wire(end_b, iface_b, link.b_to_a)
            if isinstance(end_a, SwitchPort):
                end_a.peer_interface = iface_b
            if isinstance(end_b, SwitchPort):
                end_b.peer_interface = iface_a
            for writer in self._captures:
                link.capture(writer)
            self.links.append(link)
        return link

    def _end(
        self, node: Host | Switch, mtu: int, addrs: str | list[str] | None
    ) -> tuple[LinkEnd, Interface | None]:
        if isinstance(node, Switch):
            return node.new_port(), None
        iface = node.free_interface(mtu)
        for cidr in [addrs] if isinstance(addrs, str) else (addrs or []):
            node.ip.add_address(iface, cidr)
        return HostPort(node, iface), iface

    @staticmethod
    def _wire(end: LinkEnd, iface: Interface | None, outgoing: Direction) -> None:
        """Packets leaving ``end`` (a host interface or a switch port) take ``outgoing``."""
        if iface is not None:
            iface.transmit = outgoing.send
            iface.transmit_split = (outgoing.send_split if isinstance(outgoing.target, HostPort)
                                    else None)
        if isinstance(end, SwitchPort):
            end.out = outgoing

    # ---------------------------------------------------------------- capture

    def capture(self, target: str | IO[bytes]) -> PcapWriter:
        """Record every link (and every loopback) into one pcap file."""
        from multisock.net.pcap import PcapWriter  # here: most networks never capture

        writer = PcapWriter(target)
        with self.driver.lock:
            self._captures.append(writer)
            for link in self.links:
                link.capture(writer)
            for host in self.hosts.values():
                host.capture_loopback(writer)
        return writer

    # --------------------------------------------------------------- lifetime

    def close(self) -> None:
        for gateway in self.gateways:
            gateway.close()
        self.gateways.clear()
        self.driver.close()
        for writer in self._captures:
            writer.close()
        self._captures.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Network seed={self.seed} hosts={list(self.hosts)} links={len(self.links)}>"
