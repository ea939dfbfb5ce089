"""The IP layer of one host: input validation, demultiplexing, output, forwarding.

Sans-IO: every entry point takes ``now`` (or runs inside one that did and left it
in :attr:`IPStack.now`), and packets leave through :attr:`Interface.transmit`.
Nothing here raises on received bytes: a bad packet is counted and dropped.

Checksums are handled like NIC checksum offload: transport layers leave their
checksum field zero and :meth:`IPStack.output` fills it only when the outgoing
interface is untrusted; input verifies only what arrived on an untrusted one.
"""

from __future__ import annotations

import errno
import os
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from multisock.stack import addresses as A
from multisock.stack.fragments import Reassembler, fragment_sizes
from multisock.stack.hooks import (
    FORWARD,
    INPUT,
    OUTPUT,
    POST_ROUTING,
    PRE_ROUTING,
    Hook,
    Hooks,
    Packet,
)
from multisock.stack.icmp_limit import TokenBucket
from multisock.stack.icmp_quote import clamp_path_mtu, parse_quoted4, parse_quoted6
from multisock.stack.interface import Interface
from multisock.stack.routing import DestinationMemo, Route, RoutingTable, Rule
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6
from multisock.wire.checksum import transport_checksum, verify_transport_checksum
from multisock.wire.errors import MalformedPacket

if TYPE_CHECKING:
    from multisock.stack.ping import PingStack
    from multisock.stack.tcp.stack import TcpStack
    from multisock.stack.udp import UdpStack

# Final (here and below): compiled code inlines a number, and keeps an object in a C
# static, where a plain module global is a dictionary lookup at each use
PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ICMPV6: Final = 58
DEFAULT_TTL: Final = 64
# a TCP payload of at least this many bytes leaves through ``Interface.transmit_split``,
# when the interface has one; below it, copying it into one packet costs less than the split
SPLIT_MIN: Final = 8192
# groups every host hears without joining: all-hosts (224.0.0.1), all-nodes (ff01::1, ff02::1)
_ALWAYS_MEMBER = frozenset({bytes([224, 0, 0, 1]), b"\xff\x01" + bytes(13) + b"\x01",
                            b"\xff\x02" + bytes(13) + b"\x01"})

_ICMP4_UNREACH_ERRNO = {
    icmpv4.NET_UNREACH: errno.ENETUNREACH,
    icmpv4.HOST_UNREACH: errno.EHOSTUNREACH,
    icmpv4.PROTO_UNREACH: errno.ENOPROTOOPT,
    icmpv4.PORT_UNREACH: errno.ECONNREFUSED,
    icmpv4.FRAG_NEEDED: errno.EMSGSIZE,
}
MAIN_TABLE = 254  # Linux's number for the main table (``ip rule``'s "lookup main")
MAIN_RULE_PRIORITY = 32766
_PMTU_ENTRIES = 4096  # learned path MTUs kept (destinations are few; a bound all the same)


# a 20-byte IPv4 header: built whole for TCP's fast path, read whole by input's
_IPV4_HEADER: Final = struct.Struct("!BBHHHBBH4s4s")
# its methods bound once (compiled code calls them without a method lookup), the fields typed
# (compiled code compares them as native ints)
_IPv4Fields = tuple[int, int, int, int, int, int, int, int, bytes, bytes]
_unpack_ipv4: Final[Callable[..., _IPv4Fields]] = _IPV4_HEADER.unpack_from
_pack_ipv4: Final[Callable[..., bytes]] = _IPV4_HEADER.pack
_memoryview: Final = memoryview  # (the builtin's name is a builtins lookup at each use)


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))



def _checksum_here(iface: Interface, dst: bytes, header: bytes,
                   payload: bytes | memoryview, mtu: int) -> bool:
    """Must IP fill the transport checksum of a message leaving by ``iface``? On an
    untrusted interface, always; on one whose link completes whole packets' checksums,
    when the message will be fragmented (the link never sees the datagram whole)."""
    if not iface.trusted:
        return True
    return iface.completes_checksums and (
        len(header) + len(payload) + (20 if len(dst) == 4 else 40) > mtu)

class IPStack:
    """IPv4 + IPv6 for one host, with ICMP, and slots for the transports above it.

    The transports register with the IP layer, which never imports them (smoltcp's
    interface dispatching to sockets): whoever builds a host (``net.host.Host``) makes a
    ``UdpStack``, a ``PingStack`` and a ``TcpStack`` over this object and puts them in
    :attr:`udp`, :attr:`ping` and :attr:`tcp`. IP reaches them through those attributes
    only, so the layer below knows the ones above by their interface, never by import.
    """

    udp: UdpStack  # UDP datagrams, and ICMP errors quoting one
    ping: PingStack  # ICMP echo replies for ping sockets

    def __init__(self, name: str, rng: random.Random | None = None) -> None:
        self.name = name
        self.rng = rng or random.Random()
        self.now = 0.0
        self.interfaces: list[Interface] = []
        # every address of every interface: route() and input ask "is it ours?" per packet
        self._local: set[bytes] = set()
        self.routes = RoutingTable()
        # policy routing (``ip rule``): None while no rule was added, which is all the
        # lookups and the fast paths ask; the main table is ``routes``
        self.rules: list[Rule] | None = None
        self.tables: dict[int, RoutingTable] = {MAIN_TABLE: self.routes}
        # equal-cost multipath: what a forwarded packet's flow hash covers - 0 addresses
        # (Linux's fib_multipath_hash_policy default), 1 addresses, protocol and ports
        self.hash_policy = 0
        # per host, as Linux's is per boot: CRC-32 of the name, at the first flow hash
        # (zlib, 0.15 MiB resident, is imported then: docs/performance.md, footprint)
        self._hash_seed = -1
        # a forwarded packet's firewall mark for rules with fwmark (iptables -j MARK's part;
        # the security layer or a script sets it); None: every mark is 0
        self.marker: Callable[[bytes, Interface], int] | None = None
        # ICMP redirects (RFC 1122 3.2.2.2, RFC 1812 5.2.7.2), Linux's defaults: a router
        # sends them, a host (not forwarding) obeys them
        self.send_redirects = True
        self.accept_redirects = True
        self.forwarding = False
        # deliver every unicast packet locally, whatever its destination (IP_TRANSPARENT with
        # TPROXY's role): the host gateway's node terminates flows to any address this way
        self.transparent = False
        # asked before an echo request is answered: (src, dst, ident, seq, data) -> True
        # when taken (the gateway relays pings to real addresses instead of faking replies)
        self.echo_hook: Callable[[bytes, bytes, int, int, bytes], bool] | None = None
        self.default_ttl = DEFAULT_TTL
        self.reassembly4 = Reassembler(timeout=30.0)
        self.reassembly6 = Reassembler(timeout=60.0)
        self.icmp_limiter = TokenBucket()
        self._ident = self.rng.randrange(65536)
        self._pmtu: dict[bytes, int] = {}
        self._routes_to = DestinationMemo(self.routes)  # route(dst), see _cached_route
        self._sources_for = DestinationMemo(self.routes)  # select_source(dst)
        self.tcp: Any = None  # a TcpStack, attached by the host like udp and ping
        self.raw_listeners: list[Callable[[bytes, bytes, int, bytes], None]] = []
        self.raw_icmp: Any = None  # created with the first raw ICMP socket
        # netfilter-like hook points (stack/hooks.py); None while nothing is registered,
        # which is all the fast paths ask
        self.hooks: Hooks | None = None
        self.counters: dict[str, int] = {
            "in_packets": 0,
            "in_delivered": 0,
            "in_malformed": 0,
            "in_bad_checksum": 0,
            "in_not_for_us": 0,
            "in_martian_source": 0,
            "in_unknown_proto": 0,
            "out_packets": 0,
            "out_no_route": 0,
            "out_fragments": 0,
            "out_gso_packets": 0,  # TCP segments of several MSS handed whole to a link
            "out_gso_split": 0,  # ... and cut here, for a link or hooks that need whole ones
            "forwarded": 0,
            "ttl_exceeded": 0,
            "icmp_in": 0,
            "icmp_out": 0,
            "icmp_errors_sent": 0,
            "icmp_rate_limited": 0,
            "echo_replies_sent": 0,
            "redirects_sent": 0,
            "redirects_accepted": 0,
            "redirects_ignored": 0,
        }
        self.malformed_reasons: dict[str, int] = {}
        lo = self.add_interface("lo", mtu=65536, loopback=True, trusted=True)
        self.add_address(lo, "127.0.0.1/8")
        self.add_address(lo, "::1/128")

    # ----------------------------------------------------------- configuration

    def add_interface(
        self, name: str, mtu: int = 65535, *, loopback: bool = False, trusted: bool = True
    ) -> Interface:
        iface = Interface(name, len(self.interfaces) + 1, mtu, loopback=loopback, trusted=trusted)
        self.interfaces.append(iface)
        return iface

    def add_hook(self, point: str, hook: Hook) -> None:
        """Plug ``hook`` into one of the hook points (``hooks.PRE_ROUTING``...): the
        security layer's way in. See ``multisock/stack/hooks.py`` for verdicts."""
        if self.hooks is None:
            self.hooks = Hooks()
        self.hooks.add(point, hook)

    def remove_hook(self, point: str, hook: Hook) -> None:
        if self.hooks is not None:
            self.hooks.remove(point, hook)
            if self.hooks.empty():
                self.hooks = None  # the fast paths again

    def interface(self, name: str) -> Interface:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        raise KeyError(name)

    def add_address(self, iface: Interface, cidr: str) -> tuple[bytes, int]:
        addr, length = A.parse_cidr(cidr)
        iface.addresses.append((addr, length))
        self._local.add(addr)
        self.routes.add(Route(addr, length, iface, source=addr))
        return addr, length

    def add_route(
        self, cidr: str, *, via: str | None = None, dev: str | None = None, metric: int = 0,
        mtu: int | None = None, table: int = MAIN_TABLE,
    ) -> Route:
        """Add a route; ``via`` a gateway (its interface found by lookup) and/or ``dev``;
        ``table``: a policy routing table other than main (created on first use)."""
        prefix, length = A.parse_cidr(cidr)
        gateway = A.pack(via) if via is not None else None
        if dev is not None:
            iface = self.interface(dev)
        elif gateway is not None:
            hop = self.routes.lookup(gateway)
            if hop is None:
                raise _oserror(errno.ENETUNREACH)
            iface = hop.interface
        else:
            raise ValueError("a route needs via= or dev=")
        if gateway is not None and len(gateway) != len(prefix):
            raise ValueError("gateway family differs from the prefix's")
        return self.table(table).add(
            Route(prefix, length, iface, gateway=gateway, metric=metric, mtu=mtu))

    def table(self, number: int) -> RoutingTable:
        """Routing table ``number`` (254 is main), created empty on first use."""
        found = self.tables.get(number)
        if found is None:
            found = self.tables[number] = RoutingTable()
            found.multipath = self.routes.multipath
        return found

    def add_rule(self, table: int, *, priority: int | None = None, src: str | None = None,
                 dst: str | None = None, iif: str | None = None, fwmark: int | None = None,
                 mask: int = 0xFFFFFFFF) -> Rule:
        """``ip rule add [from SRC] [to DST] [iif IF] [fwmark M[/MASK]] lookup TABLE``.
        The first rule added also installs Linux's "from all lookup main" at 32766; a rule
        without a priority gets the one below the lowest already there, as Linux gives."""
        if self.rules is None:
            self.rules = [Rule(MAIN_RULE_PRIORITY, MAIN_TABLE)]
        if priority is None:
            priority = max(min(r.priority for r in self.rules) - 1, 1)
        rule = Rule(priority, table, fwmark=fwmark, mask=mask, iif=iif)
        if src is not None:
            rule.src, rule.src_len = A.parse_cidr(src if "/" in src else src + (
                "/32" if ":" not in src else "/128"))
        if dst is not None:
            rule.dst, rule.dst_len = A.parse_cidr(dst if "/" in dst else dst + (
                "/32" if ":" not in dst else "/128"))
        self.table(table)
        self.rules.append(rule)
        self.rules.sort(key=lambda r: r.priority)
        self.routes.version += 1  # the memos keyed by destination alone must forget
        return rule

    def set_multipath(self, enabled: bool = True, hash_policy: int | None = None) -> None:
        """Equal-cost multipath in every table (see ``RoutingTable``); ``hash_policy`` as
        Linux's ``fib_multipath_hash_policy``: 0 addresses, 1 addresses and ports."""
        for table in self.tables.values():
            table.multipath = enabled
            table.version += 1
        if hash_policy is not None:
            self.hash_policy = hash_policy

    def _flow_hash(self, src: bytes, dst: bytes, ports: bytes = b"") -> int:
        """32 bits per flow: CRC-32 of the fields (seeded per host), then MurmurHash3's
        finaliser, since CRC's high bits - which hash-threshold reads - barely move when
        only a port changes."""
        import zlib

        if self._hash_seed < 0:
            self._hash_seed = zlib.crc32(self.name.encode())
        h = zlib.crc32(ports, zlib.crc32(dst, zlib.crc32(src, self._hash_seed)))
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    def _policy_route(self, dst: bytes, src: bytes, iif: str | None, mark: int,
                      flow: int) -> Route | None:
        """The first rule that matches and whose table has a route (``ip route get``)."""
        assert self.rules is not None
        tables = self.tables
        for rule in self.rules:
            if rule.matches(src, dst, iif, mark):
                table = tables.get(rule.table)
                if table is not None:
                    found = table.lookup(dst, flow)
                    if found is not None:
                        return found
        return None

    def local_addresses(self) -> list[bytes]:
        return [a for iface in self.interfaces for a, _ in iface.addresses]

    def is_local_address(self, addr: bytes) -> bool:
        if addr in self._local:
            return True
        if A.is_wildcard(addr):
            return True
        return len(addr) == 4 and addr[0] == 127

    def check_bind_address(self, family: int, addr: bytes, v6only: bool) -> None:
        """EADDRNOTAVAIL for an address this host does not own (multicast allowed)."""
        check = addr[12:] if A.is_v4mapped(addr) else addr
        if A.is_multicast(check) or A.is_v4_broadcast(check):
            return
        if not self.is_local_address(check):
            raise _oserror(errno.EADDRNOTAVAIL)

    # ----------------------------------------------------------------- routing

    def route(self, dst: bytes, src: bytes = b"", mark: int = 0) -> Route | None:
        """Local destinations go over loopback (Linux's ``local`` table), others by LPM
        (through the policy rules when there are any; among equal-cost routes by a hash
        of the destination, so every packet to one place takes one path)."""
        if dst in self._local or (self.is_local_address(dst) and not A.is_wildcard(dst)):
            return self._loopback_route(dst)
        if self.rules is not None:
            return self._policy_route(dst, src, None, mark, self._flow_hash(b"", dst))
        if self.routes.multipath:
            return self.routes.lookup(dst, self._flow_hash(b"", dst))
        return self.routes.lookup(dst)

    def _loopback_route(self, dst: bytes) -> Route:
        lo = self.interfaces[0]
        return Route(dst, len(dst) * 8, lo, source=dst)

    def select_source(self, dst: bytes) -> bytes | None:
        """RFC 6724-ish: the route's preferred source, else the interface's first of the family.

        Remembered per destination while the routing table stands (every connect asks; an
        address added also adds a route, which moves the table's version)."""
        src: bytes | None = self._sources_for.get(dst)
        if src is None:
            src = self._select_source(dst)
            if src is not None:
                self._sources_for.put(dst, src)
        return src

    def _select_source(self, dst: bytes) -> bytes | None:
        if self.is_local_address(dst) and not A.is_wildcard(dst):
            return dst
        route = self.routes.lookup(dst)
        if route is None:
            return None
        if route.source is not None and len(route.source) == len(dst):
            return route.source
        own = route.interface.addresses_of(A.family_of(dst))
        if own:
            for addr in own:
                if route.interface.on_link(dst) and A.same_prefix(addr, dst, 64 if len(dst) == 16 else 0):
                    return addr
            return own[0]
        for iface in self.interfaces:
            if not iface.loopback:
                own = iface.addresses_of(A.family_of(dst))
                if own:
                    return own[0]
        return None

    def route_mtu(self, dst: bytes) -> int | None:
        route = self._cached_route(dst)  # (every connect and every new child asks)
        if route is None:
            return None
        mtu = min(route.path_mtu(), 65535)  # lo's 65536 cannot carry one IPv4 packet that big
        learned = self._pmtu.get(dst)
        return min(mtu, learned) if learned else mtu

    # ------------------------------------------------------------------ output

    def output(
        self,
        src: bytes,
        dst: bytes,
        proto: int,
        header: bytes,
        payload: bytes | memoryview = b"",
        *,
        ttl: int | None = None,
        tos: int = 0,
        df: bool | None = None,
        csum_offset: int | None = None,
        broadcast_ok: bool = False,
        mc_iface: Interface | None = None,
        mc_loop: bool = True,
    ) -> None:
        """Send one transport message; raises OSError for what the caller must report.

        To a multicast group: out of ``mc_iface`` (IP_MULTICAST_IF) or the interface the
        routing table gives, and with ``mc_loop`` (IP_MULTICAST_LOOP) a copy to this host
        too, which its own memberships then filter like any arrival."""
        if A.is_v4_broadcast(dst) and not broadcast_ok:
            raise _oserror(errno.EACCES)
        if A.is_multicast(dst):
            self._output_multicast(src, dst, proto, header, payload, ttl, tos, csum_offset,
                                   mc_iface, mc_loop)
            return
        route = self.route(dst, src)
        if route is None:
            self.counters["out_no_route"] += 1
            raise _oserror(errno.ENETUNREACH)
        iface = route.interface
        if not src:
            chosen = self.select_source(dst)
            if chosen is None:
                raise _oserror(errno.EADDRNOTAVAIL)
            src = chosen
        hooks = self.hooks
        if hooks is not None and hooks.output and not hooks.admit(
                OUTPUT, Packet(OUTPUT, src, dst, proto, header, None, None, payload, iface)):
            raise _oserror(errno.EPERM)  # what Linux's send() says when OUTPUT drops
        if ttl is None:
            ttl = self.default_ttl if not A.is_multicast(dst) else 1
        if csum_offset is None or not _checksum_here(iface, dst, header, payload,
                                                     route.path_mtu()):
            # the payload stays apart: _send copies it once, next to the IP header
            self._send(route, src, dst, proto, header, ttl, tos, df, payload)
            return
        buf = bytearray(header)
        buf += payload
        value = transport_checksum(src, dst, proto, buf)
        if value == 0 and proto == PROTO_UDP:
            value = 0xFFFF
        buf[csum_offset : csum_offset + 2] = value.to_bytes(2, "big")
        self._send(route, src, dst, proto, bytes(buf), ttl, tos, df)

    def _output_multicast(
        self, src: bytes, dst: bytes, proto: int, header: bytes, payload: bytes | memoryview,
        ttl: int | None, tos: int, csum_offset: int | None, iface: Interface | None,
        loop: bool,
    ) -> None:
        if iface is None:
            iface = self.multicast_device(dst)
            if iface is None:
                self.counters["out_no_route"] += 1
                raise _oserror(errno.ENETUNREACH)
        if not src:
            own = iface.addresses_of(A.family_of(dst))
            chosen = own[0] if own else self.select_source(dst)
            if chosen is None:
                raise _oserror(errno.EADDRNOTAVAIL)
            src = chosen
        hooks = self.hooks
        if hooks is not None and hooks.output and not hooks.admit(
                OUTPUT, Packet(OUTPUT, src, dst, proto, header, None, None, payload, iface)):
            raise _oserror(errno.EPERM)
        if ttl is None:
            ttl = 1
        segment: bytes | memoryview = header
        if csum_offset is not None and _checksum_here(iface, dst, header, payload, iface.mtu):
            buf = bytearray(header)
            buf += payload
            value = transport_checksum(src, dst, proto, buf)
            if value == 0 and proto == PROTO_UDP:
                value = 0xFFFF
            buf[csum_offset : csum_offset + 2] = value.to_bytes(2, "big")
            segment, payload = bytes(buf), b""
        bits = len(dst) * 8
        if ttl > 0 or iface.loopback:
            self._send(Route(dst, bits, iface, source=src), src, dst, proto, segment, ttl, tos,
                       None, payload)
        if loop and not iface.loopback:
            # Linux loops a copy back (ip_mc_output's dev_loopback_xmit): it arrives by
            # lo here, where any interface's membership admits it
            self._send(self._loopback_route(dst), src, dst, proto, segment, ttl, tos, None,
                       payload)

    def multicast_device(self, group: bytes, addr: bytes | None = None,
                         ifindex: int = 0) -> Interface | None:
        """The interface a group is joined on or sent from: by index, by one of its
        addresses, else where the routing table sends the group (IPv6 also falls back to
        the first link, as Linux's ff00::/8 route on every interface would); None: ENODEV."""
        if ifindex:
            for iface in self.interfaces:
                if iface.index == ifindex:
                    return iface
            return None
        if addr is not None and not A.is_wildcard(addr):
            for iface in self.interfaces:
                if iface.has_address(addr) or (iface.loopback and len(addr) == 4
                                               and addr[0] == 127):
                    return iface  # (127/8 is all lo's, as Linux's local table has it)
            return None
        route = self.routes.lookup(group)
        if route is not None:
            return route.interface
        if len(group) == 16:
            for iface in self.interfaces:
                if not iface.loopback:
                    return iface
        return None

    def join_group(self, iface: Interface, group: bytes) -> None:
        iface.groups[group] = iface.groups.get(group, 0) + 1

    def leave_group(self, iface: Interface, group: bytes) -> None:
        count = iface.groups.get(group, 0) - 1
        if count > 0:
            iface.groups[group] = count
        else:
            iface.groups.pop(group, None)

    def is_member(self, group: bytes, iface: Interface) -> bool:
        """Does this host take a datagram for ``group`` arriving on ``iface``? All-hosts and
        all-nodes always; a looped-back copy (lo) when any interface joined the group."""
        if group in _ALWAYS_MEMBER:
            return True
        if iface.loopback:
            return any(group in i.groups for i in self.interfaces)
        return group in iface.groups

    def _send(
        self,
        route: Route,
        src: bytes,
        dst: bytes,
        proto: int,
        segment: bytes | memoryview,
        ttl: int,
        tos: int,
        df: bool | None,
        payload: bytes | memoryview = b"",
    ) -> None:
        """``segment`` (+ ``payload``) behind an IP header, fragmented when needed."""
        iface = route.interface
        mtu = min(route.path_mtu(), 65535)
        next_hop = route.next_hop(dst)
        checksum = not iface.trusted
        if len(dst) == 4:
            length = len(segment) + len(payload)
            if 20 + length <= mtu:
                ident = self._next_ident()
                hdr = ipv4.build(
                    src, dst, proto, length, ttl=ttl, tos=tos, ident=ident,
                    df=bool(df) if df is not None else proto == PROTO_TCP, checksum=checksum,
                )
                packet = b"".join((hdr, segment, payload)) if len(payload) else hdr + segment
                self._transmit(iface, packet, next_hop)
                return
        if len(payload):
            segment = b"".join((segment, payload))
        if len(dst) == 4:
            if df:
                raise _oserror(errno.EMSGSIZE)
            ident = self._next_ident()
            view = memoryview(segment)
            pieces = fragment_sizes(len(segment), mtu, 20)
            for i, (offset, size) in enumerate(pieces):
                hdr = ipv4.build(
                    src, dst, proto, size, ttl=ttl, tos=tos, ident=ident, mf=i < len(pieces) - 1,
                    frag_offset=offset, checksum=checksum,
                )
                self.counters["out_fragments"] += 1
                self._transmit(iface, hdr + view[offset : offset + size], next_hop)
            return
        total = 40 + len(segment)
        if total <= mtu:
            hdr = ipv6.build(src, dst, proto, len(segment), hop_limit=ttl, traffic_class=tos)
            self._transmit(iface, hdr + segment, next_hop)
            return
        if df is False or proto != PROTO_TCP:
            ident = self.rng.getrandbits(32)
            view = memoryview(segment)
            pieces = fragment_sizes(len(segment), mtu, 48)
            for i, (offset, size) in enumerate(pieces):
                frag = ipv6.build_fragment_header(proto, offset, i < len(pieces) - 1, ident)
                hdr = ipv6.build(
                    src, dst, ipv6.FRAGMENT, size + 8, hop_limit=ttl, traffic_class=tos
                )
                self.counters["out_fragments"] += 1
                self._transmit(iface, hdr + frag + view[offset : offset + size], next_hop)
            return
        raise _oserror(errno.EMSGSIZE)

    def _next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _transmit(self, iface: Interface, packet: bytes, next_hop: bytes) -> None:
        hooks = self.hooks
        if hooks is not None and hooks.post_routing:
            kept = hooks.rewrite(POST_ROUTING, packet, iface)
            if kept is None:
                return
            packet = kept
        counters = iface.counters
        counters["tx_packets"] += 1
        counters["tx_bytes"] += len(packet)
        self.counters["out_packets"] += 1
        iface.transmit(packet, next_hop, self.now)

    # ------------------------------------------------------------------- input

    def input(self, packet: bytes, iface: Interface, now: float, verify: bool = False) -> None:
        """One packet arrived on ``iface``. Never raises.

        ``verify``: check its checksums even though ``iface`` is trusted - the link did not
        vouch for this one (a TUN device whose kernel says it did not check the packet)."""
        self.now = now
        self.counters["in_packets"] += 1
        counters = iface.counters
        counters["rx_packets"] += 1
        size = len(packet)
        counters["rx_bytes"] += size
        hooks = self.hooks
        if hooks is not None and hooks.pre_routing:
            kept = hooks.rewrite(PRE_ROUTING, packet, iface)
            if kept is None:
                return
            packet = kept  # (what the fast path below then looks at)
            size = len(packet)
        tcp: TcpStack | None = self.tcp  # (typed: compiled code calls its input directly)
        if size >= 20 and packet[0] == 0x45 and iface.trusted and tcp is not None and not verify:
            # fast path, the usual packet: IPv4 without options or fragmentation, TCP, for an
            # address of ours, from a trusted link (no checksum to verify). It takes exactly
            # the branches _input4 and _deliver would, INPUT hooks included; anything else
            # goes the general way.
            _, _, total, _, frag, _, proto, _, src, dst = _unpack_ipv4(packet)
            # (a source that may be a martian - ours, loopback, multicast or broadcast -
            # arriving on a link goes the general way: _martian_source decides there)
            if (proto == PROTO_TCP and not frag & 0x3FFF and 20 <= total <= size
                    and dst in self._local and not self.raw_listeners
                    and (iface.loopback or not (src[0] == 127 or src[0] >= 224
                                                or src in self._local))):
                segment = _memoryview(packet)[20:total]
                if hooks is not None and hooks.input and not hooks.admit(
                        INPUT, Packet(INPUT, src, dst, PROTO_TCP, segment, packet, iface)):
                    return
                self.counters["in_delivered"] += 1
                tcp.input(src, dst, segment, now)
                return
            if (proto == PROTO_UDP and not frag & 0x3FFF and 20 <= total <= size
                    and dst in self._local and not self.raw_listeners
                    and (iface.loopback or not (src[0] == 127 or src[0] >= 224
                                                or src in self._local))):
                # the same fast path for a unicast UDP datagram: _input4's and _deliver's
                # branches for it (an address of ours is never a broadcast; no checksum to
                # verify on a trusted link), without their parse and per-protocol tests
                self._udp_input_fast(packet, iface, now, src, dst, total)
                return
        try:
            if not packet:
                raise MalformedPacket("ip", "empty packet")
            version = packet[0] >> 4
            if version == 4:
                self._input4(packet, iface, now, verify or not iface.trusted)
            elif version == 6:
                self._input6(packet, iface, now, verify or not iface.trusted)
            else:
                raise MalformedPacket("ip", "unknown version")
        except MalformedPacket as exc:
            self._malformed(exc)

    def input_split(self, head: bytes, payload: memoryview | bytes, iface: Interface,
                    now: float) -> None:
        """``input`` of a packet that came apart: its IP and TCP headers, and its payload as
        the sender's TCP handed it over (``Interface.transmit_split``). Taken by the fast path's
        rules (IPv4 without options, TCP, for us, trusted link, no hooks or raw listeners);
        any other packet is joined and goes through ``input``. Never raises."""
        size = len(head) + len(payload)
        tcp: TcpStack | None = self.tcp  # (typed: compiled code calls its input directly)
        if (self.hooks is None and iface.trusted and tcp is not None and len(head) >= 40
                and head[0] == 0x45 and not self.raw_listeners):
            _, _, total, _, frag, _, proto, _, src, dst = _unpack_ipv4(head)
            if (proto == PROTO_TCP and not frag & 0x3FFF and total == size
                    and dst in self._local
                    and (iface.loopback or not (src[0] == 127 or src[0] >= 224
                                                or src in self._local))):
                self.now = now
                counters = self.counters
                counters["in_packets"] += 1
                counters["in_delivered"] += 1
                icounters = iface.counters
                icounters["rx_packets"] += 1
                icounters["rx_bytes"] += size
                view = payload if isinstance(payload, memoryview) else _memoryview(payload)
                tcp.input(src, dst, _memoryview(head)[20:], now, view)
                return
        self.input(b"".join((head, payload)), iface, now)

    def _udp_input_fast(self, packet: bytes, iface: Interface, now: float, src: bytes,
                        dst: bytes, total: int) -> None:
        """input()'s fast path for a unicast UDP datagram to an address of ours (its checks
        made there): INPUT hooks, then UDP, then port unreachable as _deliver would."""
        segment = memoryview(packet)[20:total]
        hooks = self.hooks
        if hooks is not None and hooks.input and not hooks.admit(
                INPUT, Packet(INPUT, src, dst, PROTO_UDP, segment, packet, iface)):
            return
        self.counters["in_delivered"] += 1
        if not self.udp.input(src, dst, segment, False, packet[8], packet[1], iface.index):
            self._icmp_port_unreachable(src, dst, packet, now)

    def _malformed(self, exc: MalformedPacket) -> None:
        self.counters["in_malformed"] += 1
        key = f"{exc.layer}: {exc.reason}"
        self.malformed_reasons[key] = self.malformed_reasons.get(key, 0) + 1

    def _for_us4(self, dst: bytes, iface: Interface) -> tuple[bool, bool]:
        """(accept, broadcast) for an IPv4 destination; a group only when joined."""
        if dst in self._local:
            return True, False  # (never a broadcast or multicast address)
        if A.is_v4_broadcast(dst):
            return True, True
        if A.is_multicast(dst):
            return self.is_member(dst, iface), True
        for iface in self.interfaces:
            for addr, length in iface.addresses:
                if len(addr) != 4:
                    continue
                if addr == dst:
                    return True, False
                if length < 31 and A.same_prefix(addr, dst, length):
                    host_bits = 32 - length
                    if int.from_bytes(dst, "big") & ((1 << host_bits) - 1) == (1 << host_bits) - 1:
                        return True, True
        if dst[0] == 127:
            return True, False
        return False, False

    def _martian_source(self, src: bytes, iface: Interface) -> bool:
        """A source that cannot have come from this interface: one of our own addresses or
        a loopback one arriving on a link, or a multicast/broadcast source. Linux drops
        these as martians (``accept_local`` and ``route_localnet`` off; RFC 1122 3.2.1.3,
        RFC 4291 2.5.3). One forged LAND SYN (source = destination) would otherwise make a
        connection talk to itself; the TCP rate limits bound that loop, this stops it."""
        if iface.loopback:
            return False
        if (src in self._local or A.is_loopback(src) or A.is_multicast(src)
                or src == b"\xff\xff\xff\xff"):
            self.counters["in_martian_source"] += 1
            return True
        return False

    def _input4(self, packet: bytes, iface: Interface, now: float, verify: bool) -> None:
        header, payload = ipv4.parse(packet, verify_checksum=verify)
        if self._martian_source(header.src, iface):
            return
        dst = header.dst
        accept, broadcast = self._for_us4(dst, iface)
        if not accept and not self.transparent:
            self._forward(packet, header.src, dst, header.ttl, iface, now, header)
            return
        if header.mf or header.frag_offset:
            key = (header.src, dst, header.proto, header.ident)
            whole = self.reassembly4.add(
                key, header.frag_offset, header.mf, payload, now,
                header=bytes(packet[: header.header_length + 8]) if header.frag_offset == 0 else None,
            )
            if whole is None:
                return
            payload = memoryview(whole)
        self._deliver(header.src, dst, header.proto, payload, iface, now, broadcast, packet,
                      header.ttl, header.tos, verify)

    def _input6(self, packet: bytes, iface: Interface, now: float, verify: bool) -> None:
        header, payload = ipv6.parse(packet)
        if self._martian_source(header.src, iface):
            return
        dst = header.dst
        multicast = A.is_multicast(dst)
        if multicast and not self.is_member(dst, iface):
            self.counters["in_not_for_us"] += 1
            return
        if not multicast and not self.is_local_address(dst) and not self.transparent:
            self._forward(packet, header.src, dst, header.hop_limit, iface, now, header)
            return
        proto = header.next_header
        frag = header.fragment
        if frag is not None:
            key = (header.src, dst, frag.ident)
            whole = self.reassembly6.add(key, frag.offset, frag.more, payload, now)
            if whole is None:
                return
            proto, payload = ipv6.walk_extensions(frag.next_header, memoryview(whole))
        self._deliver(header.src, dst, proto, payload, iface, now, multicast, packet,
                      header.hop_limit, header.traffic_class, verify)

    def _deliver(
        self,
        src: bytes,
        dst: bytes,
        proto: int,
        payload: memoryview,
        iface: Interface,
        now: float,
        broadcast: bool,
        packet: bytes,
        ttl: int,
        tos: int = 0,
        verify: bool = False,
    ) -> None:
        """``verify``: check the transport checksum (an untrusted interface, or a packet its
        link did not vouch for)."""
        hooks = self.hooks
        if hooks is not None and hooks.input and not hooks.admit(
                INPUT, Packet(INPUT, src, dst, proto, payload, packet, iface)):
            return
        for listener in self.raw_listeners:
            listener(src, dst, proto, packet)
        if proto == PROTO_TCP:
            if self.tcp is None or broadcast:
                self.counters["in_unknown_proto"] += 1
                return
            if verify and not verify_transport_checksum(src, dst, proto, payload):
                self.counters["in_bad_checksum"] += 1
                return
            self.counters["in_delivered"] += 1
            self.tcp.input(src, dst, payload, now)
        elif proto == PROTO_UDP:
            if verify and len(payload) >= 8:
                zero = payload[6] == 0 and payload[7] == 0
                if not (zero and len(src) == 4) and not verify_transport_checksum(
                    src, dst, proto, payload
                ):
                    self.counters["in_bad_checksum"] += 1
                    return
            self.counters["in_delivered"] += 1
            if (not self.udp.input(src, dst, payload, broadcast, ttl, tos, iface.index)
                    and not broadcast):
                self._icmp_port_unreachable(src, dst, packet, now)
        elif proto == PROTO_ICMP and len(src) == 4:
            self.counters["in_delivered"] += 1
            self._icmp4_input(src, dst, payload, verify, broadcast, now)
        elif proto == PROTO_ICMPV6 and len(src) == 16:
            self.counters["in_delivered"] += 1
            self._icmp6_input(src, dst, payload, verify, now)
        else:
            self.counters["in_unknown_proto"] += 1
            if not broadcast:
                if len(src) == 4:
                    self._icmp_error4(packet, icmpv4.DEST_UNREACH, icmpv4.PROTO_UNREACH, now)
                else:
                    self._icmp_error6(packet, icmpv6.PARAM_PROBLEM, 1, now, rest=6)

    # -------------------------------------------------------------- forwarding

    def _forward(
        self, packet: bytes, src: bytes, dst: bytes, ttl: int, iface: Interface, now: float,
        header: Any,
    ) -> None:
        if not self.forwarding or A.is_multicast(dst):
            self.counters["in_not_for_us"] += 1
            return
        if ttl <= 1:
            self.counters["ttl_exceeded"] += 1
            if len(dst) == 4:
                self._icmp_error4(packet, icmpv4.TIME_EXCEEDED, 0, now)
            else:
                self._icmp_error6(packet, icmpv6.TIME_EXCEEDED, 0, now)
            return
        if self.rules is None and not self.routes.multipath:
            route = self.routes.lookup(dst)
        else:
            route = self._forward_route(packet, src, dst, iface, header)
        if route is None:
            self.counters["out_no_route"] += 1
            if len(dst) == 4:
                self._icmp_error4(packet, icmpv4.DEST_UNREACH, icmpv4.NET_UNREACH, now)
            else:
                self._icmp_error6(packet, icmpv6.DEST_UNREACH, 0, now)
            return
        hooks = self.hooks
        if hooks is not None and hooks.forward:
            forwarded = Packet.of_wire(FORWARD, packet, iface)
            if forwarded is not None:
                forwarded.out = route.interface
                if not hooks.admit(FORWARD, forwarded):
                    return
        if route.interface is iface and len(dst) == 4 and self.send_redirects:
            self._maybe_redirect(packet, src, dst, route, iface, now)
        mtu = route.path_mtu()
        buf = bytearray(packet)
        if len(dst) == 4:
            buf[8] = ttl - 1
            # incremental checksum update (RFC 1624) is not worth it at this rate: recompute
            if not route.interface.trusted or not iface.trusted:
                buf[10:12] = b"\x00\x00"
                from multisock.wire.checksum import internet_checksum

                buf[10:12] = internet_checksum(buf[: header.header_length]).to_bytes(2, "big")
            if len(buf) > mtu:
                if header.df:
                    self._icmp_error4(
                        packet, icmpv4.DEST_UNREACH, icmpv4.FRAG_NEEDED, now, rest=mtu & 0xFFFF
                    )
                    return
                self.counters["forwarded"] += 1
                payload = packet[header.header_length : header.total_length]
                self._send(
                    route, src, dst, header.proto, payload, ttl - 1, header.tos, False
                )
                return
        else:
            buf[7] = ttl - 1
            if len(buf) > mtu:
                self._icmp_error6(packet, icmpv6.PACKET_TOO_BIG, 0, now, rest=mtu)
                return
        self.counters["forwarded"] += 1
        self._transmit(route.interface, bytes(buf), route.next_hop(dst))

    def _forward_route(self, packet: bytes, src: bytes, dst: bytes, iface: Interface,
                       header: Any) -> Route | None:
        """A forwarded packet's route through the policy rules and/or among equal-cost
        routes (the general case; the plain lookup stays inline in ``_forward``)."""
        ports = b""
        if self.hash_policy == 1:
            if len(dst) == 4:
                proto, start = header.proto, header.header_length
                if proto in (PROTO_TCP, PROTO_UDP) and not header.frag_offset:
                    ports = bytes((proto,)) + packet[start:start + 4]
            elif header.next_header in (PROTO_TCP, PROTO_UDP):
                ports = bytes((header.next_header,)) + packet[40:44]
        flow = self._flow_hash(src, dst, ports)
        if self.rules is None:
            return self.routes.lookup(dst, flow)
        mark = self.marker(packet, iface) if self.marker is not None else 0
        return self._policy_route(dst, src, iface.name, mark, flow)

    def _maybe_redirect(self, packet: bytes, src: bytes, dst: bytes, route: Route,
                        iface: Interface, now: float) -> None:
        """A packet leaving by the interface it came in on, from a neighbour on that link,
        towards a next hop on the same link: tell the sender to use that next hop directly
        (host redirect, RFC 1812 5.2.7.2). The packet is still forwarded."""
        next_hop = route.next_hop(dst)
        if not iface.on_link(src) or next_hop == src or not iface.on_link(next_hop):
            return
        if not self._may_send_error(src, now):
            return
        self.counters["redirects_sent"] += 1
        message = icmpv4.build_error(icmpv4.REDIRECT, 1, packet,
                                     int.from_bytes(next_hop, "big"))
        self._quiet_output(b"", src, PROTO_ICMP, message)

    def _redirect_input(self, src: bytes, msg: Any) -> None:
        """Obey a redirect as Linux's host does (accept_redirects, forwarding off): only from
        the gateway we use for that destination now, only towards a neighbour on that link;
        then a host route through the new gateway takes over."""
        try:
            inner, _quoted = parse_quoted4(msg.body)
        except MalformedPacket:
            self.counters["redirects_ignored"] += 1
            return
        gateway = msg.rest.to_bytes(4, "big")
        current = self.route(inner.dst)
        if (not self.accept_redirects or self.forwarding or current is None
                or current.gateway != src or not current.interface.on_link(gateway)
                or gateway in self._local or msg.code not in (0, 1)):
            self.counters["redirects_ignored"] += 1
            return
        self.counters["redirects_accepted"] += 1
        self.routes.add(Route(inner.dst, 32, current.interface, gateway=gateway,
                              metric=current.metric))

    # -------------------------------------------------------------------- ICMP

    def _icmp4_input(
        self, src: bytes, dst: bytes, payload: memoryview, verify: bool, broadcast: bool, now: float
    ) -> None:
        self.counters["icmp_in"] += 1
        msg = icmpv4.parse(payload, verify_checksum=verify)
        if msg.type == icmpv4.ECHO_REQUEST:
            if broadcast:
                return  # like Linux icmp_echo_ignore_broadcasts=1
            if self.echo_hook is not None and self.echo_hook(src, dst, msg.ident, msg.seq,
                                                             bytes(msg.body)):
                return
            reply = icmpv4.build_echo(icmpv4.ECHO_REPLY, msg.ident, msg.seq, bytes(msg.body))
            self.counters["echo_replies_sent"] += 1
            self._quiet_output(dst, src, PROTO_ICMP, reply)
        elif msg.type == icmpv4.ECHO_REPLY:
            self.ping.echo_reply(src, dst, msg.ident, bytes(payload))
        elif msg.type in (icmpv4.DEST_UNREACH, icmpv4.TIME_EXCEEDED, icmpv4.PARAM_PROBLEM):
            self._icmp4_error_input(msg, now)
        elif msg.type == icmpv4.REDIRECT:
            self._redirect_input(src, msg)

    def _icmp4_error_input(self, msg: Any, now: float) -> None:
        try:
            inner, quoted = parse_quoted4(msg.body)
        except MalformedPacket:
            return
        if msg.type == icmpv4.DEST_UNREACH:
            err = _ICMP4_UNREACH_ERRNO.get(msg.code, errno.EHOSTUNREACH)
            mtu = clamp_path_mtu(msg.mtu, False) if msg.code == icmpv4.FRAG_NEEDED else None
        elif msg.type == icmpv4.TIME_EXCEEDED:
            err, mtu = errno.EHOSTUNREACH, None
        else:
            err, mtu = errno.EPROTO, None
        self._dispatch_error(inner.src, inner.dst, inner.proto, quoted, err, mtu, now)

    def _dispatch_error(
        self, src: bytes, dst: bytes, proto: int, quoted: memoryview, err: int, mtu: int | None,
        now: float,
    ) -> None:
        """Hand an ICMP error to the protocol it is about; a path MTU it carries is learned
        only when that protocol believes it (TCP checks that the quoted segment is one in
        flight, as Linux does before updating the route: a forged error changes nothing)."""
        believed = True
        if proto == PROTO_UDP:
            self.udp.icmp_error(src, dst, quoted, err)
        elif proto == PROTO_TCP and self.tcp is not None:
            believed = bool(self.tcp.icmp_unreachable(src, dst, quoted, err, now, mtu))
        if mtu is not None and believed:
            self._learn_pmtu(dst, mtu)

    def _learn_pmtu(self, dst: bytes, mtu: int) -> None:
        """Remember a smaller path MTU towards ``dst`` (a larger one is ignored, as Linux's
        __ip_rt_update_pmtu does). Bounded: the entries come from packets."""
        learned = self._pmtu.get(dst)
        if learned is not None and learned <= mtu:
            return
        if learned is None and len(self._pmtu) >= _PMTU_ENTRIES:
            self._pmtu.clear()
        self._pmtu[dst] = mtu

    def _icmp6_input(
        self, src: bytes, dst: bytes, payload: memoryview, verify: bool, now: float
    ) -> None:
        self.counters["icmp_in"] += 1
        msg = icmpv6.parse(payload, src if verify else None, dst if verify else None)
        if msg.type == icmpv6.ECHO_REQUEST:
            if self.echo_hook is not None and self.echo_hook(src, dst, msg.ident, msg.seq,
                                                             bytes(msg.body)):
                return
            reply_src = dst if not A.is_multicast(dst) else b""
            reply = icmpv6.build_echo(icmpv6.ECHO_REPLY, msg.ident, msg.seq, bytes(msg.body))
            self.counters["echo_replies_sent"] += 1
            self._quiet_output(reply_src, src, PROTO_ICMPV6, reply, icmpv6.CHECKSUM_OFFSET)
        elif msg.type == icmpv6.ECHO_REPLY:
            self.ping.echo_reply(src, dst, msg.ident, bytes(payload))
        elif msg.type in (icmpv6.DEST_UNREACH, icmpv6.PACKET_TOO_BIG, icmpv6.TIME_EXCEEDED,
                          icmpv6.PARAM_PROBLEM):
            try:
                inner, quoted = parse_quoted6(msg.body)
            except MalformedPacket:
                return
            mtu = None
            if msg.type == icmpv6.DEST_UNREACH:
                err = errno.ECONNREFUSED if msg.code == 4 else errno.EHOSTUNREACH
            elif msg.type == icmpv6.PACKET_TOO_BIG:
                mtu = clamp_path_mtu(msg.mtu, True)
                err = errno.EMSGSIZE
            elif msg.type == icmpv6.TIME_EXCEEDED:
                err = errno.EHOSTUNREACH
            else:
                err = errno.EPROTO
            self._dispatch_error(inner.src, inner.dst, inner.proto, quoted, err, mtu, now)

    def _quiet_output(
        self, src: bytes, dst: bytes, proto: int, message: bytes, csum_offset: int | None = None
    ) -> None:
        """Output for stack-generated packets: a failure is counted, never raised."""
        try:
            self.output(src, dst, proto, message, csum_offset=csum_offset)
            self.counters["icmp_out"] += 1
        except OSError:
            self.counters["out_no_route"] += 1

    def _may_send_error(self, src: bytes, now: float) -> bool:
        """RFC 1122 §3.2.2: never about broadcast/multicast sources or unspecified ones."""
        if A.is_wildcard(src) or A.is_multicast(src) or A.is_v4_broadcast(src):
            return False
        if not self.icmp_limiter.allow(now):
            self.counters["icmp_rate_limited"] += 1
            return False
        return True

    def _icmp_error4(self, packet: bytes, type_: int, code: int, now: float, rest: int = 0) -> None:
        src, dst = packet[12:16], packet[16:20]
        if len(packet) > 9 and packet[9] == PROTO_ICMP:
            # never an error about an ICMP error (RFC 1122 §3.2.2)
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) > ihl and packet[ihl] not in (icmpv4.ECHO_REQUEST, icmpv4.ECHO_REPLY):
                return
        if not self._may_send_error(src, now):
            return
        message = icmpv4.build_error(type_, code, packet, rest)
        self.counters["icmp_errors_sent"] += 1
        reply_src = dst if self.is_local_address(dst) else b""
        self._quiet_output(reply_src, src, PROTO_ICMP, message)

    def _icmp_error6(self, packet: bytes, type_: int, code: int, now: float, rest: int = 0) -> None:
        src, dst = packet[8:24], packet[24:40]
        if len(packet) > 40 and packet[6] == PROTO_ICMPV6 and packet[40] < 128:
            return
        if not self._may_send_error(src, now):
            return
        message = icmpv6.build_error(type_, code, packet, rest)
        self.counters["icmp_errors_sent"] += 1
        reply_src = dst if self.is_local_address(dst) and not A.is_multicast(dst) else b""
        self._quiet_output(reply_src, src, PROTO_ICMPV6, message, icmpv6.CHECKSUM_OFFSET)

    def _icmp_port_unreachable(self, src: bytes, dst: bytes, packet: bytes, now: float) -> None:
        if len(src) == 4:
            self._icmp_error4(packet, icmpv4.DEST_UNREACH, icmpv4.PORT_UNREACH, now)
        else:
            self._icmp_error6(packet, icmpv6.DEST_UNREACH, 4, now)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """The earliest timer of the stack (asked after every socket operation)."""
        best = self.tcp.next_deadline() if self.tcp is not None else None
        for reassembler in (self.reassembly4, self.reassembly6):
            when = reassembler.next_deadline()
            if when is not None and (best is None or when < best):
                best = when
        return best

    def on_timer(self, now: float) -> None:
        self.now = now
        for _key, first in self.reassembly4.expire(now):
            if first is not None:
                self._icmp_error4(first, icmpv4.TIME_EXCEEDED, 1, now)
        self.reassembly6.expire(now)
        if self.tcp is not None:
            self.tcp.on_timer(now)

    # ------------------------------------------------ the TCP engine's host side

    def _cached_route(self, dst: bytes) -> Route | None:
        """``route(dst)`` remembered per destination until the routing table changes (every
        address added also adds a route) or the route's interface goes down."""
        route: Route | None = self._routes_to.get(dst)
        if route is None or not route.interface.up:
            route = self.route(dst)
            if route is None:
                return None
            self._routes_to.put(dst, route)
        return route

    def route_gso(self, dst: bytes) -> int:
        """The largest IP packet (bytes) the interface towards ``dst`` takes for the link to
        cut (segmentation offload); 0: none, TCP builds MSS-sized segments."""
        route = self._cached_route(dst)
        if route is None:
            return 0
        iface = route.interface
        return iface.gso_max_size if iface.transmit_gso is not None else 0

    def _tcp_output_large(self, src: bytes, dst: bytes, segment: bytes | bytearray | memoryview,
                          ttl: int | None, tos: int, payload: bytes | memoryview,
                          gso: int) -> None:
        """A TCP segment of several MSS: whole to an interface that takes it (no hooks to
        show it to, as they see packets of the wire's size), else cut here (stack/gso.py)
        into segments that each go the usual way."""
        route = self.route(dst, src) if self.rules is not None else self._cached_route(dst)
        size = len(segment) + len(payload)
        if route is not None and self.hooks is None:
            iface = route.interface
            transmit_gso = iface.transmit_gso
            v4 = len(dst) == 4
            if transmit_gso is not None and size + (20 if v4 else 40) <= iface.gso_max_size:
                hops = self.default_ttl if ttl is None else ttl
                if v4:
                    ident = self._ident = (self._ident + 1) & 0xFFFF
                    header = _pack_ipv4(0x45, tos, 20 + size, ident, 0x4000, hops, PROTO_TCP, 0,
                                        src, dst)
                else:
                    header = ipv6.build(src, dst, PROTO_TCP, size, hop_limit=hops,
                                        traffic_class=tos)
                counters = iface.counters
                counters["tx_packets"] += 1
                counters["tx_bytes"] += len(header) + size
                self.counters["out_packets"] += 1
                self.counters["out_gso_packets"] += 1
                gateway = route.gateway
                transmit_gso(header + bytes(segment), payload, gso,
                             dst if gateway is None else gateway, self.now)
                return
        self.counters["out_gso_split"] += 1
        from multisock.stack.gso import tcp_pieces  # (off the import path: rarely needed)

        for head, piece in tcp_pieces(bytes(segment), payload, gso):
            self.tcp_output(src, dst, head, ttl, tos, piece)

    def _tcp_output_hooked(self, route: Route, header: bytes, src: bytes, dst: bytes,
                           segment: bytes | bytearray | memoryview,
                           payload: bytes | memoryview) -> None:
        """tcp_output's fast path with hooks: OUTPUT sees the segment's pieces, unjoined
        (``Packet.payload`` joins them if a hook asks), POST_ROUTING the IP packet."""
        hooks = self.hooks
        assert hooks is not None
        iface = route.interface
        if hooks.output and not hooks.admit(
                OUTPUT, Packet(OUTPUT, src, dst, PROTO_TCP, segment, None, None, payload, iface)):
            # what output() raises as EPERM here, and tcp_output counts
            self.counters["out_tcp_errors"] = self.counters.get("out_tcp_errors", 0) + 1
            return
        packet: bytes = b"".join((header, segment, payload))
        if hooks.post_routing:
            kept = hooks.rewrite(POST_ROUTING, packet, iface)
            if kept is None:
                return
            packet = kept
        counters = iface.counters
        counters["tx_packets"] += 1
        counters["tx_bytes"] += len(packet)
        self.counters["out_packets"] += 1
        gateway = route.gateway
        iface.transmit(packet, dst if gateway is None else gateway, self.now)

    def udp_output(self, src: bytes, dst: bytes, header: bytes, payload: bytes | memoryview,
                   ttl: int | None, tos: int, broadcast_ok: bool) -> None:
        """A unicast datagram from stack/udp.py: output() with the UDP checksum to fill.

        Fast path, the usual datagram: IPv4 to a unicast destination, no policy rules and no
        hooks, that fits the route's MTU on a trusted interface (no checksum) - what output()
        and _send() would do in one go, with the route and the source remembered per
        destination (_cached_route, select_source). Anything else goes through output()."""
        if len(dst) == 4 and dst[0] < 224 and self.rules is None and self.hooks is None:
            route = self._cached_route(dst)
            if route is not None and route.interface.trusted:
                iface = route.interface
                length = 28 + len(payload)
                mtu = route.mtu if route.mtu is not None else iface.mtu
                if not src:
                    src = self.select_source(dst) or b""
                if src and length <= mtu and length <= 0xFFFF:
                    ident = self._ident = (self._ident + 1) & 0xFFFF
                    ip_header = _pack_ipv4(0x45, tos, length, ident, 0,
                                                  self.default_ttl if ttl is None else ttl,
                                                  PROTO_UDP, 0, src, dst)
                    packet = b"".join((ip_header, header, payload))
                    counters = iface.counters
                    counters["tx_packets"] += 1
                    counters["tx_bytes"] += length
                    self.counters["out_packets"] += 1
                    gateway = route.gateway
                    iface.transmit(packet, dst if gateway is None else gateway, self.now)
                    return
        self.output(src, dst, PROTO_UDP, header, payload, ttl=ttl, tos=tos, csum_offset=6,
                    broadcast_ok=broadcast_ok)

    def tcp_output(self, src: bytes, dst: bytes, segment: bytes | bytearray | memoryview,
                   ttl: int | None = None, tos: int = 0,
                   payload: bytes | memoryview = b"", gso: int = 0) -> None:
        """Called by the TCP engine; a failure (route gone) is counted, the engine retransmits.

        ``gso``: the segment carries several MSS of payload (TCP asked ``route_gso``), to be
        cut at ``gso`` bytes - by the interface's link, or here when it cannot."""
        if len(dst) == 4 and src and dst[0] < 224 and self.rules is None:
            # fast path, the usual segment: unicast IPv4 that fits the route's MTU on a trusted
            # interface (no checksum to fill) - what output() and _send() would do, in one go,
            # hooks included (OUTPUT sees the pieces, unjoined; POST_ROUTING the packet)
            route = self._cached_route(dst)
            if route is not None and route.interface.trusted:
                iface = route.interface
                length = 20 + len(segment) + len(payload)
                mtu = route.mtu if route.mtu is not None else iface.mtu
                if length <= mtu and length <= 0xFFFF:
                    ident = self._ident = (self._ident + 1) & 0xFFFF
                    header = _pack_ipv4(0x45, tos, length, ident, 0x4000,
                                        self.default_ttl if ttl is None else ttl,
                                        PROTO_TCP, 0, src, dst)
                    if self.hooks is not None:  # (the one test the path without hooks pays)
                        self._tcp_output_hooked(route, header, src, dst, segment, payload)
                        return
                    counters = iface.counters
                    counters["tx_packets"] += 1
                    counters["tx_bytes"] += length
                    self.counters["out_packets"] += 1
                    gateway = route.gateway
                    hop = dst if gateway is None else gateway
                    split = iface.transmit_split
                    if split is not None and len(payload) >= SPLIT_MIN:
                        # a large payload to a host in this process: handed on as it is, not
                        # copied into a packet (link.Direction.send_split says when)
                        split(header + segment, payload, hop, self.now)
                        return
                    iface.transmit(b"".join((header, segment, payload)), hop, self.now)
                    return
        if gso and len(payload) > gso:
            self._tcp_output_large(src, dst, segment, ttl, tos, payload, gso)
            return
        try:
            self.output(src, dst, PROTO_TCP, bytes(segment), payload, ttl=ttl, tos=tos,
                        csum_offset=16, df=True)
        except OSError as exc:
            key = "out_no_route" if exc.errno == errno.ENETUNREACH else "out_tcp_errors"
            self.counters[key] = self.counters.get(key, 0) + 1
