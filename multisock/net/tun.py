"""A host interface attached to a Linux TUN device: the stack meets the real kernel.

Packets are raw IPv4/IPv6 (``IFF_TUN | IFF_NO_PI``). The device fd is registered
with the driver, whose thread sleeps in ``select()`` on it together with the
timers, so there is no polling.

Offloads (the default; ``offload=False`` turns them off). The device is opened with
``IFF_VNET_HDR``: every packet crosses it behind a 10-byte virtio-net header, the one
virtual machines' NICs use, and the kernel is told (``TUNSETOFFLOAD``) that this side
takes checksum offload and TCP segmentation offload for IPv4 and IPv6. Then:

* the kernel hands us TCP segments of up to 64 KiB (its own sockets' data, uncut) and we
  hand it segments of up to 64 KiB with the MSS to cut them at (``Interface.transmit_gso``,
  TCP's side in ``stack/gso.py``): one read, one write and one pass through both stacks
  per 45 segments instead of per segment;
* checksums are the kernel's to complete and to vouch for: a packet we send carries the
  pseudo-header sum in its transport checksum and the header says where the kernel
  completes it (``VIRTIO_NET_HDR_F_NEEDS_CSUM``); a packet the kernel sends says whether
  it checked or built it itself (``NEEDS_CSUM``/``DATA_VALID``). Only those go unverified:
  anything else (ICMP the kernel built in software, a forwarded packet nobody checked,
  fragments) is verified as on any untrusted link. The IPv4 header checksum is always
  ours to write.

A capture tap sees packets as the stack built them (checksums zero, which the pcap
writer fills) and the kernel's with their partial checksum zeroed likewise; an impaired
direction, or a tap, sees the wire's packets: large segments are cut first.

Without offloads every checksum is generated and verified here, in Python: the kernel
on the other side trusts nothing we send.

The kernel side of the device is configured with ``ip`` (iproute2): the peer
address(es) and the link state; the stack side gets the CIDR address(es) and,
by default, routes its default traffic via the peer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import subprocess
from typing import TYPE_CHECKING, Any

from multisock.net.impairments import Impairment
from multisock.stack import addresses as A
from multisock.stack.gso import split_packet
from multisock.wire.checksum import internet_checksum, pseudo_header_sum

if TYPE_CHECKING:
    from multisock.net.host import Host

IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
# struct virtio_net_hdr (little-endian, as the device's default on this host's CPUs):
# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = VNET_HDR.size
F_NEEDS_CSUM = 0x01
F_DATA_VALID = 0x02
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
# the largest packet the kernel hands a GSO device, and the one we hand it
GSO_MAX_SIZE = 65535
_PLAIN_HEADER = VNET_HDR.pack(0, GSO_NONE, 0, 0, 0, 0)
# where each transport keeps its checksum, and whether a pseudo header is in its sum
_CSUM_AT = {6: (16, True), 17: (6, True), 58: (2, True), 1: (2, False)}
_IPV6_EXTENSIONS = frozenset({0, 43, 44, 51, 60})


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
    kernel's addresses on the same subnets (one per family at most). ``offload``: exchange
    large TCP segments and leave checksums to the kernel (module docstring); when the kernel
    refuses the offload request, the link runs without it (``self.offload`` says which)."""

    def __init__(
        self,
        host: Host,
        name: str,
        addrs: list[str],
        peers: list[str],
        *,
        mtu: int = 1500,
        default_route: bool = True,
        offload: bool = True,
    ) -> None:
        check_available()
        import pytun

        self.host = host
        self.name = name
        self.mtu = mtu
        self.counters = {"rx_packets": 0, "tx_packets": 0, "tx_errors": 0, "rx_errors": 0,
                         "rx_gso": 0, "tx_gso": 0, "rx_verified_here": 0}
        # multisock's own impairments on this real link, one per direction (ideal by default)
        self.outbound = Impairment(host.net.derive_rng("tun", name, "out"))
        self.inbound = Impairment(host.net.derive_rng("tun", name, "in"))
        self.taps: list[Any] = []
        self.offload = offload
        self._device: Any = pytun.TunTapDevice(
            name=name, flags=IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0))
        if offload:
            try:
                fcntl.ioctl(self._device.fileno(), TUNSETOFFLOAD,
                            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            except OSError:
                self._device.close()
                self.offload = False
                self._device = pytun.TunTapDevice(name=name, flags=IFF_TUN | IFF_NO_PI)
        self.fd = self._device.fileno()
        os.set_blocking(self.fd, False)
        # offload: one buffer that every read fills (a fresh 64 KiB object per read would
        # be page-faulted in each time), and the bytes handed on are copied out of it
        self._buffer = bytearray(VNET_HDR_LEN + GSO_MAX_SIZE + 64 if self.offload else 0)
        self._view = memoryview(self._buffer)
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
            # with offloads the kernel completes and vouches for checksums: to the stack the
            # interface is trusted, and this link does what a NIC driver would
            self.interface = host.ip.add_interface(name, mtu=mtu, trusted=self.offload)
            for cidr in addrs:
                host.ip.add_address(self.interface, cidr)
            if default_route:
                for peer in peers:
                    default = "0.0.0.0/0" if len(A.pack(peer)) == 4 else "::/0"
                    host.ip.add_route(default, via=peer, dev=name, metric=100)
            if self.offload:
                self.interface.completes_checksums = True
                self.interface.gso_max_size = GSO_MAX_SIZE
                self.interface.transmit_gso = self._transmit_gso
            self.interface.transmit = self._transmit
        host.driver.add_reader(self.fd, self._readable_offload if self.offload else self._readable)

    def impair(self, **impairments: Any) -> None:
        """Impair both directions (delay, loss, reorder...): the kernel then sees a bad link."""
        with self.host.driver.lock:
            self.outbound.set(**impairments)
            self.inbound.set(**impairments)

    def _transmit(self, packet: bytes, next_hop: bytes, now: float) -> None:
        write = self._write_offload if self.offload else self._write
        if not self.outbound.is_ideal:
            for when, copy in self.outbound.offer(packet, now):
                if when <= now:
                    write(copy)
                else:
                    self.host.driver.call_at(when, write, copy)
            return
        write(packet)

    def _transmit_gso(self, head: bytes, payload: bytes | memoryview, size: int,
                      next_hop: bytes, now: float) -> None:
        """One TCP segment of several MSS (IP built ``head`` without options or extension
        headers): to the kernel whole, with ``size`` to cut it at; cut here first when this
        direction is impaired or captured, which must see the wire's packets."""
        if self.taps or not self.outbound.is_ideal:
            for packet in split_packet(b"".join((head, payload)), size):
                self._transmit(packet, next_hop, now)
            return
        vnet, fixed = _complete_checksums(head, len(head) + len(payload), size)
        try:
            os.writev(self.fd, [vnet, fixed, memoryview(head)[len(fixed):], payload])
            self.counters["tx_packets"] += 1
            self.counters["tx_gso"] += 1
        except OSError:
            self.counters["tx_errors"] += 1

    def _deliver_later(self, packet: bytes, verify: bool) -> None:
        self.host.receive(packet, self.interface, self.host.driver.now(), verify)

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

    def _write_offload(self, packet: bytes) -> None:
        """One whole packet behind its virtio-net header, with the IPv4 header checksum
        written and the transport checksum left for the kernel to complete."""
        for tap in self.taps:
            tap(packet)  # as the stack built it: the capture writer fills zero checksums
        vnet, head = _complete_checksums(packet, len(packet))
        try:
            os.writev(self.fd, [vnet, head, memoryview(packet)[len(head):]])
            self.counters["tx_packets"] += 1
        except OSError:
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
            self._arrive_impaired(packet, now, False)

    def _arrive_impaired(self, packet: bytes, now: float, verify: bool) -> None:
        """One packet from the kernel through this link's inbound impairment."""
        for when, copy in self.inbound.offer(packet, now):
            if when <= now:
                self.host.receive(copy, self.interface, now, verify)
            else:
                self.host.driver.call_at(when, self._deliver_later, copy, verify)

    def _readable_offload(self) -> None:
        """``_readable`` with virtio-net headers: a packet the kernel built or checked goes
        in unverified; a large segment goes in whole unless this direction is impaired or
        captured."""
        receive = self.host.receive
        iface = self.interface
        now = self.host.driver.now()
        counters = self.counters
        fd = self.fd
        buffer = [self._buffer]
        view = self._view
        for _ in range(256):
            try:
                n = os.readv(fd, buffer)
            except BlockingIOError:
                return
            except OSError:
                counters["rx_errors"] += 1
                return
            if n <= VNET_HDR_LEN:
                counters["rx_errors"] += 1
                continue
            flags, kind, _, size, start, offset = VNET_HDR.unpack_from(view)
            packet = bytes(view[VNET_HDR_LEN:n])
            counters["rx_packets"] += 1
            verify = not flags & (F_NEEDS_CSUM | F_DATA_VALID)
            if verify:
                counters["rx_verified_here"] += 1
            if kind != GSO_NONE:
                counters["rx_gso"] += 1
            if not self.taps and self.inbound.is_ideal:
                receive(packet, iface, now, verify)
                continue
            if kind != GSO_NONE and size:
                pieces = split_packet(packet, size)
            elif flags & F_NEEDS_CSUM and start + offset + 2 <= len(packet):
                # the field holds the pseudo-header sum: zeroed, for the capture to fill
                zeroed = bytearray(packet)
                zeroed[start + offset : start + offset + 2] = b"\0\0"
                pieces = [bytes(zeroed)]
            else:
                pieces = [packet]
            for piece in pieces:
                for tap in self.taps:
                    tap(piece)
                self._arrive_impaired(piece, now, verify)

    def close(self) -> None:
        self.host.driver.remove_reader(self.fd)
        with self.host.driver.lock:
            self.interface.up = False
            self.host.ip.routes.remove_interface(self.interface)
        self._device.close()


def _complete_checksums(packet: bytes, size: int, gso: int = 0) -> tuple[bytes, bytearray]:
    """The virtio-net header for one packet of ``size`` bytes and its first bytes, fixed:
    the IPv4 header checksum written, and for TCP, UDP, ICMP and ICMPv6 outside a fragment
    the transport checksum set to the pseudo-header sum (0 for ICMP, which has none) with
    the header asking the kernel to complete it. Anything else goes as it is.

    ``packet`` may hold only the headers, the payload following apart; ``gso``: a TCP
    segment of several MSS, for the kernel to cut at that size."""
    if not packet:
        return _PLAIN_HEADER, bytearray()
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        head = bytearray(packet[:ihl])
        head[10:12] = b"\0\0"
        head[10:12] = internet_checksum(head).to_bytes(2, "big")
        total = int.from_bytes(packet[2:4], "big")
        if (packet[6] & 0x3F) or packet[7] or total > size:
            return _PLAIN_HEADER, head  # a fragment: IP filled its checksum (or none has one)
        return _transport_partial(packet, head, ihl, packet[9], packet[12:16], packet[16:20],
                                  total - ihl, size, gso)
    if version == 6 and len(packet) >= 40:
        proto = packet[6]
        at = 40
        for _ in range(8):  # hop-by-hop, routing, destination options: walked over
            if proto not in _IPV6_EXTENSIONS or proto in (44, 51):
                break
            if at + 8 > len(packet):
                return _PLAIN_HEADER, bytearray()
            proto, at = packet[at], at + (packet[at + 1] + 1) * 8
        if proto in _IPV6_EXTENSIONS:
            return _PLAIN_HEADER, bytearray()  # a fragment (IP filled its checksum) or AH
        length = 40 + int.from_bytes(packet[4:6], "big") - at
        return _transport_partial(packet, bytearray(packet[:at]), at, proto, packet[8:24],
                                  packet[24:40], length, size, gso)
    return _PLAIN_HEADER, bytearray()


def _transport_partial(packet: bytes, head: bytearray, at: int, proto: int, src: bytes,
                       dst: bytes, length: int, size: int, gso: int) -> tuple[bytes, bytearray]:
    where = _CSUM_AT.get(proto)
    if where is None or length < where[0] + 2 or at + length > size:
        return _PLAIN_HEADER, head
    offset, pseudo = where
    head += packet[at : at + offset + 2]
    value = pseudo_header_sum(src, dst, proto, length) if pseudo else 0
    head[at + offset : at + offset + 2] = value.to_bytes(2, "big")
    if not gso or proto != 6:
        return VNET_HDR.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, at, offset), head
    kind = GSO_TCPV4 if len(src) == 4 else GSO_TCPV6
    if packet[at + 13] & 0x80:  # CWR: the kernel keeps it on the first piece only
        kind |= GSO_ECN
    headers = at + (packet[at + 12] >> 4) * 4
    return VNET_HDR.pack(F_NEEDS_CSUM, kind, headers, gso, at, offset), head
