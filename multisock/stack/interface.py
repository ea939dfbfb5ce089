"""Network interfaces of a host: addresses, MTU, link attachment, counters.

An interface does not know what it is plugged into: the link that attaches it
sets :attr:`Interface.transmit`. That keeps the IP layer free of link details
(in-process wire, switch port, TUN device, loopback) — it only hands a packet and
the next hop to ``transmit``.
"""

from __future__ import annotations

from collections.abc import Callable

from multisock.stack.addresses import family_of, same_prefix, unpack

Transmit = Callable[[bytes, bytes, float], None]
# (headers, payload, next_hop, now): a packet handed over in two pieces, not joined
TransmitSplit = Callable[[bytes, "bytes | memoryview", bytes, float], None]
# (headers, payload, segment size, next_hop, now): one TCP segment of several MSS, for a link
# that cuts it (or delivers it whole) itself - segmentation offload (stack/gso.py)
TransmitGso = Callable[[bytes, "bytes | memoryview", int, bytes, float], None]


def _not_attached(packet: bytes, next_hop: bytes, now: float) -> None:
    """Default transmit of an unplugged interface: the packet is lost, like a cable pulled."""


class Interface:
    """One network interface; ``trusted`` links skip checksums (like checksum offload)."""

    __slots__ = (
        "name",
        "index",
        "mtu",
        "up",
        "addresses",
        "loopback",
        "trusted",
        "transmit",
        "transmit_split",
        "transmit_gso",
        "gso_max_size",
        "completes_checksums",
        "counters",
        "groups",
    )

    def __init__(
        self, name: str, index: int, mtu: int = 65535, *, loopback: bool = False, trusted: bool = True
    ) -> None:
        self.name = name
        self.index = index
        self.mtu = mtu
        self.up = True
        self.addresses: list[tuple[bytes, int]] = []
        self.loopback = loopback
        self.trusted = trusted
        self.transmit: Transmit = _not_attached
        # set with ``transmit`` by what carries packets to another host in this process (a
        # link's Direction.send_split, the host's loopback): takes a packet as its headers
        # and its payload apart, so a large TCP payload is not copied into a packet on the way
        self.transmit_split: TransmitSplit | None = None
        # set by a link that takes TCP segments larger than its MTU (a TUN device with
        # virtio-net headers): TCP then builds segments of up to ``gso_max_size`` bytes
        # (whole IP packets) and this carries them with the MSS to cut them at
        self.transmit_gso: TransmitGso | None = None
        self.gso_max_size = 0
        # a trusted interface whose link fills the checksums of every whole packet it sends
        # (the TUN link asks the kernel to, by checksum offload): IP computes a transport
        # checksum only for a datagram it fragments, which the link cannot see whole
        self.completes_checksums = False
        # multicast groups joined on this interface -> how many sockets joined (IGMP/MLD's
        # per-interface list; a switch's snooping table reads it)
        self.groups: dict[bytes, int] = {}
        self.counters = {
            "rx_packets": 0,
            "rx_bytes": 0,
            "tx_packets": 0,
            "tx_bytes": 0,
            "rx_dropped": 0,
            "tx_dropped": 0,
        }

    def has_address(self, addr: bytes) -> bool:
        return any(a == addr for a, _ in self.addresses)

    def addresses_of(self, family: int) -> list[bytes]:
        return [a for a, _ in self.addresses if family_of(a) == family]

    def on_link(self, addr: bytes) -> bool:
        """Is ``addr`` inside one of this interface's prefixes?"""
        return any(same_prefix(a, addr, length) for a, length in self.addresses)

    def __repr__(self) -> str:
        addrs = ", ".join(f"{unpack(a)}/{n}" for a, n in self.addresses)
        return f"<Interface {self.name} mtu={self.mtu} {'up' if self.up else 'down'} [{addrs}]>"
