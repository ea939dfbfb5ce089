"""A real DNS server (dnslib, unmodified) on one virtual host; getaddrinfo on another.

Both run over multisock: the server under the monkey patch on host "ns", the stub
resolver with sockets on host "client". Cache, negative caching, CNAME chains,
search domains and truncation (TCP fallback) are checked against the server's
own query log.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import AAAA, CNAME, QTYPE, RR, SOA, A
from dnslib.server import BaseResolver, DNSServer

import multisock
from multisock import monkey
from multisock.resolver import ResolveError, StubResolver
from multisock.runtime import use_host
from tests.cycles import caller_frame_outlives_call, collector_off


class Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.log.append((qname, qtype))
        reply = request.reply()
        soa = RR("test.", QTYPE.SOA, ttl=300, rdata=SOA("ns.test.", "admin.test.",
                                                        (1, 60, 60, 60, 30)))
        if qname == "www.test.":
            if qtype == "A":
                reply.add_answer(RR(qname, QTYPE.A, ttl=60, rdata=A("10.0.0.80")))
            elif qtype == "AAAA":
                reply.add_answer(RR(qname, QTYPE.AAAA, ttl=60, rdata=AAAA("fd00::80")))
        elif qname == "alias.test.":
            reply.add_answer(RR(qname, QTYPE.CNAME, ttl=30, rdata=CNAME("www.test.")))
            if qtype == "A":
                reply.add_answer(RR("www.test.", QTYPE.A, ttl=60, rdata=A("10.0.0.80")))
        elif qname == "big.test." and qtype == "A" and handler.protocol == "udp":
            reply.header.tc = 1  # too big for UDP: the client must retry over TCP
        elif qname == "big.test." and qtype == "A":
            for i in range(100):
                reply.add_answer(RR(qname, QTYPE.A, ttl=60, rdata=A(f"10.1.{i // 250}.{i % 250 + 1}")))
        elif qname == "short.test." and qtype == "A":
            reply.add_answer(RR(qname, QTYPE.A, ttl=60, rdata=A("10.0.0.81")))
        else:
            reply.header.rcode = 3  # NXDOMAIN
            reply.add_auth(soa)
        return reply


@pytest.fixture
def world() -> Iterator[tuple[multisock.Host, Zone, Any]]:
    net = multisock.Network(seed=31)
    ns = net.add_host("ns", "10.0.0.53/24")
    client = net.add_host("client", "10.0.0.10/24")
    sw = net.add_switch()
    net.link(ns, sw, delay="1ms")
    net.link(client, sw, delay="1ms")
    zone = Zone()
    monkey.patch_all()
    try:
        with use_host(ns):
            udp = DNSServer(zone, port=53, address="10.0.0.53")
            tcp = DNSServer(zone, port=53, address="10.0.0.53", tcp=True)
        for server in (udp, tcp):
            server.server.socket.settimeout(None)
            server.start_thread()
        clock = [0.0]
        client.resolver = StubResolver(
            [("10.0.0.53", 53)], socket_factory=lambda f, t: multisock.socket.socket(f, t, host=client),
            clock=lambda: clock[0] + net.driver.now(), search=["test"], timeout=1.0)
        yield client, zone, clock
        udp.stop()
        tcp.stop()
    finally:
        monkey.unpatch_all()
        net.close()


def test_getaddrinfo_through_dns(world: tuple[multisock.Host, Zone, Any]) -> None:
    client, zone, _ = world
    with use_host(client):
        infos = socket.getaddrinfo("www.test", 80, type=socket.SOCK_STREAM)
        assert [i[4][0] for i in infos] == ["10.0.0.80", "fd00::80"]
        assert socket.gethostbyname("alias.test") == "10.0.0.80"
        with pytest.raises(socket.gaierror) as info:
            socket.getaddrinfo("nothing.test", 80)
        assert info.value.errno == socket.EAI_NONAME


def test_cache_negative_cache_and_expiry(world: tuple[multisock.Host, Zone, Any]) -> None:
    client, zone, clock = world
    resolver = client.resolver
    first = resolver.resolve("www.test.", socket.AF_INET)
    assert first.addresses == ["10.0.0.80"] and first.ttl <= 60
    count = len(zone.log)
    resolver.resolve("www.test.", socket.AF_INET)
    assert len(zone.log) == count and resolver.stats["cache_hits"] >= 1
    for _ in range(2):
        with pytest.raises(ResolveError):
            resolver.resolve("missing.test.", socket.AF_INET)
    assert zone.log.count(("missing.test.", "A")) == 1  # second answered from the negative cache
    clock[0] += 61
    resolver.resolve("www.test.", socket.AF_INET)
    assert len([q for q in zone.log if q == ("www.test.", "A")]) == 2  # expired, asked again


def test_cname_chain_search_domains_and_tcp_fallback(world: tuple[multisock.Host, Zone, Any]) -> None:
    client, zone, _ = world
    resolver = client.resolver
    alias = resolver.resolve("alias", socket.AF_INET)  # search domain "test" applies
    assert alias.addresses == ["10.0.0.80"] and alias.canonical_name == "www.test"
    big = resolver.resolve("big.test.", socket.AF_INET)
    assert len(big.addresses) == 100
    assert resolver.stats["tcp_fallbacks"] == 1


def test_unanswered_server_times_out_with_eai_again() -> None:
    with multisock.Network(seed=2) as net:
        host = net.add_host("lonely", "10.0.0.10/24")
        resolver = StubResolver([("10.0.0.99", 53)], timeout=0.2, attempts=2,
                                socket_factory=lambda f, t: multisock.socket.socket(f, t, host=host))
        with pytest.raises(ResolveError) as info:
            resolver.resolve("anything.test.", socket.AF_INET)
        assert info.value.code == socket.EAI_AGAIN


def test_launcher_dns_option(tmp_path: Any) -> None:
    """``run --dns IP:PORT``: a dnslib server in the program itself answers its lookups."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = Path(str(tmp_path)) / "dns_app.py"
    script.write_text(textwrap.dedent('''
        import socket
        from dnslib import QTYPE, RR, A
        from dnslib.server import BaseResolver, DNSServer, DNSLogger

        class Z(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A("127.0.0.9")))
                return reply

        server = DNSServer(Z(), port=5353, address="127.0.0.1",
                           logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
        server.start_thread()
        print(socket.gethostbyname("anything.example"))
        server.stop()
    '''))
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-m", "multisock", "run", "--dns", "127.0.0.1:5353",
                             str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "127.0.0.9"


def test_a_failed_lookup_leaves_no_cycle_through_the_caller(
        world: tuple[multisock.Host, Zone, Any]) -> None:
    """The resolver raises the last failure it kept: a frame still naming it would be a
    cycle pinning every caller's frame until a collection (the kernel's getaddrinfo raises
    from C). Checked with the collector off (tests/cycles.py)."""
    client, _, _ = world
    with use_host(client), collector_off():
        assert not caller_frame_outlives_call(lambda: socket.getaddrinfo("nothing.test", 80))
        assert not caller_frame_outlives_call(
            lambda: client.resolver.resolve("missing.test.", socket.AF_INET))
