"""A DNS stub resolver that speaks over whatever sockets it is given.

dnspython's ``dns.message`` does the wire format (a well-kept library; the
format is not our product); the I/O is ours, through a *socket factory*, so on a
virtual host the queries travel over multisock's own UDP and TCP.

Behaviour: random query IDs and source ports; a reply must match ID, question
and server, else it is ignored and the wait goes on (spoofing resistance);
per-attempt timeout across nameservers; TC -> the same query over TCP; CNAME
chains followed (bounded); search domains per ``ndots``; a TTL cache and
negative caching per RFC 2308 (the SOA's TTL/minimum from the authority
section; no SOA, no negative cache). Time only from the injected ``clock``.
"""

from __future__ import annotations

import _socket
import random
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multisock.hosts import HostsTable

if TYPE_CHECKING:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdatatype
    import dns.reversename

__all__ = ["HostsTable", "Resolution", "ResolveError", "StubResolver"]

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
AF_UNSPEC = _socket.AF_UNSPEC
MAX_CNAME_CHAIN = 8


class ResolveError(_socket.gaierror):
    """A failed lookup, with glibc's EAI_* code as ``errno``/``code`` (a ``socket.gaierror``)."""

    @property
    def code(self) -> int:
        return int(self.args[0])


def _noname() -> ResolveError:
    return ResolveError(_socket.EAI_NONAME, "Name or service not known")


def _again() -> ResolveError:
    return ResolveError(_socket.EAI_AGAIN, "Temporary failure in name resolution")


@dataclass
class Resolution:
    canonical_name: str
    addresses: list[str]
    ttl: float


_NEGATIVE = object()


def _load_dnspython() -> None:
    """Import dnspython (as the global ``dns``) on the first lookup, not with this module.

    Importing it loads importlib.metadata, email, zipfile, datetime and hashlib (OpenSSL):
    ~10 MiB of RSS that every process activated with a resolver (``MULTISOCK=1``, ``run``:
    the gateway's) would otherwise pay at start-up, names resolved or not."""
    global dns
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdatatype
    import dns.reversename


class StubResolver:
    def __init__(
        self,
        nameservers: list[tuple[str, int]],
        *,
        socket_factory: Callable[[int, int], Any],
        clock: Callable[[], float] = time.monotonic,
        search: Sequence[str] = (),
        ndots: int = 1,
        timeout: float = 2.0,
        attempts: int = 2,
        rng: random.Random | None = None,
        max_cache_entries: int = 4096,
    ) -> None:
        if not nameservers:
            raise ValueError("a stub resolver needs at least one nameserver")
        self.nameservers = list(nameservers)
        self.socket_factory = socket_factory
        self.clock = clock
        self.search = [s.strip(".") for s in search]
        self.ndots = ndots
        self.timeout = timeout
        self.attempts = attempts
        self.rng = rng or random.SystemRandom()
        self.max_cache_entries = max_cache_entries
        self._cache: OrderedDict[tuple[str, int], tuple[float, Any]] = OrderedDict()
        self.stats = {"queries_sent": 0, "cache_hits": 0, "negative_hits": 0, "timeouts": 0,
                      "tcp_fallbacks": 0, "mismatched_replies": 0}

    # ------------------------------------------------------------------ public

    def resolve(self, name: str, family: int) -> Resolution:
        _load_dnspython()
        types = {AF_INET: [dns.rdatatype.A], AF_INET6: [dns.rdatatype.AAAA],
                 AF_UNSPEC: [dns.rdatatype.A, dns.rdatatype.AAAA]}.get(family)
        if types is None:
            raise ResolveError(_socket.EAI_FAMILY, "ai_family not supported")
        last: ResolveError = _noname()
        try:
            for candidate in self._candidates(name):
                addresses: list[str] = []
                canonical = candidate
                ttl = float("inf")
                failures = 0
                for rdtype in types:
                    try:
                        found, canon, rr_ttl = self._lookup(candidate, rdtype)
                    except ResolveError as exc:
                        failures += 1
                        if exc.code != _socket.EAI_NONAME:
                            last = exc
                        continue
                    addresses += found
                    canonical = canon
                    ttl = min(ttl, rr_ttl)
                if addresses:
                    return Resolution(canonical, addresses, ttl)
                if failures and last.code == _socket.EAI_AGAIN:
                    break
            raise last
        finally:
            # a kept error's traceback holds this frame: still named here, it would be a cycle
            # pinning every caller's frame until a collection
            del last

    def reverse(self, address: str) -> str:
        _load_dnspython()
        qname = dns.reversename.from_address(address).to_text()
        response = self._query(qname, dns.rdatatype.PTR)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.PTR:
                return str(rrset[0].target).rstrip(".")
        raise _noname()

    def flush_cache(self) -> None:
        self._cache.clear()

    # ----------------------------------------------------------------- lookups

    def _candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        absolute = name + "."
        searched = [f"{name}.{domain}." for domain in self.search]
        if name.count(".") >= self.ndots:
            return [absolute, *searched]
        return [*searched, absolute]

    def _lookup(self, qname: str, rdtype: int) -> tuple[list[str], str, float]:
        """Addresses of one type for one absolute name, following CNAMEs, via the cache."""
        name = qname.lower()
        min_ttl = float("inf")
        for _ in range(MAX_CNAME_CHAIN):
            cached = self._cache_get((name, rdtype))
            if cached is _NEGATIVE:
                self.stats["negative_hits"] += 1
                raise _noname()
            if cached is not None:
                self.stats["cache_hits"] += 1
                kind, value, ttl = cached
                min_ttl = min(min_ttl, ttl)
                if kind == "cname":
                    name = value
                    continue
                return value, name.rstrip("."), min_ttl
            response = self._query(name, rdtype)
            rcode = response.rcode()
            if rcode == dns.rcode.NXDOMAIN or (rcode == dns.rcode.NOERROR and not response.answer):
                self._negative(name, rdtype, response)
                raise _noname()
            if rcode != dns.rcode.NOERROR:
                raise ResolveError(_socket.EAI_FAIL if rcode == dns.rcode.REFUSED else _socket.EAI_AGAIN,
                                   f"DNS server answered {dns.rcode.to_text(rcode)}")
            current = name
            for _hop in range(MAX_CNAME_CHAIN):
                owner = dns.name.from_text(current)
                matching = [s for s in response.answer if s.name == owner and s.rdtype == rdtype]
                addresses = [r for s in matching for r in s]
                if addresses:
                    ttl = min(s.ttl for s in matching)
                    texts = [r.address for r in addresses]
                    self._cache_put((current, rdtype), ("addr", texts, float(ttl)), ttl)
                    return texts, current.rstrip("."), min(min_ttl, float(ttl))
                cnames = [s for s in response.answer
                          if s.name == owner and s.rdtype == dns.rdatatype.CNAME]
                if not cnames:
                    break
                target = str(cnames[0][0].target).lower()
                self._cache_put((current, rdtype), ("cname", target, float(cnames[0].ttl)),
                                cnames[0].ttl)
                min_ttl = min(min_ttl, float(cnames[0].ttl))
                current = target
            if current == name:
                self._negative(name, rdtype, response)
                raise _noname()
            name = current  # the chain left this response: ask about its end
        raise ResolveError(_socket.EAI_FAIL, "CNAME chain too long")

    def _negative(self, name: str, rdtype: int, response: Any) -> None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                ttl = min(rrset.ttl, rrset[0].minimum)
                self._cache_put((name, rdtype), _NEGATIVE, ttl)
                return

    # ------------------------------------------------------------------- cache

    def _cache_get(self, key: tuple[str, int]) -> Any:
        entry = self._cache.get(key)
        if entry is None:
            return None
        expiry, value = entry
        if expiry <= self.clock():
            del self._cache[key]
            return None
        if value is _NEGATIVE:
            return value
        kind, payload, _ttl = value
        return kind, payload, expiry - self.clock()

    def _cache_put(self, key: tuple[str, int], value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (self.clock() + ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_cache_entries:
            self._cache.popitem(last=False)

    # --------------------------------------------------------------------- I/O

    def _query(self, qname: str, rdtype: int) -> Any:
        query = dns.message.make_query(qname, dns.rdatatype.RdataType(rdtype), use_edns=0,
                                       payload=1232)
        for _attempt in range(self.attempts):
            for server in self.nameservers:
                query.id = self.rng.randrange(65536)
                response = self._udp(query, server)
                if response is None:
                    continue
                if response.flags & dns.flags.TC:
                    self.stats["tcp_fallbacks"] += 1
                    response = self._tcp(query, server)
                    if response is None:
                        continue
                return response
        raise _again()

    def _family(self, server: tuple[str, int]) -> int:
        return AF_INET6 if ":" in server[0] else AF_INET

    def _udp(self, query: Any, server: tuple[str, int]) -> Any:
        sock = self.socket_factory(self._family(server), _socket.SOCK_DGRAM)
        try:
            sock.bind(("::" if self._family(server) == AF_INET6 else "0.0.0.0", 0))
            wire = query.to_wire()
            self.stats["queries_sent"] += 1
            sock.sendto(wire, server)
            deadline = self.clock() + self.timeout
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self.stats["timeouts"] += 1
                    return None
                sock.settimeout(remaining)
                try:
                    data, source = sock.recvfrom(65535)
                except TimeoutError:
                    self.stats["timeouts"] += 1
                    return None
                except OSError:
                    return None  # e.g. ICMP port unreachable: try the next server
                if source[0] != server[0] or source[1] != server[1]:
                    self.stats["mismatched_replies"] += 1
                    continue
                try:
                    response = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    self.stats["mismatched_replies"] += 1
                    continue
                if response.id != query.id or not query.is_response(response):
                    self.stats["mismatched_replies"] += 1
                    continue
                return response
        finally:
            sock.close()

    def _tcp(self, query: Any, server: tuple[str, int]) -> Any:
        sock = self.socket_factory(self._family(server), _socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(server)
            wire = query.to_wire()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            length = struct.unpack("!H", self._read(sock, 2))[0]
            response = dns.message.from_wire(self._read(sock, length))
            return response if response.id == query.id and query.is_response(response) else None
        except (OSError, dns.exception.DNSException, struct.error):
            return None
        finally:
            sock.close()

    @staticmethod
    def _read(sock: Any, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise OSError("connection closed mid-message")
            data += chunk
        return data
