"""Scan and flood detection, and the blocklist they may fill.

* :class:`ScanDetector`: one source probing many distinct ports (of any host) or many
  distinct hosts within ``window`` seconds - TCP probes (segments without ACK: SYN, and
  the NULL/FIN/Xmas scans) and UDP datagrams - is a ``port_scan`` (or ``host_scan``) event.
  Tunable: ``ports``, ``hosts``, ``window``.
* :class:`SynFloodDetector`: more than ``rate`` SYNs per second towards one address and
  port is a ``syn_flood`` event (at most one per ``window`` while it lasts), with the
  distinct sources seen and the host's SYN-cookie counter: the stack answers with cookies
  already, this says that it happens (no blocking: a flood's sources are usually forged).
* :class:`Blocklist`: the scan detector with ``block_for`` set adds the source; its packets are
  then dropped before anything else looks at them until the time is up.

All state is bounded: per-source sets never grow past the threshold (the event fires and
they restart), and the source tables forget their oldest entry when full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multisock.security.flow import ACK, SYN, TCP, UDP, Flow

MAX_SOURCES = 4096
Emit = Callable[[str, bytes, dict[str, Any]], None]


def _bounded_put(table: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    if len(table) >= limit:
        del table[next(iter(table))]  # the oldest entry
    table[key] = value


class Blocklist:
    def __init__(self, limit: int = 65536) -> None:
        self.until: dict[bytes, float] = {}
        self.limit = limit
        self.dropped = 0

    def add(self, src: bytes, until: float) -> None:
        self.until.pop(src, None)
        _bounded_put(self.until, src, until, self.limit)

    def blocks(self, src: bytes, now: float) -> bool:
        until = self.until.get(src)
        if until is None:
            return False
        if until <= now:
            del self.until[src]
            return False
        self.dropped += 1
        return True


class _Window:
    __slots__ = ("start", "ports", "hosts", "reported")

    def __init__(self, start: float) -> None:
        self.start = start
        self.ports: set[tuple[int, int]] = set()
        self.hosts: set[bytes] = set()
        self.reported = False


class ScanDetector:
    def __init__(self, emit: Emit, *, ports: int = 20, hosts: int = 10, window: float = 5.0,
                 block_for: float | None = None) -> None:
        if ports < 2 or hosts < 2 or window <= 0:
            raise ValueError("ports and hosts must be >= 2, window > 0")
        self.emit = emit
        self.ports = ports
        self.hosts = hosts
        self.window = window
        self.block_for = block_for
        self.sources: dict[bytes, _Window] = {}
        self.detected = 0

    def see(self, flow: Flow, now: float) -> bool:
        """True when this packet completes a scan (the caller blocks, if asked to)."""
        proto = flow.proto
        if proto == TCP:
            if flow.flags & ACK:
                return False
        elif proto != UDP or flow.fragment:
            return False
        src = flow.src
        state = self.sources.get(src)
        if state is None or now - state.start > self.window:
            if state is not None:
                del self.sources[src]
            state = _Window(now)
            _bounded_put(self.sources, src, state, MAX_SOURCES)
        if state.reported:
            return False
        state.ports.add((proto, flow.dport))
        state.hosts.add(flow.dst)
        kind = ""
        if len(state.ports) >= self.ports:
            kind = "port_scan"
        elif len(state.hosts) >= self.hosts:
            kind = "host_scan"
        if not kind:
            return False
        state.reported = True
        self.detected += 1
        self.emit(kind, src, {
            "protocol": "tcp" if proto == TCP else "udp",
            "ports": len(state.ports), "hosts": len(state.hosts),
            "window": self.window, "elapsed": now - state.start,
            "sample_ports": sorted(p for _, p in state.ports)[:20],
            "blocked_for": self.block_for})
        state.ports.clear()
        state.hosts.clear()
        return True


class SynFloodDetector:
    def __init__(self, emit: Emit, cookies: Callable[[], int], *, rate: float = 200.0,
                 window: float = 1.0) -> None:
        if rate <= 0 or window <= 0:
            raise ValueError("rate and window must be positive")
        self.emit = emit
        self.cookies = cookies
        self.rate = rate
        self.window = window
        # (dst, dport) -> [window start, SYNs, sources seen (bounded), reported]
        self.targets: dict[tuple[bytes, int], list[Any]] = {}
        self.detected = 0

    def see(self, flow: Flow, now: float) -> bool:
        if flow.proto != TCP or flow.flags & (SYN | ACK) != SYN:
            return False
        key = (flow.dst, flow.dport)
        state = self.targets.get(key)
        if state is None or now - state[0] > self.window:
            state = [now, 0, set(), False]
            self.targets.pop(key, None)
            _bounded_put(self.targets, key, state, MAX_SOURCES)
        state[1] += 1
        sources: set[bytes] = state[2]
        if len(sources) < 256:
            sources.add(flow.src)
        if state[3] or state[1] < self.rate * self.window:
            return False
        state[3] = True
        self.detected += 1
        from multisock.stack import addresses as A

        self.emit("syn_flood", flow.src, {
            "target": A.unpack(flow.dst), "port": flow.dport, "syns": state[1],
            "window": self.window, "distinct_sources": len(sources),
            "syncookies_sent": self.cookies()})
        return True
