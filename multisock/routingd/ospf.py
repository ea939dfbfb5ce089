"""OSPFv2 single area (RFC 2328), the essentials, as a program on a virtual router.

**Over UDP, not IP protocol 89.** Our raw sockets carry only ICMP, so the daemon speaks
over a UDP socket on port 89 (the protocol number), one datagram per OSPF packet, sent
to each link's broadcast address (the other end of a /31) where a real router multicasts
to 224.0.0.5, and unicast to a neighbour for updates and acknowledgements.

What is kept of the RFC, because it is what the protocol is about:

* **Hello and adjacency** (9.5, 10): hellos every ``hello`` seconds carry the router ID,
  the intervals (a neighbour with other intervals is ignored, as the RFC requires) and
  the neighbours heard on that link. A neighbour is *Init* when heard, *Full* once its
  hello lists us (two-way); not heard for ``dead`` seconds, it is *Down*.
* **Router-LSAs and reliable flooding** (12, 13): each router describes itself in one
  LSA (a point-to-point link per Full neighbour, a stub link per addressed interface,
  each with the interface's cost) with a sequence number raised on every change. A newer
  LSA is installed, acknowledged and flooded on every other adjacency; an older one is
  answered with our newer copy; an unacknowledged one is retransmitted every
  ``retransmit`` seconds. A router that restarts and hears its own older LSA jumps its
  sequence number past it (13.4).
* **SPF** (16.1): Dijkstra over links both ends report (the two-way check), then the stub
  networks; equal-cost paths keep every first hop, installed as one ECMP group.

Simplified, and why: the database exchange (Database Description / LS Request, 10.6-10.9)
is replaced by sending the whole database in updates when an adjacency comes up - the
same result for the small areas a simulation has, without the exchange's state machine;
every link is treated as point-to-point (no Designated Router, no network-LSAs: several
routers on one switch form a full mesh of adjacencies); LSAs do not age (a dead router's
LSA stays, harmless: its links fail the two-way check). One area, IPv4, no
authentication, no summary or external LSAs. Timers default to the RFC's (hello 10 s,
dead 40 s, retransmit 5 s); intervals travel in milliseconds so tests can shorten them.
"""

from __future__ import annotations

import heapq
import struct
from typing import TYPE_CHECKING, Any

from multisock.routingd.common import Daemon, Prefix, broadcast_of, network_of
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.stack.interface import Interface

OSPF_PORT = 89
VERSION = 2
HELLO, LS_UPDATE, LS_ACK = 1, 4, 5
P2P, STUB = 1, 3  # router-LSA link types (RFC 2328 A.4.2)
_HEADER = struct.Struct("!BBH4s4s")  # version, type, length, router ID, area ID
_HELLO = struct.Struct("!4sII")  # network mask, hello and dead intervals (ms)
_LSA = struct.Struct("!4sIH")  # advertising router, sequence number, number of links
_LINK = struct.Struct("!B4s4sH")  # type, link ID, link data, metric
_ACK = struct.Struct("!4sI")
_COUNT = struct.Struct("!H")
AREA = bytes(4)
MAX_LSAS = 50  # per update datagram

Link = tuple[int, bytes, bytes, int]  # type, id, data, metric


class Lsa:
    """A router-LSA: who, which version, its links."""

    __slots__ = ("router", "seq", "links")

    def __init__(self, router: bytes, seq: int, links: list[Link]) -> None:
        self.router = router
        self.seq = seq
        self.links = links

    def encode(self) -> bytes:
        return _LSA.pack(self.router, self.seq, len(self.links)) + b"".join(
            _LINK.pack(*link) for link in self.links)


def _packet(kind: int, router: bytes, body: bytes) -> bytes:
    return _HEADER.pack(VERSION, kind, _HEADER.size + len(body), router, AREA) + body


def encode_hello(router: bytes, mask: bytes, hello: float, dead: float,
                 neighbours: list[bytes]) -> bytes:
    body = _HELLO.pack(mask, round(hello * 1000), round(dead * 1000)) + b"".join(neighbours)
    return _packet(HELLO, router, body)


def encode_update(router: bytes, lsas: list[Lsa]) -> bytes:
    return _packet(LS_UPDATE, router, _COUNT.pack(len(lsas)) + b"".join(
        lsa.encode() for lsa in lsas))


def encode_ack(router: bytes, acks: list[tuple[bytes, int]]) -> bytes:
    return _packet(LS_ACK, router, _COUNT.pack(len(acks)) + b"".join(
        _ACK.pack(r, s) for r, s in acks))


def decode(data: bytes) -> tuple[int, bytes, Any]:
    """(type, router ID, body): a hello's (mask, hello s, dead s, neighbours), an
    update's [Lsa], an ack's [(router, seq)]. ValueError when malformed."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than an OSPF header")
    version, kind, length, router, area = _HEADER.unpack_from(data)
    if version != VERSION or length != len(data) or area != AREA:
        raise ValueError("not an OSPFv2 packet of our area")
    offset = _HEADER.size
    if kind == HELLO:
        mask, hello, dead = _HELLO.unpack_from(data, offset)
        rest = data[offset + _HELLO.size:]
        if len(rest) % 4:
            raise ValueError("hello neighbour list is not whole addresses")
        return kind, router, (mask, hello / 1000, dead / 1000,
                              [rest[i:i + 4] for i in range(0, len(rest), 4)])
    (count,) = _COUNT.unpack_from(data, offset)
    offset += _COUNT.size
    if kind == LS_ACK:
        if len(data) != offset + count * _ACK.size:
            raise ValueError("ack length does not match its count")
        return kind, router, [_ACK.unpack_from(data, offset + i * _ACK.size)
                              for i in range(count)]
    if kind != LS_UPDATE:
        raise ValueError(f"unsupported OSPF packet type {kind}")
    lsas = []
    for _ in range(count):
        adv, seq, nlinks = _LSA.unpack_from(data, offset)
        offset += _LSA.size
        links = [_LINK.unpack_from(data, offset + i * _LINK.size) for i in range(nlinks)]
        offset += nlinks * _LINK.size
        lsas.append(Lsa(adv, seq, links))
    if offset != len(data):
        raise ValueError("update length does not match its LSAs")
    return kind, router, lsas


class Neighbour:
    """One adjacency: a router heard on one interface."""

    __slots__ = ("router", "iface", "addr", "heard", "full", "pending", "next_rxmt")

    def __init__(self, router: bytes, iface: Interface, addr: bytes, now: float) -> None:
        self.router = router
        self.iface = iface
        self.addr = addr
        self.heard = now
        self.full = False
        self.pending: dict[bytes, Lsa] = {}  # unacknowledged LSAs by advertising router
        self.next_rxmt = 0.0


class OspfDaemon(Daemon):
    port = OSPF_PORT
    protocol = "ospf"

    def __init__(self, host: Host, *, hello: Any = 10.0, dead: Any = 40.0,
                 retransmit: Any = 5.0, cost: int = 10) -> None:
        from multisock.net.units import parse_duration

        super().__init__(host)
        self.hello = parse_duration(hello)
        self.dead = parse_duration(dead)
        self.retransmit = parse_duration(retransmit)
        self.cost = cost
        self.router_id = bytes(4)
        self.neighbours: dict[tuple[str, bytes], Neighbour] = {}
        self.lsdb: dict[bytes, Lsa] = {}
        self.seq = 0
        self.next_hello = 0.0
        self.spf_due = False
        self.spf_runs = 0

    # ------------------------------------------------------------------ events

    def started(self) -> None:
        addrs = [addr for _iface, addr, _length in self.interfaces()]
        self.router_id = max(addrs) if addrs else bytes(4)  # highest interface address
        self.next_hello = self.now()
        self._originate()

    def restarted(self) -> None:
        self.neighbours.clear()
        self.next_hello = self.now()
        self._originate()

    def next_timer(self) -> float:
        when = self.next_hello
        for n in self.neighbours.values():
            when = min(when, n.heard + self.dead)
            if n.pending:
                when = min(when, n.next_rxmt)
        return when

    def on_timers(self, now: float) -> None:
        if self.paused:
            return
        changed = False
        for key, n in list(self.neighbours.items()):
            if now >= n.heard + self.dead or not n.iface.up:
                del self.neighbours[key]
                changed = changed or n.full
            elif n.pending and now >= n.next_rxmt:
                self._send_update(n, list(n.pending.values()))
        if changed:
            self._originate()
        if now >= self.next_hello:
            self._send_hellos()
            self.next_hello = now + self.hello
        if self.spf_due:
            self.spf_due = False
            self._spf()

    def on_message(self, data: bytes, src: bytes, iface: Interface) -> None:
        kind, router, body = decode(data)
        if router == self.router_id:
            return
        now = self.now()
        key = (iface.name, router)
        if kind == HELLO:
            _mask, hello, dead, heard = body
            if abs(hello - self.hello) > 1e-6 or abs(dead - self.dead) > 1e-6:
                self.counters["bad_messages"] += 1  # RFC 10.5: intervals must match
                return
            n = self.neighbours.get(key)
            if n is None:
                n = self.neighbours[key] = Neighbour(router, iface, src, now)
                self._send_hellos(only=iface)  # let it see us at once
            n.heard, n.addr = now, src
            two_way = self.router_id in heard
            if two_way and not n.full:
                n.full = True
                self._originate()
                self._send_update(n, list(self.lsdb.values()))  # stands for 10.6-10.9
            elif not two_way and n.full:
                n.full = False
                self._originate()
            return
        n = self.neighbours.get(key)
        if n is None or not n.full:
            return  # updates and acks only over an adjacency
        if kind == LS_ACK:
            for adv, seq in body:
                held = n.pending.get(adv)
                if held is not None and held.seq <= seq:
                    del n.pending[adv]
            return
        acks = []
        for lsa in body:
            acks.append((lsa.router, lsa.seq))
            mine = self.lsdb.get(lsa.router)
            if mine is None or lsa.seq > mine.seq:
                if lsa.router == self.router_id:
                    self.seq = lsa.seq  # our own LSA from before a restart (13.4)
                    self._originate()
                    continue
                self.lsdb[lsa.router] = lsa
                self._flood(lsa, exclude=n)
                self.spf_due = True
            elif lsa.seq == mine.seq:
                held = n.pending.get(lsa.router)
                if held is not None and held.seq <= lsa.seq:
                    del n.pending[lsa.router]  # an implied acknowledgement (13.7)
            else:
                self._send_update(n, [mine])  # it has an older copy: give it ours
        self.send(encode_ack(self.router_id, acks), n.addr)

    # ------------------------------------------------------------ LSAs, flooding

    def _originate(self) -> None:
        links: list[Link] = []
        for _iface, addr, length in self.interfaces():
            links.append((STUB, network_of(addr, length), _mask(length), self.cost))
        for n in self.neighbours.values():
            if n.full:
                links.append((P2P, n.router, n.addr, self.cost))
        self.seq += 1
        lsa = Lsa(self.router_id, self.seq, links)
        self.lsdb[self.router_id] = lsa
        self._flood(lsa, exclude=None)
        self.spf_due = True

    def _flood(self, lsa: Lsa, exclude: Neighbour | None) -> None:
        for n in self.neighbours.values():
            if n.full and n is not exclude:
                self._send_update(n, [lsa])

    def _send_update(self, n: Neighbour, lsas: list[Lsa]) -> None:
        for lsa in lsas:
            n.pending[lsa.router] = lsa
        n.next_rxmt = self.now() + self.retransmit
        for start in range(0, len(lsas), MAX_LSAS):
            self.send(encode_update(self.router_id, lsas[start:start + MAX_LSAS]), n.addr)

    def _send_hellos(self, only: Interface | None = None) -> None:
        for iface, addr, length in self.interfaces():
            if only is not None and iface is not only:
                continue
            heard = [n.router for n in self.neighbours.values() if n.iface is iface]
            self.send(encode_hello(self.router_id, _mask(length), self.hello, self.dead,
                                   heard), broadcast_of(addr, length))

    # ---------------------------------------------------------------------- SPF

    def _spf(self) -> None:
        """Dijkstra from us over two-way router links, then the stub networks; every
        equal-cost first hop kept (RFC 2328 16.1, with 16.1.1's next-hop inheritance)."""
        self.spf_runs += 1
        root = self.router_id
        dist: dict[bytes, int] = {root: 0}
        hops: dict[bytes, set[tuple[str, bytes]]] = {root: set()}
        ifaces = {iface.name: iface for iface, _a, _n in self.interfaces()}
        done: set[bytes] = set()
        queue = [(0, root)]
        while queue:
            d, v = heapq.heappop(queue)
            if v in done:
                continue
            done.add(v)
            lsa = self.lsdb.get(v)
            if lsa is None:
                continue
            for kind, other, data, metric in lsa.links:
                if kind != P2P or not self._two_way(other, v):
                    continue
                nd = d + metric
                if v == root:
                    first = {(n.iface.name, n.addr) for n in self.neighbours.values()
                             if n.full and n.router == other and n.addr == data}
                else:
                    first = hops[v]
                if other not in dist or nd < dist[other]:
                    dist[other], hops[other] = nd, set(first)
                    heapq.heappush(queue, (nd, other))
                elif nd == dist[other] and other not in done:
                    hops[other] |= first
        best: dict[Prefix, tuple[int, set[tuple[str, bytes]]]] = {}
        connected = {(network_of(a, n), n) for _i, a, n in self.interfaces()}
        for v in done:
            lsa = self.lsdb.get(v)
            if lsa is None or v == root:
                continue
            for kind, network, mask, metric in lsa.links:
                if kind != STUB:
                    continue
                prefix = (network, _length(mask))
                if prefix in connected:
                    continue
                total = dist[v] + metric
                old = best.get(prefix)
                if old is None or total < old[0]:
                    best[prefix] = (total, set(hops[v]))
                elif total == old[0]:
                    old[1].update(hops[v])
        for prefix in list(self.installed):
            if prefix not in best:
                self.install(prefix, [], 0)
        for prefix, (total, first_hops) in best.items():
            chosen = sorted((name, gw) for name, gw in first_hops if name in ifaces)
            self.install(prefix, [(ifaces[name], gw) for name, gw in chosen], total)

    def _two_way(self, a: bytes, b: bytes) -> bool:
        """Does ``a``'s LSA list a link back to ``b`` (RFC 2328 16.1 (2)(b))?"""
        lsa = self.lsdb.get(a)
        return lsa is not None and any(k == P2P and other == b for k, other, _d, _m in lsa.links)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "router_id": A.unpack(self.router_id),
                "neighbours": sorted(A.unpack(n.router) for n in self.neighbours.values()
                                     if n.full),
                "lsdb": len(self.lsdb), "spf_runs": self.spf_runs,
                "routes": {f"{A.unpack(p[0])}/{p[1]}": [A.unpack(r.gateway or bytes(4))
                                                        for r in routes]
                           for p, routes in sorted(self.installed.items())}}


def _mask(length: int) -> bytes:
    return ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF).to_bytes(4, "big")


def _length(mask: bytes) -> int:
    return bin(int.from_bytes(mask, "big")).count("1")
