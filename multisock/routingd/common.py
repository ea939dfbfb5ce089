"""What RIP and OSPF share: a thread with one UDP socket, timers on the network's clock,
the router's interfaces, and the routes the daemon installed in the host's table."""

from __future__ import annotations

import _socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from multisock.stack import addresses as A
from multisock.stack.addresses import mask_int
from multisock.stack.routing import Route

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.stack.interface import Interface

Prefix = tuple[bytes, int]  # (masked network address, prefix length)


def network_of(addr: bytes, length: int) -> bytes:
    return mask_int(int.from_bytes(addr, "big"), length, 32).to_bytes(4, "big")


def broadcast_of(addr: bytes, length: int) -> bytes:
    """Where to send to every neighbour on the link: the subnet's broadcast address, or
    the other end of a /31 (which has none, RFC 3021)."""
    value = int.from_bytes(addr, "big")
    if length == 31:
        return (value ^ 1).to_bytes(4, "big")
    host_bits = 32 - length
    return (value | ((1 << host_bits) - 1)).to_bytes(4, "big")


class Daemon:
    """A routing program on one router. Subclasses define ``port``, ``on_message`` and
    ``on_timers`` (called with the lock of the daemon's own state, never the driver's)."""

    port = 0
    protocol = "daemon"

    def __init__(self, host: Host) -> None:
        self.host = host
        self.driver = host.driver
        self.stopping = threading.Event()
        self.paused = False
        self.thread: threading.Thread | None = None
        self.sock: Any = None
        self.installed: dict[Prefix, list[Route]] = {}
        self.counters = {"sent": 0, "received": 0, "send_errors": 0, "bad_messages": 0,
                         "route_changes": 0}
        self.errors: list[str] = []

    # ---------------------------------------------------------------- lifetime

    def start(self) -> None:
        sock = self.host.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BROADCAST, 1)
        sock.bind(("0.0.0.0", self.port))
        self.sock = sock
        self.thread = threading.Thread(target=self._main, name=f"{self.protocol}:{self.host.name}",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5.0)
        if self.sock is not None:
            self.sock.close()

    def pause(self) -> None:
        """The router is switched off (a timeline ``stop``): silent, deaf, table kept."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.restarted()

    def restarted(self) -> None:
        """Back after a pause: subclasses start afresh (hellos, requests)."""

    def now(self) -> float:
        return self.driver.now()

    def _main(self) -> None:
        try:
            self.started()
            while not self.stopping.is_set():
                wait = self.next_timer() - self.now()
                self.sock.settimeout(min(max(wait, 0.001), 0.25))
                try:
                    data, (src, _port) = self.sock.recvfrom(65535)
                except TimeoutError:
                    data = None
                except OSError:
                    if self.stopping.is_set():
                        return
                    raise
                if self.paused:
                    continue
                if data is not None:
                    self.counters["received"] += 1
                    iface = self.interface_for(A.pack(src))
                    if iface is not None and not self.is_own(A.pack(src)):
                        try:
                            self.on_message(data, A.pack(src), iface)
                        except (ValueError, IndexError, KeyError) as exc:
                            self.counters["bad_messages"] += 1
                            self.errors.append(f"{type(exc).__name__}: {exc}")
                self.on_timers(self.now())
        except Exception as exc:  # recorded for the report; the router goes silent
            if not self.stopping.is_set():
                self.errors.append(f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ subclass part

    def started(self) -> None: ...

    def next_timer(self) -> float:
        raise NotImplementedError

    def on_message(self, data: bytes, src: bytes, iface: Interface) -> None:
        raise NotImplementedError

    def on_timers(self, now: float) -> None:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {"protocol": self.protocol, **self.counters, "errors": self.errors[-5:]}

    # --------------------------------------------------------------- the router

    def interfaces(self) -> Iterator[tuple[Interface, bytes, int]]:
        """(interface, IPv4 address, prefix length) of every usable, addressed interface."""
        for iface in self.host.ip.interfaces:
            if iface.loopback or not iface.up:
                continue
            for addr, length in iface.addresses:
                if len(addr) == 4 and length < 32:
                    yield iface, addr, length

    def interface_for(self, src: bytes) -> Interface | None:
        for iface, addr, length in self.interfaces():
            if A.same_prefix(addr, src, length):
                return iface
        return None

    def is_own(self, addr: bytes) -> bool:
        return self.host.ip.is_local_address(addr)

    def send(self, data: bytes, dst: bytes) -> None:
        try:
            self.sock.sendto(data, (A.unpack(dst), self.port))
            self.counters["sent"] += 1
        except OSError:
            self.counters["send_errors"] += 1

    # ----------------------------------------------------------- the FIB writer

    def install(self, prefix: Prefix, hops: list[tuple[Interface, bytes]], metric: int) -> None:
        """Make the host's routes to ``prefix`` exactly ``hops`` (several: equal-cost
        multipath) with ``metric``, or none when ``hops`` is empty."""
        table = self.host.ip.routes
        with self.driver.lock:
            old = self.installed.pop(prefix, [])
            same = [(r.interface, r.gateway) for r in old] == hops and all(
                r.metric == metric for r in old)
            if same and old:
                self.installed[prefix] = old
                return
            for route in old:
                table.remove(route)
            routes = [table.add(Route(prefix[0], prefix[1], iface, gateway=gateway,
                                      metric=metric)) for iface, gateway in hops]
            if routes:
                self.installed[prefix] = routes
            self.counters["route_changes"] += 1

    def withdraw_all(self) -> None:
        for prefix in list(self.installed):
            self.install(prefix, [], 0)
