"""A host interface attached to a Linux TUN device: the stack meets the real kernel.

Packets are raw IPv4/IPv6 (``IFF_TUN | IFF_NO_PI``). The device fd is registered
with the driver, whose thread sleeps in ``select()`` on it together with the
timers, so there is no polling. Checksums are always generated and verified on
this interface: the kernel on the other side trusts nothing we send.

The kernel side of the device is configured with ``ip`` (iproute2): the peer
address(es) and the link state; the stack side gets the CIDR address(es) and,
by default, routes its default traffic via the peer.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from multisock.net.impairments import Impairment
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host

IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


class TunUnavailable(OSError):
    """Raised with a message saying exactly what is missing (root, /dev/net/tun, pytun)."""


def check_available() -> None:
    if not os.path.exists("/dev/net/tun"):
        raise TunUnavailable(errno.ENODEV, "TUN needs /dev/net/tun, which this machine lacks")
    if os.geteuid() != 0:
        raise TunUnavailable(
            errno.EPERM, "TUN needs root (CAP_NET_ADMIN) to create and configure the device"
        )
    try:
        import pytun  # noqa: F401
    except ImportError:
        raise TunUnavailable(
            errno.ENOPKG, "TUN needs python-pytun: pip install 'multisock[tun]'"
        ) from None
    if shutil.which("ip") is None:
        raise TunUnavailable(errno.ENOENT, "TUN needs the 'ip' command (iproute2)")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


class TunLink:
    """Attach ``host`` to TUN device ``name``; ``addrs`` are the stack's CIDRs, ``peers`` the
    kernel's addresses on the same subnets (one per family at most)."""

    def __init__(
        self,
        host: Host,
        name: str,
        addrs: list[str],
        peers: list[str],
        *,
        mtu: int = 1500,
        default_route: bool = True,
    ) -> None:
        check_available()
        import pytun

        self.host = host
        self.name = name
        self.mtu = mtu
        self.counters = {"rx_packets": 0, "tx_packets": 0, "tx_errors": 0, "rx_errors": 0}
        # multisock's own impairments on this real link, one per direction (ideal by default)
        self.outbound = Impairment(host.net.derive_rng("tun", name, "out"))
        self.inbound = Impairment(host.net.derive_rng("tun", name, "in"))
        self.taps: list[Any] = []
        self._device: Any = pytun.TunTapDevice(name=name, flags=IFF_TUN | IFF_NO_PI)
        self.fd = self._device.fileno()
        os.set_blocking(self.fd, False)
        _ip("link", "set", "dev", name, "mtu", str(mtu))
        prefix_of = {}
        for cidr in addrs:
            addr, length = A.parse_cidr(cidr)
            prefix_of[len(addr)] = length
        for peer in peers:
            packed = A.pack(peer)
            length = prefix_of.get(len(packed), 32 if len(packed) == 4 else 128)
            if len(packed) == 16:
                _ip("-6", "addr", "add", f"{peer}/{length}", "dev", name, "nodad")
            else:
                _ip("addr", "add", f"{peer}/{length}", "dev", name)
        _ip("link", "set", "dev", name, "up")
        with host.driver.lock:
            self.interface = host.ip.add_interface(name, mtu=mtu, trusted=False)
            for cidr in addrs:
                host.ip.add_address(self.interface, cidr)
            if default_route:
                for peer in peers:
                    default = "0.0.0.0/0" if len(A.pack(peer)) == 4 else "::/0"
                    host.ip.add_route(default, via=peer, dev=name, metric=100)
            self.interface.transmit = self._transmit
        host.driver.add_reader(self.fd, self._readable)

    def impair(self, **impairments: Any) -> None:
        """Impair both directions (delay, loss, reorder...): the kernel then sees a bad link."""
        with self.host.driver.lock:
            self.outbound.set(**impairments)
            self.inbound.set(**impairments)

    def _transmit(self, packet: bytes, next_hop: bytes, now: float) -> None:
        if not self.outbound.is_ideal:
            for when, copy in self.outbound.offer(packet, now):
                if when <= now:
                    self._write(copy)
                else:
                    self.host.driver.call_at(when, self._write, copy)
            return
        self._write(packet)

    def _deliver_later(self, packet: bytes) -> None:
        self.host.receive(packet, self.interface, self.host.driver.now())

    def capture(self, writer: Any) -> None:
        """Record both directions as seen on the device (before inbound impairments)."""
        import time

        self.taps.append(lambda packet: writer.write(packet, time.time()))

    def _write(self, packet: bytes) -> None:
        for tap in self.taps:
            tap(packet)
        try:
            os.write(self.fd, packet)
            self.counters["tx_packets"] += 1
        except OSError:
            # a full device queue or a device gone: the packet is lost, as on a real NIC;
            # TCP retransmits it
            self.counters["tx_errors"] += 1

    def _readable(self) -> None:
        """Drain what the kernel sent us (bounded per wake-up so timers keep running)."""
        receive = self.host.receive
        iface = self.interface
        now = self.host.driver.now()
        for _ in range(256):
            try:
                packet = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self.counters["rx_errors"] += 1
                return
            self.counters["rx_packets"] += 1
            for tap in self.taps:
                tap(packet)
            if self.inbound.is_ideal:
                receive(packet, iface, now)
                continue
            for when, copy in self.inbound.offer(packet, now):
                if when <= now:
                    receive(copy, iface, now)
                else:
                    self.host.driver.call_at(when, self._deliver_later, copy)

    def close(self) -> None:
        self.host.driver.remove_reader(self.fd)
        with self.host.driver.lock:
            self.interface.up = False
            self.host.ip.routes.remove_interface(self.interface)
        self._device.close()
