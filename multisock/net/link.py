"""Links: a point-to-point wire between two ends, each direction impaired on its own.

An end is anything with ``deliver(packet, next_hop, now)``: a host's interface
(:class:`HostPort`) or a switch port. A direction with no impairment configured
takes the fast path — the packet is queued for delivery in the same locked
operation (run-to-completion), without touching the impairment model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from multisock.net.impairments import Impairment
from multisock.net.units import parse_duration, parse_size

if TYPE_CHECKING:
    from multisock.net.driver import Driver
    from multisock.net.host import Host
    from multisock.net.pcap import PcapWriter
    from multisock.stack.interface import Interface


class LinkEnd(Protocol):
    name: str

    def deliver(self, packet: bytes, next_hop: bytes, now: float) -> None: ...


class HostPort:
    """A host interface seen from the link: delivering means IP input on that host."""

    __slots__ = ("host", "interface", "name")

    def __init__(self, host: Host, interface: Interface) -> None:
        self.host = host
        self.interface = interface
        self.name = f"{host.name}:{interface.name}"

    def deliver(self, packet: bytes, next_hop: bytes, now: float) -> None:
        self.host.receive(packet, self.interface, now)

    def deliver_split(self, head: bytes, payload: bytes | memoryview, now: float) -> None:
        """``deliver`` of a packet that came apart (``Direction.send_split``)."""
        self.host.receive_split(head, payload, self.interface, now)


class Direction:
    """One direction of a link: impairment, capture taps and counters."""

    __slots__ = ("driver", "impairment", "target", "taps", "label", "_held")

    def __init__(self, driver: Driver, impairment: Impairment, target: LinkEnd, label: str) -> None:
        self.driver = driver
        self.impairment = impairment
        self.target = target
        self.taps: list[Callable[[bytes], None]] = []
        self.label = label
        # while held: (packet, next_hop, already through the impairment) in arrival order
        self._held: list[tuple[bytes, bytes, bool]] = []

    def send(self, packet: bytes, next_hop: bytes, now: float) -> None:
        if self.taps:
            for tap in self.taps:
                tap(packet)
        impairment = self.impairment
        if impairment.is_ideal:
            counters = impairment.counters
            counters["offered"] += 1
            counters["delivered"] += 1
            # arrives "now": straight to the far end, without a hop through _arrive
            self.driver.call_soon(self.target.deliver, packet, next_hop, now)
            return
        if impairment.held:
            impairment.counters["held"] += 1
            self._held.append((packet, next_hop, False))
            return
        self._offer(packet, next_hop, now)

    def send_split(self, head: bytes, payload: bytes | memoryview, next_hop: bytes,
                   now: float) -> None:
        """``send`` of a packet given as its headers and its payload (``Interface.transmit_split``).

        Into a host, on an ideal direction with no capture, the payload travels as it is - a
        view of the sender's send buffer, whose chunks never change - and is copied once, into
        the receiving program's buffer (the IP layer's ``input_split``): no packet is built,
        so a bulk transfer neither copies each segment once more nor allocates fresh memory
        for it. Anything else is joined into a packet and takes ``send``."""
        target = self.target
        impairment = self.impairment
        if self.taps or not impairment.is_ideal or type(target) is not HostPort:
            self.send(b"".join((head, payload)), next_hop, now)
            return
        counters = impairment.counters
        counters["offered"] += 1
        counters["delivered"] += 1
        self.driver.call_soon(target.deliver_split, head, payload, now)

    def _offer(self, packet: bytes, next_hop: bytes, now: float) -> None:
        for when, copy in self.impairment.offer(packet, now):
            if when <= now:
                self.driver.call_soon(self.target.deliver, copy, next_hop, now)
            else:
                self.driver.call_at(when, self._arrive, copy, next_hop)

    def _arrive(self, packet: bytes, next_hop: bytes) -> None:
        if self.impairment.held:  # was in flight when the link was held: it waits too
            self._held.append((packet, next_hop, True))
            return
        self.target.deliver(packet, next_hop, self.driver.now())

    def hold(self) -> None:
        """Packets entering (and those in flight arriving) wait, in order, until
        :meth:`release` (FoundationDB's "clogging"); lock held."""
        self.impairment.held = True
        self.impairment.set()  # (recomputes is_ideal: a held direction is not)

    def release(self) -> None:
        """Let held packets flow: those already through the impairment arrive now, those
        that entered during the hold go through it now (its delay counts from here)."""
        self.impairment.held = False
        self.impairment.set()
        held, self._held = self._held, []
        now = self.driver.now()
        for packet, next_hop, impaired in held:
            if impaired:
                self.driver.call_soon(self.target.deliver, packet, next_hop, now)
            else:
                self._offer(packet, next_hop, now)


_IMPAIRMENT_KEYS = ("delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate", "queue")


class Link:
    """A point-to-point link. ``set()`` changes both directions; ``a_to_b``/``b_to_a`` one each."""

    def __init__(
        self,
        driver: Driver,
        end_a: LinkEnd,
        end_b: LinkEnd,
        rng_a: random.Random,
        rng_b: random.Random,
        mtu: int,
        impairments: dict[str, Any],
        interfaces: tuple[Interface | None, Interface | None],
    ) -> None:
        self.driver = driver
        self.end_a = end_a
        self.end_b = end_b
        self.mtu = mtu
        self._interfaces = interfaces
        self.a_to_b = Direction(driver, Impairment(rng_a), end_b, f"{end_a.name}->{end_b.name}")
        self.b_to_a = Direction(driver, Impairment(rng_b), end_a, f"{end_b.name}->{end_a.name}")
        self.set(**impairments)

    @property
    def directions(self) -> tuple[Direction, Direction]:
        return self.a_to_b, self.b_to_a

    def set(self, *, at: float | str | None = None, **impairments: Any) -> None:
        """Change impairments at run time (both directions), e.g. ``link.set(loss=0.1)``;
        with ``at``, at that time of the network (``Network.at``) instead of now."""
        unknown = set(impairments) - set(_IMPAIRMENT_KEYS)
        if unknown:
            raise TypeError(f"unknown impairment(s): {', '.join(sorted(unknown))}")
        if at is not None:
            self._later(at, lambda: self.set(**impairments))
            return
        if "queue" in impairments and impairments["queue"] is not None:
            impairments["queue"] = int(parse_size(impairments["queue"]))
        with self.driver.lock:
            for direction in self.directions:
                direction.impairment.set(**impairments)
            self._update_trust()

    def _update_trust(self) -> None:
        """A link that corrupts must carry real checksums, or corruption goes unnoticed."""
        trusted = all(d.impairment.corrupt == 0 for d in self.directions)
        for iface in self._interfaces:
            if iface is not None and not iface.loopback:
                iface.trusted = trusted

    def down(self, *, at: float | str | None = None) -> None:
        """Partition: every packet in either direction is dropped until :meth:`up`.
        ``at``: at that time of the network (seconds since it was made) instead of now."""
        if at is not None:
            self._later(at, self.down)
            return
        with self.driver.lock:
            for direction in self.directions:
                direction.impairment.set(up=False)

    def up(self, *, at: float | str | None = None) -> None:
        if at is not None:
            self._later(at, self.up)
            return
        with self.driver.lock:
            for direction in self.directions:
                direction.impairment.set(up=True)

    def hold(self, *, at: float | str | None = None) -> None:
        """Both directions keep their packets (nothing lost) until :meth:`release`."""
        if at is not None:
            self._later(at, self.hold)
            return
        with self.driver.lock:
            for direction in self.directions:
                direction.hold()

    def release(self, *, at: float | str | None = None) -> None:
        """The held packets flow again, in order; see :meth:`Direction.release`."""
        if at is not None:
            self._later(at, self.release)
            return
        with self.driver.lock:
            for direction in self.directions:
                direction.release()

    def _later(self, at: float | str, action: Callable[[], None]) -> None:
        when = self.driver.origin + parse_duration(at)
        with self.driver.lock:
            self.driver.call_at(when, action)

    def capture(self, writer: PcapWriter) -> None:
        """Record both directions into ``writer`` (each packet once, when it enters the link)."""
        tap = _pcap_tap(writer, self.driver)
        for direction in self.directions:
            direction.taps.append(tap)

    def stats(self) -> dict[str, dict[str, int]]:
        return {d.label: dict(d.impairment.counters) for d in self.directions}

    def __repr__(self) -> str:
        return f"<Link {self.end_a.name} <-> {self.end_b.name} mtu={self.mtu}>"


def _pcap_tap(writer: PcapWriter, driver: Driver) -> Callable[[bytes], None]:
    wall = driver.wall  # time.time(), or a virtual network's own clock (replayable pcaps)

    def tap(packet: bytes) -> None:
        writer.write(packet, wall())

    return tap
