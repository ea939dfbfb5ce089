"""A switch joining more than two hosts.

Links carry IP packets without a link-layer header, so the switch forwards on
the *next hop* the sending host chose (the role ARP/NDP plays on Ethernet): to
the port whose host owns that address; broadcast goes to every other port.
Unknown next hops are dropped and counted, like an unanswered ARP.

Multicast goes where IGMP/MLD snooping would send it: to the ports whose host joined
the group on the attached interface (the snooping table is read from the interfaces'
``groups``, what their reports would have taught a switch), except the link-local
control groups (224.0.0.0/24, ff02::1), which RFC 4541 has flooded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.stack.addresses import is_multicast

if TYPE_CHECKING:
    from multisock.net.link import Direction
    from multisock.stack.interface import Interface


class SwitchPort:
    __slots__ = ("switch", "name", "out", "peer_interface")

    def __init__(self, switch: Switch, name: str) -> None:
        self.switch = switch
        self.name = name
        self.out: Direction | None = None  # towards the attached host
        self.peer_interface: Interface | None = None

    def deliver(self, packet: bytes, next_hop: bytes, now: float) -> None:
        self.switch.forward(self, packet, next_hop, now)


class Switch:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ports: list[SwitchPort] = []
        self.counters = {"forwarded": 0, "flooded": 0, "unknown_next_hop": 0,
                         "multicast_delivered": 0, "multicast_no_member": 0}

    def new_port(self) -> SwitchPort:
        port = SwitchPort(self, f"{self.name}:p{len(self.ports)}")
        self.ports.append(port)
        return port

    def _is_broadcast(self, next_hop: bytes) -> bool:
        if next_hop == b"\xff\xff\xff\xff" or _flooded_group(next_hop):
            return True
        if len(next_hop) == 4:
            for port in self.ports:
                iface = port.peer_interface
                if iface is None:
                    continue
                for addr, length in iface.addresses:
                    if len(addr) == 4 and length < 31:
                        host_bits = 32 - length
                        mask = (1 << host_bits) - 1
                        value = int.from_bytes(next_hop, "big")
                        if value & mask == mask and (value >> host_bits) == (
                            int.from_bytes(addr, "big") >> host_bits
                        ):
                            return True
        return False

    def forward(self, ingress: SwitchPort, packet: bytes, next_hop: bytes, now: float) -> None:
        if is_multicast(next_hop) and not _flooded_group(next_hop):
            self._to_members(ingress, packet, next_hop, now)
            return
        if self._is_broadcast(next_hop):
            self.counters["flooded"] += 1
            for port in self.ports:
                if port is not ingress and port.out is not None:
                    port.out.send(packet, next_hop, now)
            return
        for port in self.ports:
            iface = port.peer_interface
            if port is not ingress and iface is not None and iface.has_address(next_hop):
                assert port.out is not None
                self.counters["forwarded"] += 1
                port.out.send(packet, next_hop, now)
                return
        self.counters["unknown_next_hop"] += 1

    def _to_members(self, ingress: SwitchPort, packet: bytes, group: bytes, now: float) -> None:
        members = 0
        for port in self.ports:
            iface = port.peer_interface
            if (port is not ingress and port.out is not None and iface is not None
                    and group in iface.groups):
                members += 1
                port.out.send(packet, group, now)
        self.counters["multicast_delivered" if members else "multicast_no_member"] += 1

    def __repr__(self) -> str:
        return f"<Switch {self.name} ports={len(self.ports)}>"


def _flooded_group(addr: bytes) -> bool:
    """Link-local control groups a snooping switch floods (224.0.0.0/24, ff02::1)."""
    if len(addr) == 4:
        return addr[:3] == b"\xe0\x00\x00"
    return addr == b"\xff\x02" + bytes(13) + b"\x01"
