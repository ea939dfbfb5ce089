"""ECMP (flow hashing over equal-cost routes), policy routing (``ip rule``) and ICMP
redirects, on small in-process networks with ideal links (no waiting)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import multisock
from multisock.net.host import Host
from multisock.net.network import Network
from multisock.stack.interface import Interface
from multisock.stack.routing import Route, RoutingTable


def _iface(name: str) -> Interface:
    return Interface(name, 1)


def test_equal_cost_routes_split_flows_and_keep_each_flow_on_one_path() -> None:
    table = RoutingTable()
    table.multipath = True
    hops = [_iface(f"eth{i}") for i in range(3)]
    for i, iface in enumerate(hops):
        table.add(Route(bytes([10, 9, 0, 0]), 16, iface, gateway=bytes([10, 0, i, 1]), metric=5))
    table.add(Route(bytes([10, 9, 0, 0]), 16, _iface("slow"), metric=9))
    dst = bytes([10, 9, 1, 1])
    chosen = {flow: table.lookup(dst, flow) for flow in range(0, 2**32, 2**32 // 300)}
    used = {r.interface.name for r in chosen.values() if r is not None}
    assert used == {"eth0", "eth1", "eth2"}  # the metric-9 route never
    assert all(table.lookup(dst, flow) is route for flow, route in chosen.items())
    hops[1].up = False  # a path goes: its flows move, the others' stay where they were
    after = {flow: table.lookup(dst, flow) for flow in chosen}
    assert {r.interface.name for r in after.values() if r is not None} == {"eth0", "eth2"}


def test_without_multipath_the_first_equal_route_wins_as_before() -> None:
    table = RoutingTable()
    a, b = _iface("a"), _iface("b")
    table.add(Route(bytes(4), 0, a, gateway=b"\x01\x01\x01\x01"))
    table.add(Route(bytes(4), 0, b, gateway=b"\x02\x02\x02\x02"))
    assert {table.lookup(b"\x08\x08\x08\x08", f).interface.name  # type: ignore[union-attr]
            for f in range(0, 2**32, 2**28)} == {"a"}


@pytest.fixture
def diamond() -> Iterator[tuple[Network, Host, Host, list[multisock.Link]]]:
    """src - r0 =(two equal paths through r1 and r2)= r3 - dst."""
    with multisock.Network(seed=2) as net:
        src, dst = net.add_host("src"), net.add_host("dst")
        r = [net.add_router(f"r{i}") for i in range(4)]
        net.link(src, r[0], a_addr="10.0.0.2/24", b_addr="10.0.0.1/24")
        net.link(r[3], dst, a_addr="10.0.9.1/24", b_addr="10.0.9.2/24")
        upper = net.link(r[0], r[1], a_addr="10.1.0.1/30", b_addr="10.1.0.2/30")
        lower = net.link(r[0], r[2], a_addr="10.2.0.1/30", b_addr="10.2.0.2/30")
        net.link(r[1], r[3], a_addr="10.1.1.1/30", b_addr="10.1.1.2/30")
        net.link(r[2], r[3], a_addr="10.2.1.1/30", b_addr="10.2.1.2/30")
        src.add_route("0.0.0.0/0", via="10.0.0.1")
        dst.add_route("0.0.0.0/0", via="10.0.9.1")
        r[0].add_route("10.0.9.0/24", via="10.1.0.2", metric=1)
        r[0].add_route("10.0.9.0/24", via="10.2.0.2", metric=1)
        for i in (1, 2):
            r[i].add_route("10.0.9.0/24", via=f"10.{i}.1.2")
            r[i].add_route("10.0.0.0/24", via=f"10.{i}.0.1")
        r[3].add_route("10.0.0.0/24", via="10.1.1.1")
        yield net, src, dst, [upper, lower]


def _send_flows(src: Host, dst: Host, ports: range) -> int:
    rx = dst.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("10.0.9.2", 9000))
    rx.settimeout(2)
    for port in ports:
        tx = src.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind(("10.0.0.2", port))
        for _ in range(3):
            tx.sendto(b"x", ("10.0.9.2", 9000))
        tx.close()
    got = sum(1 for _ in range(len(ports) * 3) if rx.recv(10))
    rx.close()
    return got


def _forward_counts(links: list[multisock.Link]) -> list[int]:
    return [link.a_to_b.impairment.counters["delivered"] for link in links]


def test_router_hashes_flows_over_both_paths_with_l4_policy(diamond) -> None:  # type: ignore[no-untyped-def]
    net, src, dst, paths = diamond
    r0 = net.host("r0")
    r0.ip.set_multipath(True, hash_policy=1)
    assert _send_flows(src, dst, range(20000, 20040)) == 120
    upper, lower = _forward_counts(paths)
    assert upper + lower == 120 and upper > 0 and lower > 0
    assert upper % 3 == 0 and lower % 3 == 0  # every flow's three datagrams took one path


def test_l3_policy_and_no_multipath_keep_one_path(diamond) -> None:  # type: ignore[no-untyped-def]
    net, src, dst, paths = diamond
    r0 = net.host("r0")
    r0.ip.set_multipath(True, hash_policy=0)  # addresses only: one src/dst pair, one path
    assert _send_flows(src, dst, range(20000, 20020)) == 60
    assert sorted(_forward_counts(paths)) == [0, 60]


def test_policy_rules_by_source_and_by_mark(diamond) -> None:  # type: ignore[no-untyped-def]
    net, src, dst, paths = diamond
    r0 = net.host("r0")
    with net.driver.lock:
        r0.ip.routes.remove(r0.ip.route(socket.inet_aton("10.0.9.2")))  # type: ignore[arg-type]
    # main now goes by one path; table 100 by the lower one for marked packets
    main_path = r0.ip.route(socket.inet_aton("10.0.9.2"))
    assert main_path is not None
    with net.driver.lock:
        r0.ip.add_route("10.0.9.0/24", via="10.2.0.2", table=100)
        r0.ip.add_route("10.0.9.0/24", via="10.1.0.2", table=200)
    r0.ip.add_rule(100, fwmark=7)
    r0.ip.add_rule(200, src="10.0.0.2/32", priority=5)
    rules = [r.describe() for r in r0.ip.rules or []]
    assert rules == ["5: from 10.0.0.2/32 lookup 200", "32765: from all fwmark 0x7 lookup 100",
                     "32766: from all lookup main"]
    before = _forward_counts(paths)
    assert _send_flows(src, dst, range(21000, 21005)) == 15  # from 10.0.0.2: table 200
    after = _forward_counts(paths)
    assert after[0] - before[0] == 15
    r0.ip.marker = lambda packet, iface: 7  # iptables -j MARK --set-mark 7, say
    r0.ip.rules = [r for r in r0.ip.rules or [] if r.priority != 5]
    assert _send_flows(src, dst, range(21100, 21105)) == 15
    assert _forward_counts(paths)[1] - after[1] == 15


def test_router_redirects_a_host_to_the_better_neighbour() -> None:
    """h's default gateway r1 forwards to r2 on the same segment: r1 tells h (ICMP
    redirect, host), h installs a host route via r2, and later packets skip r1."""
    with multisock.Network(seed=4) as net:
        lan = net.add_switch("lan")
        h, r1, r2, s = (net.add_host("h"), net.add_router("r1"), net.add_router("r2"),
                        net.add_host("s"))
        net.link(lan, h, b_addr="10.0.0.10/24")
        net.link(lan, r1, b_addr="10.0.0.1/24")
        net.link(lan, r2, b_addr="10.0.0.2/24")
        net.link(r2, s, a_addr="10.0.9.1/24", b_addr="10.0.9.9/24")
        h.add_route("0.0.0.0/0", via="10.0.0.1")
        r1.add_route("10.0.9.0/24", via="10.0.0.2")
        s.add_route("0.0.0.0/0", via="10.0.9.1")
        h.ping("10.0.9.9")
        assert r1.ip.counters["redirects_sent"] == 1
        assert h.ip.counters["redirects_accepted"] == 1
        route = h.ip.route(socket.inet_aton("10.0.9.9"))
        assert route is not None and route.gateway == socket.inet_aton("10.0.0.2")
        forwarded = r1.ip.counters["forwarded"]
        h.ping("10.0.9.9")
        assert r1.ip.counters["forwarded"] == forwarded


def test_redirect_from_a_router_we_do_not_use_is_ignored() -> None:
    with multisock.Network(seed=4) as net:
        lan = net.add_switch("lan")
        h, r1, r2, s = (net.add_host("h"), net.add_router("r1"), net.add_router("r2"),
                        net.add_host("s"))
        net.link(lan, h, b_addr="10.0.0.10/24")
        net.link(lan, r1, b_addr="10.0.0.1/24")
        net.link(lan, r2, b_addr="10.0.0.2/24")
        net.link(r2, s, a_addr="10.0.9.1/24", b_addr="10.0.9.9/24")
        h.add_route("0.0.0.0/0", via="10.0.0.1")
        r1.add_route("10.0.9.0/24", via="10.0.0.2")
        s.add_route("0.0.0.0/0", via="10.0.9.1")
        h.ip.accept_redirects = False
        h.ping("10.0.9.9")
        assert r1.ip.counters["redirects_sent"] == 1
        assert h.ip.counters["redirects_ignored"] == 1
        route = h.ip.route(socket.inet_aton("10.0.9.9"))
        assert route is not None and route.gateway == socket.inet_aton("10.0.0.1")
