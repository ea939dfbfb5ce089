"""The gateway node: a host of the virtual network that relays flows to the real kernel.

``Gateway(net)`` (or ``net.add_gateway()``) adds a host named ``gateway`` whose IP layer is
*transparent* (it takes every packet routed to it, whatever the destination) and whose TCP
stack hands every SYN it has no listener for to a :class:`~multisock.gateway.tcp.TcpRelay`.
Hosts join its LAN with :meth:`Gateway.attach` (an address from the plan, a default route
via the gateway, the link's impairments); :meth:`Gateway.relay_loopback` makes a host's own
127.0.0.1/::1 ports without a listener reach the kernel's loopback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multisock.gateway import plan as P
from multisock.gateway.tcp import TcpRelay
from multisock.gateway.udp import DEFAULT_TIMEOUT, UdpRelay
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.net.link import Link
    from multisock.net.network import Network


class Gateway:
    """A slirp-like gateway on ``net`` (see the module doc and docs/gateway.md)."""

    def __init__(self, net: Network, name: str = "gateway", *, gateway4: str = P.GATEWAY4,
                 gateway6: str = P.GATEWAY6, udp_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.net = net
        self.plan = P.AddressPlan(gateway4, gateway6)
        self.host = net.add_host(name)
        self.host.ip.transparent = True
        self.switch = net.add_switch(f"{name}-lan")
        net.link(self.host, self.switch,
                 a_addr=[f"{gateway4}/{P.PREFIX4}", f"{gateway6}/{P.PREFIX6}"])
        self.tcp = TcpRelay(self.host, self.plan.tcp_target)
        self.udp_timeout = udp_timeout
        self.udp = UdpRelay(self.host, self.plan.udp_target, self.plan.virtual_address,
                            timeout=udp_timeout)
        self.attached: list[Host] = []
        self.loopback_relays: dict[str, tuple[TcpRelay, UdpRelay]] = {}
        self.publishers: list[Any] = []

    def attach(self, host: Host, **impairments: Any) -> Link:
        """Join ``host`` to the gateway's LAN: the next guest addresses, default routes via
        the gateway; ``impairments`` apply to the host's link (both directions)."""
        addr4, addr6 = P.guest_addresses(len(self.attached))
        link = self.net.link(host, self.switch, a_addr=[addr4, addr6], **impairments)
        host.add_route("0.0.0.0/0", via=A.unpack(self.plan.gateway4))
        host.add_route("::/0", via=A.unpack(self.plan.gateway6))
        self.attached.append(host)
        return link

    def relay_loopback(self, host: Host) -> tuple[TcpRelay, UdpRelay]:
        """Connections (and datagrams) to ``host``'s 127.0.0.1/::1 ports where no virtual
        socket listens go to the kernel's loopback (a virtual socket takes precedence)."""
        relays = (TcpRelay(host, P.loopback_target),
                  UdpRelay(host, P.loopback_udp_target, P.same_address, timeout=self.udp_timeout))
        self.loopback_relays[host.name] = relays
        return relays

    def publish(self, host_port: int, virtual_host: Host, port: int | None = None,
                proto: str = "tcp", *, host_ip: str | None = None,
                virtual_addr: str | None = None) -> list[Any]:
        """Listen on the kernel's ``host_ip:host_port`` (127.0.0.1 and ::1 when no address
        is given - never every interface unless asked, unlike docker's default) and relay
        each connection (or datagram, ``proto="udp"``) to ``virtual_host``'s ``port``
        (default: the same number) at ``virtual_addr`` (default: the virtual host's own
        loopback of the same family, so a server bound to 127.0.0.1 is reached too).
        ``host_port`` 0 picks a free port (read it from the returned publishers' ``port``).
        Returns the publishers, one per kernel address."""
        from multisock.gateway.publish import TcpPublisher

        if proto not in ("tcp", "udp"):
            raise ValueError(f"proto must be 'tcp' or 'udp': {proto!r}")
        vport = port if port is not None else host_port
        if not 0 < vport < 65536:
            raise ValueError("give the virtual port when the kernel port is 0")
        made: list[Any] = []
        binds = [host_ip] if host_ip is not None else ["127.0.0.1", "::1"]
        try:
            for bind in binds:
                six = ":" in bind
                target = virtual_addr or ("::1" if six else "127.0.0.1")
                chosen = made[0].port if made and host_port == 0 else host_port
                try:
                    if proto == "tcp":
                        made.append(TcpPublisher(virtual_host, bind, chosen, target,
                                                 vport))
                    else:
                        from multisock.gateway.udp import UdpPublisher

                        made.append(UdpPublisher(virtual_host, bind, chosen, target,
                                                 vport))
                except OSError:
                    if host_ip is None and six and made:
                        continue  # no IPv6 on this machine: 127.0.0.1 alone, like docker
                    raise
        except BaseException:
            for publisher in made:
                publisher.close()
            raise
        self.publishers.extend(made)
        return made

    def close(self) -> None:
        """Close every kernel socket the gateway holds (flows are aborted)."""
        for publisher in self.publishers:
            publisher.close()
        self.publishers.clear()
        self.tcp.close()
        self.udp.close()
        for tcp, udp in self.loopback_relays.values():
            tcp.close()
            udp.close()
        self.loopback_relays.clear()

    def kernel_fds(self) -> int:
        """Kernel sockets open for flows right now (for leak checks)."""
        tcps = [self.tcp, *(t for t, _ in self.loopback_relays.values())]
        udps = [self.udp, *(u for _, u in self.loopback_relays.values())]
        return sum(len(r.pending) + len(r.flows) for r in tcps) + sum(len(u.flows) for u in udps)


