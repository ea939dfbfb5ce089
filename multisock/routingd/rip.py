"""RIPv2 (RFC 2453), the essentials, as a program on a virtual router.

* Messages are RFC 2453's (command, version 2, 20-byte entries with mask and next hop),
  sent over UDP port 520 to each link's broadcast address (RIPv2's multicast group
  224.0.0.9 plays the same part on a real LAN).
* Distance vector with metric 1..15, 16 = infinity; a route learned from neighbour N is
  replaced by a strictly better one, or updated by N itself (3.9.2).
* Split horizon with poisoned reverse (3.4.3): routes learned through an interface are
  advertised back on it with metric 16.
* Timers (3.8): a full update every ``update`` seconds (jittered by up to +-``update``/6
  so that routers do not synchronise); a route not refreshed for ``timeout`` seconds goes
  to metric 16 and is deleted ``garbage`` seconds later, advertised as unreachable until
  then; triggered updates (3.10.1) carry only changed routes, within 1-5 s (scaled to the
  update period) of a change, at most one per that delay.
* A request for the whole table at start (3.9.1) so a router joining learns at once.

Defaults are the RFC's (30 s, 180 s, 120 s); tests shorten them by configuration.
"""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING, Any

from multisock.routingd.common import Daemon, Prefix, broadcast_of, network_of
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.stack.interface import Interface

RIP_PORT = 520
INFINITY = 16
REQUEST, RESPONSE = 1, 2
AF_INET = 2
_HEADER = struct.Struct("!BBH")
_ENTRY = struct.Struct("!HH4s4s4sI")
MAX_ENTRIES = 25  # per message (RFC 2453 4)


def _mask(length: int) -> bytes:
    return ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF).to_bytes(4, "big")


def _length(mask: bytes) -> int:
    value = int.from_bytes(mask, "big")
    length = bin(value).count("1")
    if value != (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF:
        raise ValueError(f"non-contiguous mask {A.unpack(mask)}")
    return length


def encode(command: int, entries: list[tuple[Prefix, bytes, int]]) -> bytes:
    """A RIPv2 message: ``entries`` of ((network, length), next hop, metric)."""
    out = [_HEADER.pack(command, 2, 0)]
    for (network, length), next_hop, metric in entries:
        out.append(_ENTRY.pack(AF_INET, 0, network, _mask(length), next_hop, metric))
    return b"".join(out)


def decode(data: bytes) -> tuple[int, list[tuple[int, Prefix, bytes, int]]]:
    """(command, [(afi, (network, length), next hop, metric)]); ValueError if malformed."""
    if len(data) < 4 or (len(data) - 4) % 20:
        raise ValueError("RIP message length is not 4 + 20n")
    command, version, _ = _HEADER.unpack_from(data)
    if version < 1 or command not in (REQUEST, RESPONSE):
        raise ValueError("not a RIP request or response")
    entries = []
    for offset in range(4, len(data), 20):
        afi, _tag, network, mask, next_hop, metric = _ENTRY.unpack_from(data, offset)
        entries.append((afi, (network, _length(mask)), next_hop, metric))
    return command, entries


class RipRoute:
    __slots__ = ("metric", "next_hop", "iface", "expires", "garbage", "changed", "connected")

    def __init__(self, metric: int, next_hop: bytes, iface: Interface | None,
                 expires: float, connected: bool = False) -> None:
        self.metric = metric
        self.next_hop = next_hop
        self.iface = iface
        self.expires = expires
        self.garbage: float | None = None
        self.changed = True
        self.connected = connected


class RipDaemon(Daemon):
    port = RIP_PORT
    protocol = "rip"

    def __init__(self, host: Host, *, update: Any = 30.0, timeout: Any = 180.0,
                 garbage: Any = 120.0, cost: int = 1, seed: int | None = None) -> None:
        from multisock.net.units import parse_duration

        super().__init__(host)
        self.update = parse_duration(update)
        self.timeout = parse_duration(timeout)
        self.garbage_time = parse_duration(garbage)
        self.cost = cost
        self.rng = random.Random(seed if seed is not None else f"rip/{host.name}")
        self.table: dict[Prefix, RipRoute] = {}
        self.next_update = 0.0
        self.triggered_at: float | None = None  # a triggered update is due then
        self.quiet_until = 0.0  # no triggered update before (rate limit, 3.10.1)
        self.max_metric_seen = 0  # the highest finite metric ever installed (count to infinity)

    # ------------------------------------------------------------------ events

    def started(self) -> None:
        now = self.now()
        self._refresh_connected(now)
        self.next_update = now + self._jittered()
        self._request_all()

    def restarted(self) -> None:
        self.next_update = self.now()
        self._request_all()

    def _request_all(self) -> None:
        # a request for the whole table: one entry, AFI 0, metric infinity (3.9.1)
        message = _HEADER.pack(REQUEST, 2, 0) + _ENTRY.pack(0, 0, bytes(4), bytes(4),
                                                             bytes(4), INFINITY)
        for _iface, addr, length in self.interfaces():
            self.send(message, broadcast_of(addr, length))

    def _jittered(self) -> float:
        return self.update + self.rng.uniform(-self.update / 6, self.update / 6)

    def next_timer(self) -> float:
        when = self.next_update
        if self.triggered_at is not None:
            when = min(when, self.triggered_at)
        for route in self.table.values():
            deadline = route.garbage if route.garbage is not None else (
                None if route.connected else route.expires)
            if deadline is not None and deadline < when:
                when = deadline
        return when

    def on_timers(self, now: float) -> None:
        if self.paused:
            return
        self._refresh_connected(now)
        for prefix, route in list(self.table.items()):
            if route.garbage is not None:
                if now >= route.garbage:
                    del self.table[prefix]
            elif not route.connected and now >= route.expires:
                self._unreachable(prefix, route, now)
        if now >= self.next_update:
            self._send_update(full=True)
            self.next_update = now + self._jittered()
            self.triggered_at = None  # a full update carries every change
        elif self.triggered_at is not None and now >= self.triggered_at:
            self._send_update(full=False)
            self.triggered_at = None
            self.quiet_until = now + self._trigger_delay()

    def _trigger_delay(self) -> float:
        scale = min(self.update / 30.0, 1.0)  # RFC: 1-5 s with 30 s updates
        return self.rng.uniform(1.0, 5.0) * scale

    def _trigger(self, now: float) -> None:
        if self.triggered_at is None:
            self.triggered_at = max(now, self.quiet_until)

    def _refresh_connected(self, now: float) -> None:
        """Directly connected networks: metric ``cost``; gone when their interface is."""
        seen = set()
        for iface, addr, length in self.interfaces():
            prefix = (network_of(addr, length), length)
            seen.add(prefix)
            route = self.table.get(prefix)
            if route is None or not route.connected or route.metric != self.cost:
                if route is not None and not route.connected:
                    self.install(prefix, [], 0)  # the connected route takes over
                self.table[prefix] = RipRoute(self.cost, bytes(4), iface, now, connected=True)
                self._trigger(now)
        for prefix, route in list(self.table.items()):
            if route.connected and prefix not in seen and route.garbage is None:
                self._unreachable(prefix, route, now)

    def _unreachable(self, prefix: Prefix, route: RipRoute, now: float) -> None:
        route.metric = INFINITY
        route.garbage = now + self.garbage_time
        route.changed = True
        if not route.connected:
            self.install(prefix, [], 0)
        self._trigger(now)

    def on_message(self, data: bytes, src: bytes, iface: Interface) -> None:
        command, entries = decode(data)
        if command == REQUEST:
            if len(entries) == 1 and entries[0][0] == 0 and entries[0][3] == INFINITY:
                self._send_table(iface, src, full=True, unicast=True)
            return
        now = self.now()
        for afi, prefix, next_hop, metric in entries:
            if afi != AF_INET or not 1 <= metric <= INFINITY:
                continue
            gateway = next_hop if next_hop != bytes(4) and iface.on_link(next_hop) else src
            self._learn(prefix, gateway, iface, min(metric + self.cost, INFINITY), now, src)

    def _learn(self, prefix: Prefix, gateway: bytes, iface: Interface, metric: int,
               now: float, src: bytes) -> None:
        route = self.table.get(prefix)
        if route is not None and route.connected:
            return
        if route is None or route.garbage is not None and metric < INFINITY:
            if metric >= INFINITY:
                return
            self.table[prefix] = RipRoute(metric, gateway, iface, now + self.timeout)
            self._install(prefix, gateway, iface, metric)
            self._trigger(now)
            return
        from_same = route.next_hop == gateway or route.next_hop == src
        if from_same:
            if metric < INFINITY:
                route.expires = now + self.timeout
            if metric != route.metric:
                if metric >= INFINITY:
                    self._unreachable(prefix, route, now)
                else:
                    route.metric = metric
                    route.changed = True
                    self._install(prefix, gateway, iface, metric)
                    self._trigger(now)
        elif metric < route.metric:
            route.metric, route.next_hop, route.iface = metric, gateway, iface
            route.expires = now + self.timeout
            route.changed = True
            self._install(prefix, gateway, iface, metric)
            self._trigger(now)

    def _install(self, prefix: Prefix, gateway: bytes, iface: Interface, metric: int) -> None:
        self.max_metric_seen = max(self.max_metric_seen, metric)
        self.install(prefix, [(iface, gateway)], metric)

    # ----------------------------------------------------------------- sending

    def _send_update(self, full: bool) -> None:
        for iface, addr, length in self.interfaces():
            self._send_table(iface, broadcast_of(addr, length), full=full)
        for route in self.table.values():
            route.changed = False

    def _send_table(self, iface: Interface, dst: bytes, *, full: bool,
                    unicast: bool = False) -> None:
        entries: list[tuple[Prefix, bytes, int]] = []
        for prefix, route in self.table.items():
            if not full and not route.changed:
                continue
            metric = route.metric
            if not route.connected and route.iface is iface:
                metric = INFINITY  # split horizon with poisoned reverse
            entries.append((prefix, bytes(4), metric))
        for start in range(0, len(entries), MAX_ENTRIES):
            self.send(encode(RESPONSE, entries[start:start + MAX_ENTRIES]), dst)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "max_metric_seen": self.max_metric_seen,
                "table": {f"{A.unpack(p[0])}/{p[1]}": r.metric
                          for p, r in sorted(self.table.items())}}
