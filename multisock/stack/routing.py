"""Routing table with longest-prefix match, gateways and metrics.

Routes are kept in one dictionary per (family, prefix length), keyed by the masked
destination as an integer, so a lookup is at most 33 (IPv4) or 129 (IPv6)
dictionary probes over the lengths actually present, longest first. Tables are
small and change rarely; lookups happen per connection (the TCP engine caches the
route's MTU) and per datagram, so this is plenty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from multisock.stack.addresses import mask_int, same_prefix, unpack

if TYPE_CHECKING:
    from multisock.stack.interface import Interface


class Route:
    """One entry: ``prefix/length`` reached through ``interface``, directly or via ``gateway``.

    A plain class (not a dataclass: ``dataclasses`` imports ``inspect``/``ast``, ~1 MiB RSS).
    """

    __slots__ = ("prefix", "length", "interface", "gateway", "metric", "source", "mtu", "_key")
    _FIELDS: Final = ("prefix", "length", "interface", "gateway", "metric", "source", "mtu")

    def __init__(self, prefix: bytes, length: int, interface: Interface,
                 gateway: bytes | None = None, metric: int = 0, source: bytes | None = None,
                 mtu: int | None = None, _key: int = 0) -> None:
        self.prefix = prefix
        self.length = length
        self.interface = interface
        self.gateway = gateway
        self.metric = metric
        self.source = source
        self.mtu = mtu
        self._key = _key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Route):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in (*self._FIELDS, "_key"))

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._FIELDS)
        return f"Route({inner})"

    @property
    def family_bits(self) -> int:
        return len(self.prefix) * 8

    def next_hop(self, dst: bytes) -> bytes:
        """The neighbour a packet for ``dst`` is handed to on the interface."""
        return self.gateway if self.gateway is not None else dst

    def path_mtu(self) -> int:
        return self.mtu if self.mtu is not None else self.interface.mtu

    def describe(self) -> str:
        via = f" via {unpack(self.gateway)}" if self.gateway else ""
        return (
            f"{unpack(self.prefix)}/{self.length}{via} dev {self.interface.name} metric {self.metric}"
        )


class RoutingTable:
    """Longest-prefix match; among equal prefixes the lowest metric wins.

    ``multipath`` (off by default, as Linux has ECMP only for routes configured with several
    next hops): routes to the same prefix with the same lowest metric form one group, and
    ``lookup``'s ``flow`` hash picks one of them by hash-threshold (RFC 2992: each route owns
    an equal slice of the hash space, so a flow keeps its path, and a route going away moves
    only the flows it carried and its neighbours' share)."""

    __slots__ = ("_by_len", "_lengths", "version", "multipath")

    def __init__(self) -> None:
        # bumped by every change: callers caching lookups (IPStack's per-destination
        # route cache) compare it instead of being told
        self.version = 0
        self.multipath = False
        # (bits, length) -> {masked prefix int: [routes sorted by metric]}
        self._by_len: dict[tuple[int, int], dict[int, list[Route]]] = {}
        # bits -> prefix lengths present, longest first
        self._lengths: dict[int, list[int]] = {32: [], 128: []}

    def add(self, route: Route) -> Route:
        self.version += 1
        bits = route.family_bits
        key = mask_int(int.from_bytes(route.prefix, "big"), route.length, bits)
        route.prefix = key.to_bytes(bits // 8, "big")
        route._key = key
        table = self._by_len.setdefault((bits, route.length), {})
        entries = table.setdefault(key, [])
        entries.append(route)
        entries.sort(key=lambda r: r.metric)
        lengths = self._lengths[bits]
        if route.length not in lengths:
            lengths.append(route.length)
            lengths.sort(reverse=True)
        return route

    def remove(self, route: Route) -> None:
        self.version += 1
        bits = route.family_bits
        table = self._by_len.get((bits, route.length))
        if not table:
            return
        entries = table.get(route._key)
        if entries and route in entries:
            entries.remove(route)
            if not entries:
                del table[route._key]
        if not table:
            del self._by_len[(bits, route.length)]
            self._lengths[bits].remove(route.length)

    def remove_interface(self, interface: Interface) -> None:
        for route in [r for r in self.routes() if r.interface is interface]:
            self.remove(route)

    def lookup(self, dst: bytes, flow: int = 0) -> Route | None:
        """The best usable route to ``dst`` (routes over interfaces that are down are skipped).

        ``flow``: a 32-bit hash of the packet's flow, which picks among equal-cost routes
        when ``multipath`` is on (see the class)."""
        bits = len(dst) * 8
        value = int.from_bytes(dst, "big")
        by_len = self._by_len
        for length in self._lengths[bits]:
            entries = by_len[(bits, length)].get(mask_int(value, length, bits))
            if entries:
                for route in entries:
                    if route.interface.up:
                        if self.multipath and len(entries) > 1:
                            return _equal_cost(entries, route, flow)
                        return route
        return None

    def routes(self) -> list[Route]:
        out: list[Route] = []
        for bits in (32, 128):
            for length in self._lengths[bits]:
                for entries in self._by_len[(bits, length)].values():
                    out.extend(entries)
        return out


def _equal_cost(entries: list[Route], best: Route, flow: int) -> Route:
    """Hash-threshold choice among the usable routes sharing ``best``'s metric."""
    group = [r for r in entries if r.metric == best.metric and r.interface.up]
    if len(group) == 1:
        return best
    return group[((flow & 0xFFFFFFFF) * len(group)) >> 32]


class Rule:
    """One policy routing rule, like ``ip rule``: packets matching every selector given
    (source prefix, destination prefix, incoming interface, firewall mark under a mask)
    are looked up in ``table``; rules are tried by ascending ``priority``, and a table
    without a route for the destination lets the next rule try (as Linux does)."""

    __slots__ = ("priority", "table", "src", "src_len", "dst", "dst_len", "iif", "fwmark",
                 "mask")

    def __init__(self, priority: int, table: int, *, src: bytes | None = None,
                 src_len: int = 0, dst: bytes | None = None, dst_len: int = 0,
                 iif: str | None = None, fwmark: int | None = None,
                 mask: int = 0xFFFFFFFF) -> None:
        self.priority = priority
        self.table = table
        self.src = src
        self.src_len = src_len
        self.dst = dst
        self.dst_len = dst_len
        self.iif = iif
        self.fwmark = fwmark
        self.mask = mask

    def matches(self, src: bytes, dst: bytes, iif: str | None, mark: int) -> bool:
        if self.src is not None and not (
                len(src) == len(self.src) and same_prefix(self.src, src, self.src_len)):
            return False
        if self.dst is not None and not (
                len(dst) == len(self.dst) and same_prefix(self.dst, dst, self.dst_len)):
            return False
        if self.iif is not None and self.iif != iif:
            return False
        return self.fwmark is None or (mark & self.mask) == self.fwmark

    def describe(self) -> str:
        parts = [f"{self.priority}:"]
        parts.append(f"from {unpack(self.src)}/{self.src_len}" if self.src is not None
                     else "from all")
        if self.dst is not None:
            parts.append(f"to {unpack(self.dst)}/{self.dst_len}")
        if self.iif is not None:
            parts.append(f"iif {self.iif}")
        if self.fwmark is not None:
            parts.append(f"fwmark {self.fwmark:#x}" + (
                f"/{self.mask:#x}" if self.mask != 0xFFFFFFFF else ""))
        parts.append(f"lookup {'main' if self.table == 254 else self.table}")
        return " ".join(parts)


class DestinationMemo:
    """Answers worked out from a routing table, per destination, forgotten whenever the table
    changes (its ``version`` moves; every address added also adds a route) and bounded in
    size. The IP layer keeps its route and source choices in two of these: they are asked
    per segment and per connection."""

    __slots__ = ("_table", "_version", "_answers", "_size")

    def __init__(self, table: RoutingTable, size: int = 256) -> None:
        self._table = table
        self._version = -1
        self._answers: dict[bytes, Any] = {}
        self._size = size

    def get(self, dst: bytes) -> Any:
        if self._table.version != self._version:
            self._answers.clear()
            self._version = self._table.version
            return None
        return self._answers.get(dst)

    def put(self, dst: bytes, answer: Any) -> None:
        if len(self._answers) >= self._size:
            self._answers.clear()
        self._answers[dst] = answer
