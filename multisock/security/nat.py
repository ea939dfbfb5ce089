"""NAT44 on a router: masquerade (source NAT) and port forwards, with RFC 4787's behaviour.

* **Mapping**: endpoint-independent (RFC 4787 REQ-1): one internal address and port keep
  one external port whatever they talk to, so a peer-to-peer client learns an address that
  works for everyone. The external port is the internal one when that is free (port
  preservation), else a random free one from the same range (below 1024 -> below 1024,
  REQ-3). ICMP echo identifiers are mapped like ports (RFC 5508).
* **Filtering**: ``address-dependent`` by default (REQ-8's choice for a NAT that should
  also protect): a packet from outside reaches a mapping only from an address the inside
  has sent to; ``endpoint-independent`` (any) and ``address-and-port-dependent`` exist too.
* **Timeouts**, refreshed by traffic either way: UDP 300 s (REQ-5 asks >= 120 s), TCP
  7440 s (RFC 5382's 2 h 4 min) and 240 s once a FIN or RST was seen, ICMP 60 s (RFC 5508).
  Expiry is lazy plus a bounded sweep on each new mapping; the table is bounded
  (``max_mappings``; a new flow finding it full is dropped and counted).
* **ICMP errors** about a translated packet are translated too, the quoted packet inside
  them included (RFC 5508), so path MTU discovery and "port unreachable" work through it.
* **Port forwards** (``forward_port``) are static mappings the other way (DNAT): packets to
  the external port go to the internal endpoint, its replies leave as the external port.
* **Checksums** are patched incrementally (RFC 1624) for every rewritten field, IP header
  and transport (the pseudo-header's addresses included); where the packet leaves by an
  untrusted interface (a TUN device), they are recomputed whole, since a packet from a
  trusted in-process link carries none.

Fragments: a first fragment is translated with its ports; later fragments get the address
change alone (outbound) or the address remembered from their first fragment (inbound).
IPv6 is not translated (NAT66 is not what IPv6 networks do).
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from multisock.stack import addresses as A
from multisock.stack import hooks as H
from multisock.wire.checksum import adjust_checksum, internet_checksum, transport_checksum

if TYPE_CHECKING:
    from multisock.stack.interface import Interface
    from multisock.stack.ip import IPStack

TCP, UDP, ICMP = 6, 17, 1
TIMEOUTS = {TCP: 7440.0, UDP: 300.0, ICMP: 60.0}
TCP_CLOSING_TIMEOUT = 240.0
FILTERING = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
_CSUM_AT = {TCP: 16, UDP: 6}
_ICMP_ERRORS = frozenset((3, 4, 5, 11, 12))
_REMOTES = 256  # remote endpoints remembered per mapping (for filtering)
_FRAGMENTS = 1024
_PORT_TRIES = 64


class Mapping:
    __slots__ = ("proto", "inside", "port", "outside", "ext_port", "expires", "remotes",
                 "static", "dead")

    def __init__(self, proto: int, inside: bytes, port: int, outside: bytes, ext_port: int,
                 static: bool) -> None:
        self.proto = proto
        self.inside = inside  # internal address and port
        self.port = port
        self.outside = outside  # external address and port
        self.ext_port = ext_port
        self.expires = float("inf")
        self.remotes: dict[Any, None] = {}
        self.static = static
        self.dead = False


class _Masquerade:
    __slots__ = ("iface", "address", "nets")

    def __init__(self, iface: Interface, address: bytes,
                 nets: list[tuple[int, int]] | None) -> None:
        self.iface = iface
        self.address = address
        self.nets = nets  # (network, mask) of the sources translated; None: all


class Nat:
    """``router.nat``: ``masquerade(...)``, ``forward_port(...)``, ``mappings()``."""

    def __init__(self, ip: IPStack, changed: Callable[[], None],
                 lock: AbstractContextManager[Any] | None = None, *,
                 max_mappings: int = 65536) -> None:
        self.ip = ip
        self._changed = changed
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.max_mappings = max_mappings
        self.filtering = "address-dependent"
        self.rules: list[_Masquerade] = []
        self.outbound: dict[tuple[int, bytes, int], Mapping] = {}  # (proto, inside, port)
        self.inbound: dict[tuple[int, bytes, int], Mapping] = {}  # (proto, outside, ext port)
        self.forwards: list[tuple[Mapping, Interface | None]] = []
        self.addresses: set[bytes] = set()  # the external addresses answered on
        self._order: deque[Mapping] = deque()
        self._fragments: dict[tuple[bytes, bytes, int], bytes] = {}
        self.counters = {"translated_out": 0, "translated_in": 0, "mappings": 0,
                         "expired": 0, "filtered": 0, "no_mapping": 0, "no_port": 0,
                         "table_full": 0, "icmp_errors_translated": 0, "malformed": 0}

    # ---------------------------------------------------------------- the API

    def masquerade(self, out: str, source: str | None = None, *,
                   filtering: str | None = None) -> None:
        """Translate packets leaving by interface ``out`` (a name, or an address of the
        router's) from ``source`` (a CIDR or comma list; all when None) to that
        interface's IPv4 address."""
        with self._lock:
            iface = self._interface(out)
            own = [a for a, _ in iface.addresses if len(a) == 4]
            if not own:
                raise ValueError(f"interface {iface.name} has no IPv4 address to masquerade as")
            address = A.pack(out) if _is_address(out) else own[0]
            nets = None
            if source is not None:
                nets = []
                for text in source.split(","):
                    net = ipaddress.ip_network(text.strip(), strict=False)
                    if net.version != 4:
                        raise ValueError(f"NAT44 only: {text!r}")
                    nets.append((int(net.network_address), int(net.netmask)))
            if filtering is not None:
                self.set_filtering(filtering)
            self.rules.append(_Masquerade(iface, address, nets))
            self.addresses.add(address)
            self._changed()

    def set_filtering(self, filtering: str) -> None:
        if filtering not in FILTERING:
            raise ValueError(f"filtering is one of {', '.join(FILTERING)}")
        self.filtering = filtering

    def forward_port(self, proto: str, external_port: int, internal_address: str,
                     internal_port: int, *, address: str | None = None) -> None:
        """Packets for ``external_port`` (on ``address``, default the masquerade address or
        else any of the router's) go to ``internal_address:internal_port``."""
        number = {"tcp": TCP, "udp": UDP}.get(str(proto).lower())
        if number is None:
            raise ValueError("forward_port's protocol is tcp or udp")
        for port in (external_port, internal_port):
            if not 0 < int(port) < 65536:
                raise ValueError(f"port out of range: {port}")
        inside = A.pack(internal_address)
        if len(inside) != 4:
            raise ValueError("NAT44 only: an IPv4 internal address")
        with self._lock:
            if address is not None:
                outside = A.pack(address)
            elif self.rules:
                outside = self.rules[0].address
            else:
                outside = b""  # any address of the router
            key = (number, outside, int(external_port))
            if key in self.inbound or (number, b"", int(external_port)) in self.inbound:
                raise ValueError(f"{proto} port {external_port} is forwarded already")
            mapping = Mapping(number, inside, int(internal_port), outside, int(external_port),
                              static=True)
            route = self.ip.routes.lookup(inside)
            self.inbound[key] = mapping
            self.outbound[(number, inside, int(internal_port))] = mapping
            self.forwards.append((mapping, route.interface if route is not None else None))
            if outside:
                self.addresses.add(outside)
            self._changed()

    def active(self) -> bool:
        return bool(self.rules or self.forwards)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.outbound.clear()
            self.inbound.clear()
            self.forwards.clear()
            self.addresses.clear()
            self._order.clear()
            self._changed()

    def mappings(self) -> list[dict[str, Any]]:
        now = self.ip.now
        out = []
        for m in list(self.outbound.values()):
            if m.dead or m.expires < now:
                continue
            out.append({"proto": m.proto, "inside": f"{A.unpack(m.inside)}:{m.port}",
                        "outside": f"{A.unpack(m.outside) if m.outside else '*'}:{m.ext_port}",
                        "static": m.static, "expires_in": m.expires - now,
                        "remotes": len(m.remotes)})
        return out

    def _interface(self, out: str) -> Interface:
        if _is_address(out):
            packed = A.pack(out)
            for iface in self.ip.interfaces:
                if any(a == packed for a, _ in iface.addresses):
                    return iface
            raise ValueError(f"no interface has address {out}")
        return self.ip.interface(out)

    # ---------------------------------------------------------- the mappings

    def _allocate(self, proto: int, inside: bytes, port: int, outside: bytes,
                  now: float) -> Mapping | None:
        if len(self.outbound) >= self.max_mappings:
            self._sweep(now, len(self._order))
            if len(self.outbound) >= self.max_mappings:
                self.counters["table_full"] += 1
                return None
        inbound = self.inbound
        chosen = -1
        if (proto, outside, port) not in inbound and (proto, b"", port) not in inbound:
            chosen = port  # port preservation
        else:
            low, high = (1, 1023) if 0 < port < 1024 else (1024, 65535)
            if proto == ICMP:
                low, high = 0, 65535
            rng = self.ip.rng
            for _ in range(_PORT_TRIES):
                candidate = rng.randint(low, high)
                if (proto, outside, candidate) not in inbound \
                        and (proto, b"", candidate) not in inbound:
                    chosen = candidate
                    break
        if chosen < 0:
            self.counters["no_port"] += 1
            return None
        mapping = Mapping(proto, inside, port, outside, chosen, static=False)
        self.outbound[(proto, inside, port)] = mapping
        inbound[(proto, outside, chosen)] = mapping
        self._order.append(mapping)
        self.counters["mappings"] += 1
        self._sweep(now, 2)
        return mapping

    def _expired(self, mapping: Mapping, now: float) -> bool:
        if mapping.static or mapping.expires >= now:
            return False
        self._drop(mapping)
        self.counters["expired"] += 1
        return True

    def _drop(self, mapping: Mapping) -> None:
        mapping.dead = True
        self.outbound.pop((mapping.proto, mapping.inside, mapping.port), None)
        self.inbound.pop((mapping.proto, mapping.outside, mapping.ext_port), None)

    def _sweep(self, now: float, count: int) -> None:
        order = self._order
        for _ in range(min(count, len(order))):
            mapping = order.popleft()
            if mapping.dead:
                continue
            if mapping.expires < now:
                self._drop(mapping)
                self.counters["expired"] += 1
            else:
                order.append(mapping)

    @staticmethod
    def _refresh(mapping: Mapping, proto: int, flags: int, now: float) -> None:
        if mapping.static:
            return
        if proto == TCP and flags & 0x05:  # FIN or RST: the transitory timeout
            mapping.expires = now + TCP_CLOSING_TIMEOUT
        else:
            mapping.expires = now + TIMEOUTS[proto]

    def _remember(self, mapping: Mapping, dst: bytes, dport: int) -> None:
        if self.filtering == "endpoint-independent" or mapping.static:
            return
        key: Any = dst if self.filtering == "address-dependent" else (dst, dport)
        remotes = mapping.remotes
        if key not in remotes:
            if len(remotes) >= _REMOTES:
                del remotes[next(iter(remotes))]
            remotes[key] = None

    def _admits(self, mapping: Mapping, src: bytes, sport: int) -> bool:
        if self.filtering == "endpoint-independent" or mapping.static:
            return True
        key: Any = src if self.filtering == "address-dependent" else (src, sport)
        return key in mapping.remotes

    # ------------------------------------------------------------ the hooks

    def post_routing(self, packet: H.Packet) -> H.Verdict:
        """Source NAT (masquerade, and a port forward's replies) on the way out."""
        data = packet.data
        if data is None or len(packet.src) != 4 or packet.iface is None:
            return H.ACCEPT
        try:
            return self._out(bytearray(data), packet.iface)
        except (IndexError, struct.error, ValueError):
            self.counters["malformed"] += 1
            return H.DROP

    def pre_routing(self, packet: H.Packet) -> H.Verdict:
        """Destination NAT (a mapping's return traffic, port forwards) on the way in."""
        data = packet.data
        if data is None or len(packet.dst) != 4:
            return H.ACCEPT
        dst = packet.dst
        if dst not in self.addresses and not (self.forwards and self.ip.is_local_address(dst)):
            return H.ACCEPT
        try:
            return self._in(bytearray(data), packet.iface)
        except (IndexError, struct.error, ValueError):
            self.counters["malformed"] += 1
            return H.DROP

    def _out(self, buf: bytearray, iface: Interface) -> H.Verdict:
        ihl = (buf[0] & 0x0F) * 4
        if ihl < 20 or len(buf) < ihl:
            return H.ACCEPT  # the stack's parser counts it
        proto, src = buf[9], bytes(buf[12:16])
        later_fragment = bool(buf[6] & 0x1F or buf[7])
        now = self.ip.now
        # a port forward's reply: from the internal endpoint, leaving away from it
        if self.forwards and not later_fragment and proto in (TCP, UDP) \
                and len(buf) >= ihl + 4:
            sport = (buf[ihl] << 8) | buf[ihl + 1]
            mapping = self.outbound.get((proto, src, sport))
            if mapping is not None and mapping.static:
                for forward, inside_iface in self.forwards:
                    if forward is mapping and inside_iface is not iface:
                        outside = mapping.outside or self._address_on(iface)
                        if outside is None:
                            return H.ACCEPT
                        self._rewrite_source(buf, ihl, proto, outside, mapping.ext_port)
                        return self._finish(buf, ihl, iface)
        rule = self._masquerading(iface, src)
        if rule is None:
            return H.ACCEPT
        outside = rule.address
        if later_fragment:
            self._set_address(buf, 12, outside)
            self.counters["translated_out"] += 1
            return bytes(buf)
        if proto == ICMP and len(buf) >= ihl + 8 and buf[ihl] in _ICMP_ERRORS:
            return self._icmp_error_out(buf, ihl, outside, iface)
        port = self._port_of(buf, ihl, proto, outbound=True)
        if port is None:
            return H.ACCEPT  # not a protocol with ports, or not an echo request
        mapping = self.outbound.get((proto, src, port))
        if mapping is not None and self._expired(mapping, now):
            mapping = None
        if mapping is None:
            mapping = self._allocate(proto, src, port, outside, now)
            if mapping is None:
                return H.DROP
        dport = (buf[ihl + 2] << 8) | buf[ihl + 3] if proto != ICMP else 0
        self._remember(mapping, bytes(buf[16:20]), dport)
        self._refresh(mapping, proto, buf[ihl + 13] if proto == TCP else 0, now)
        self._rewrite_source(buf, ihl, proto, outside, mapping.ext_port)
        return self._finish(buf, ihl, iface)

    def _in(self, buf: bytearray, iface: Interface | None) -> H.Verdict:
        ihl = (buf[0] & 0x0F) * 4
        if ihl < 20 or len(buf) < ihl:
            return H.ACCEPT
        proto, src, dst = buf[9], bytes(buf[12:16]), bytes(buf[16:20])
        if buf[6] & 0x1F or buf[7]:
            inside = self._fragments.get((src, dst, (buf[4] << 8) | buf[5]))
            if inside is not None:
                self._set_address(buf, 16, inside)
                self.counters["translated_in"] += 1
                return bytes(buf)
            return H.ACCEPT
        if proto == ICMP and len(buf) >= ihl + 8 and buf[ihl] in _ICMP_ERRORS:
            return self._icmp_error_in(buf, ihl)
        port = self._port_of(buf, ihl, proto, outbound=False)
        if port is None:
            return H.ACCEPT
        mapping = self.inbound.get((proto, dst, port)) or self.inbound.get((proto, b"", port))
        now = self.ip.now
        if mapping is None or self._expired(mapping, now):
            self.counters["no_mapping"] += 1
            return H.ACCEPT  # for the router itself, perhaps
        sport = (buf[ihl] << 8) | buf[ihl + 1] if proto != ICMP else 0
        if not self._admits(mapping, src, sport):
            self.counters["filtered"] += 1
            return H.DROP
        self._refresh(mapping, proto, buf[ihl + 13] if proto == TCP else 0, now)
        if buf[6] & 0x20:
            key = (src, mapping.inside, (buf[4] << 8) | buf[5])
            self._remember_fragment((src, dst, key[2]), mapping.inside)
        self._rewrite_destination(buf, ihl, proto, mapping.inside, mapping.port)
        self.counters["translated_in"] += 1
        return bytes(buf)

    # --------------------------------------------------------- ICMP errors

    def _icmp_error_out(self, buf: bytearray, ihl: int, outside: bytes,
                        iface: Interface) -> H.Verdict:
        """An inside host's error about a packet that came in through a mapping: the
        quoted packet's destination (the inside endpoint) becomes the external one."""
        quoted = _quoted(buf, ihl)
        if quoted is None:
            return H.ACCEPT
        inner, iihl, iproto, at = quoted
        idst = bytes(buf[inner + 16: inner + 20])
        iport = ((buf[at + 4] << 8) | buf[at + 5]) if iproto == ICMP else \
            ((buf[at + 2] << 8) | buf[at + 3])
        mapping = self.outbound.get((iproto, idst, iport))
        if mapping is None:
            return H.ACCEPT
        self._rewrite_quoted(buf, inner, iihl, iproto, 16, mapping.outside or outside,
                             mapping.ext_port, source=False)
        self._set_address(buf, 12, mapping.outside or outside)
        self._icmp_checksum(buf, ihl)
        self.counters["icmp_errors_translated"] += 1
        return self._finish(buf, ihl, iface, transport=False)

    def _icmp_error_in(self, buf: bytearray, ihl: int) -> H.Verdict:
        """An error from outside about a packet we translated: the quoted packet's source
        (the external endpoint) becomes the inside one again, and so does the error's
        destination."""
        quoted = _quoted(buf, ihl)
        if quoted is None:
            return H.ACCEPT
        inner, iihl, iproto, at = quoted
        isrc = bytes(buf[inner + 12: inner + 16])
        iport = ((buf[at + 4] << 8) | buf[at + 5]) if iproto == ICMP else \
            ((buf[at] << 8) | buf[at + 1])
        mapping = self.inbound.get((iproto, isrc, iport)) or self.inbound.get((iproto, b"", iport))
        if mapping is None or mapping.dead:
            self.counters["no_mapping"] += 1
            return H.ACCEPT
        self._rewrite_quoted(buf, inner, iihl, iproto, 12, mapping.inside, mapping.port,
                             source=True)
        self._set_address(buf, 16, mapping.inside)
        self._icmp_checksum(buf, ihl)
        self.counters["icmp_errors_translated"] += 1
        return bytes(buf)

    def _rewrite_quoted(self, buf: bytearray, inner: int, iihl: int, iproto: int,
                        addr_at: int, address: bytes, port: int, *, source: bool) -> None:
        at = inner + iihl
        old_addr = bytes(buf[inner + addr_at: inner + addr_at + 4])
        if iproto == ICMP:
            port_at = at + 4  # the echo identifier, for both directions
        else:
            port_at = at if source else at + 2
        old_port = bytes(buf[port_at: port_at + 2])
        new_port = port.to_bytes(2, "big")
        buf[inner + addr_at: inner + addr_at + 4] = address
        buf[port_at: port_at + 2] = new_port
        old_csum = (buf[inner + 10] << 8) | buf[inner + 11]
        buf[inner + 10: inner + 12] = adjust_checksum(old_csum, old_addr, address).to_bytes(2, "big")
        csum_at = at + _CSUM_AT.get(iproto, 2)
        if len(buf) >= csum_at + 2:
            old = (buf[csum_at] << 8) | buf[csum_at + 1]
            if old or iproto != UDP:
                if iproto == ICMP:
                    new = adjust_checksum(old, old_port, new_port)
                else:
                    new = adjust_checksum(old, old_addr + old_port, address + new_port)
                buf[csum_at: csum_at + 2] = new.to_bytes(2, "big")

    @staticmethod
    def _icmp_checksum(buf: bytearray, ihl: int) -> None:
        total = (buf[2] << 8) | buf[3]
        buf[ihl + 2: ihl + 4] = b"\0\0"
        buf[ihl + 2: ihl + 4] = internet_checksum(buf[ihl:total]).to_bytes(2, "big")

    # ------------------------------------------------------- field rewriting

    def _masquerading(self, iface: Interface, src: bytes) -> _Masquerade | None:
        for rule in self.rules:
            if rule.iface is not iface or src == rule.address:
                continue
            if rule.nets is None:
                if self.ip.is_local_address(src):
                    continue  # the router's own traffic keeps its address
                return rule
            value = int.from_bytes(src, "big")
            for net, mask in rule.nets:
                if value & mask == net:
                    return rule
        return None

    def _address_on(self, iface: Interface) -> bytes | None:
        for address, _ in iface.addresses:
            if len(address) == 4:
                return address
        return None

    @staticmethod
    def _port_of(buf: bytearray, ihl: int, proto: int, *, outbound: bool) -> int | None:
        if proto in (TCP, UDP):
            if len(buf) < ihl + (20 if proto == TCP else 8):
                raise ValueError("short transport header")
            return (buf[ihl + (0 if outbound else 2)] << 8) | buf[ihl + (1 if outbound else 3)]
        # echo requests create mappings going out; echo replies use them coming in
        if proto == ICMP and len(buf) >= ihl + 8 and buf[ihl] == (8 if outbound else 0):
            return (buf[ihl + 4] << 8) | buf[ihl + 5]
        return None

    def _rewrite_source(self, buf: bytearray, ihl: int, proto: int, address: bytes,
                        port: int) -> None:
        self._rewrite(buf, ihl, proto, 12, 0, address, port)
        self.counters["translated_out"] += 1

    def _rewrite_destination(self, buf: bytearray, ihl: int, proto: int, address: bytes,
                             port: int) -> None:
        self._rewrite(buf, ihl, proto, 16, 2, address, port)

    def _rewrite(self, buf: bytearray, ihl: int, proto: int, addr_at: int, port_off: int,
                 address: bytes, port: int) -> None:
        old_addr = bytes(buf[addr_at: addr_at + 4])
        self._set_address(buf, addr_at, address)
        new_port = port.to_bytes(2, "big")
        if proto == ICMP:
            at = ihl + 4
            old_port = bytes(buf[at: at + 2])
            buf[at: at + 2] = new_port
            old = (buf[ihl + 2] << 8) | buf[ihl + 3]
            buf[ihl + 2: ihl + 4] = adjust_checksum(old, old_port, new_port).to_bytes(2, "big")
            return
        at = ihl + port_off
        old_port = bytes(buf[at: at + 2])
        buf[at: at + 2] = new_port
        csum_at = ihl + _CSUM_AT[proto]
        old = (buf[csum_at] << 8) | buf[csum_at + 1]
        if proto == UDP and old == 0:
            return  # no checksum was sent: none to fix
        new = adjust_checksum(old, old_addr + old_port, address + new_port)
        if proto == UDP and new == 0:
            new = 0xFFFF
        buf[csum_at: csum_at + 2] = new.to_bytes(2, "big")

    @staticmethod
    def _set_address(buf: bytearray, at: int, address: bytes) -> None:
        old = bytes(buf[at: at + 4])
        buf[at: at + 4] = address
        csum = (buf[10] << 8) | buf[11]
        buf[10:12] = adjust_checksum(csum, old, address).to_bytes(2, "big")

    def _finish(self, buf: bytearray, ihl: int, iface: Interface, *,
                transport: bool = True) -> bytes:
        """Leaving by an untrusted interface: every checksum recomputed whole."""
        if not iface.trusted:
            buf[10:12] = b"\0\0"
            buf[10:12] = internet_checksum(buf[:ihl]).to_bytes(2, "big")
            proto = buf[9]
            total = (buf[2] << 8) | buf[3]
            if transport and proto in _CSUM_AT and not (buf[6] & 0x3F or buf[7]):
                at = ihl + _CSUM_AT[proto]
                if not (proto == UDP and buf[at] == 0 and buf[at + 1] == 0):
                    buf[at: at + 2] = b"\0\0"
                    value = transport_checksum(bytes(buf[12:16]), bytes(buf[16:20]), proto,
                                               buf[ihl:total])
                    if proto == UDP and value == 0:
                        value = 0xFFFF
                    buf[at: at + 2] = value.to_bytes(2, "big")
        return bytes(buf)

    def _remember_fragment(self, key: tuple[bytes, bytes, int], inside: bytes) -> None:
        fragments = self._fragments
        if len(fragments) >= _FRAGMENTS:
            del fragments[next(iter(fragments))]
        fragments[key] = inside


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _quoted(buf: bytearray, ihl: int) -> tuple[int, int, int, int] | None:
    """Where an ICMP error's quoted packet lies: (its start, its header length, its
    protocol, its transport header's start), or None when too little of it is quoted to
    name a flow (a header and the 4 bytes of ports / echo id that NAT maps by)."""
    inner = ihl + 8
    if len(buf) < inner + 28:
        return None
    iihl = (buf[inner] & 0x0F) * 4
    at = inner + iihl
    if iihl < 20 or len(buf) < at + 4:
        return None
    return inner, iihl, buf[inner + 9], at
