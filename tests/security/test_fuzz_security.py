"""Never trust a packet: hypothesis-made and mutated packets into conntrack, the firewall,
NAT and the IDS. Malformed ones are counted and dropped; nothing raises; the host and the
router still work afterwards."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multisock
from multisock.net.host import Host
from multisock.stack import hooks as H
from multisock.wire import icmpv4, ipv4, udp
from tests.fuzz_budget import budget

INSIDE, OUTSIDE, SERVER = bytes([192, 168, 1, 10]), bytes([203, 0, 113, 1]), \
    bytes([203, 0, 113, 10])


def _valid() -> list[bytes]:
    out = []
    for src, dst in ((INSIDE, SERVER), (SERVER, OUTSIDE)):
        seg = udp.build(4000, 5000, 4) + b"data"
        out.append(ipv4.build(src, dst, 17, len(seg)) + seg)
        syn = struct.pack("!HHIIBBHHH", 4000, 80, 1, 0, 0x50, 0x02, 65535, 0, 0) + b"attack"
        out.append(ipv4.build(src, dst, 6, len(syn)) + syn)
        echo = icmpv4.build_echo(icmpv4.ECHO_REQUEST, 7, 1, b"ping")
        out.append(ipv4.build(src, dst, 1, len(echo)) + echo)
        err = icmpv4.build_error(icmpv4.DEST_UNREACH, 3, out[0])
        out.append(ipv4.build(dst, src, 1, len(err)) + err)
        out.append(ipv4.build(src, dst, 17, 20, mf=True) + bytes(20))
        out.append(ipv4.build(src, dst, 17, 20, frag_offset=8) + bytes(20))
    return out


VALID = _valid()


@pytest.fixture(scope="module")
def router() -> Iterator[tuple[Host, Host]]:
    net = multisock.Network(seed=5)
    c = net.add_host("c", "192.168.1.10/24")
    r = net.add_router("r", "192.168.1.254/24")
    s = net.add_host("s", "203.0.113.10/24")
    net.link(c, r)
    net.link(r, s, a_addr="203.0.113.1/24")
    c.add_route("0.0.0.0/0", via="192.168.1.254")
    r.nat.masquerade("eth1", source="192.168.1.0/24")
    r.nat.forward_port("udp", 5000, "192.168.1.10", 5000)
    for host in (r, s):
        fw = host.firewall
        fw.add_rule("input", "accept", state="established,related")
        fw.add_rule("input", "reject", proto="tcp", dport="1-1000", limit="100/s")
        fw.add_rule("input", "log", proto="udp", src="10.0.0.0/8,192.168.0.0/16")
        fw.add_rule("forward", "drop", proto="tcp", flags="syn,fin")
        fw.add_rule("forward", "accept", proto="icmp", icmp_type="echo-request")
        host.security.load_rules('alert tcp any any -> any any (content:"attack"; sid:1;)\n'
                                 'drop udp any any -> any any (pcre:"/x{3}/"; sid:2;)')
        host.security.detect_scans(ports=5)
        host.security.detect_syn_flood(rate=10)
    yield r, s
    net.close()


def _feed(router: tuple[Host, Host], packet: bytes) -> None:
    r, s = router
    with r.driver.lock:
        # straight into every hook of the router and the server: nothing may raise
        for host in (r, s):
            hooks = host.ip.hooks
            assert hooks is not None
            for point in H.POINTS:
                for hook in getattr(hooks, point):
                    if point == H.OUTPUT:
                        got = H.Packet.of_wire(point, packet, None)
                        if got is not None:
                            got.data = None
                            hook(got)
                        continue
                    wired = H.Packet.of_wire(point, packet, host.ip.interfaces[1])
                    if wired is not None:
                        verdict = hook(wired)
                        assert verdict in (H.ACCEPT, H.DROP) or isinstance(verdict, bytes)
        # and the whole way through the stacks
        r.receive(packet, r.ip.interfaces[2], r.driver.now())
        r.receive(packet, r.ip.interfaces[1], r.driver.now())
        s.receive(packet, s.ip.interfaces[1], s.driver.now())


def _check(router: tuple[Host, Host]) -> None:
    r, s = router
    assert not r.driver.errors and not s.driver.errors
    assert r.ip.tcp.counters.get("internal_errors", 0) == 0


@settings(max_examples=budget(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_random_bytes(router: tuple[Host, Host], data: bytes) -> None:
    _feed(router, data)
    _check(router)


@settings(max_examples=budget(600), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                        max_size=6), st.integers(0, 200))
def test_mutated_packets(router: tuple[Host, Host], base: bytes,
                         flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for at, value in flips:
        if at < len(data):
            data[at] = value
    _feed(router, bytes(data[: max(1, len(data) - cut)] if cut < len(data) else data))
    _check(router)


def test_still_working_after_the_fuzzing(router: tuple[Host, Host]) -> None:
    r, s = router
    c = r.net.hosts["c"]
    s.firewall.clear()
    s.security.stop_detection()
    s.security.blocklist.until.clear()
    r.security.blocklist.until.clear()
    s.security._sync()
    assert c.ping("203.0.113.10", timeout=2.0) < 2.0
    stats = r.security.stats()
    assert stats["security"]["malformed"] > 0  # malformed packets were counted...
    assert stats["nat"]["translated_out"] > 0
