"""Longest-prefix match, metrics, interface state, source selection."""

from __future__ import annotations

from multisock.stack.addresses import pack, parse_cidr
from multisock.stack.interface import Interface
from multisock.stack.routing import Route, RoutingTable


def route(table: RoutingTable, cidr: str, iface: Interface, metric: int = 0, via: str | None = None) -> Route:
    prefix, length = parse_cidr(cidr)
    return table.add(Route(prefix, length, iface, gateway=pack(via) if via else None, metric=metric))


def test_longest_prefix_wins() -> None:
    table = RoutingTable()
    eth0, eth1, eth2 = Interface("eth0", 1), Interface("eth1", 2), Interface("eth2", 3)
    route(table, "0.0.0.0/0", eth0, via="10.0.0.254")
    route(table, "10.0.0.0/8", eth1)
    route(table, "10.1.2.0/24", eth2)
    assert table.lookup(pack("10.1.2.3")).interface is eth2  # type: ignore[union-attr]
    assert table.lookup(pack("10.9.9.9")).interface is eth1  # type: ignore[union-attr]
    default = table.lookup(pack("192.0.2.1"))
    assert default is not None and default.interface is eth0
    assert default.next_hop(pack("192.0.2.1")) == pack("10.0.0.254")


def test_metric_breaks_ties_and_down_interfaces_are_skipped() -> None:
    table = RoutingTable()
    fast, slow = Interface("fast", 1), Interface("slow", 2)
    route(table, "10.0.0.0/8", slow, metric=100)
    route(table, "10.0.0.0/8", fast, metric=10)
    assert table.lookup(pack("10.2.3.4")).interface is fast  # type: ignore[union-attr]
    fast.up = False
    assert table.lookup(pack("10.2.3.4")).interface is slow  # type: ignore[union-attr]
    slow.up = False
    assert table.lookup(pack("10.2.3.4")) is None


def test_ipv6_and_ipv4_are_separate_and_prefix_is_masked() -> None:
    table = RoutingTable()
    eth0 = Interface("eth0", 1)
    r = route(table, "fd00::1/64", eth0)
    assert r.prefix == pack("fd00::")
    assert table.lookup(pack("fd00::abcd")) is r
    assert table.lookup(pack("fd01::1")) is None
    assert table.lookup(pack("10.0.0.1")) is None


def test_remove_and_listing() -> None:
    table = RoutingTable()
    eth0 = Interface("eth0", 1)
    r1 = route(table, "10.0.0.0/24", eth0)
    r2 = route(table, "::/0", eth0, via="fe80::1")
    assert set(map(id, table.routes())) == {id(r1), id(r2)}
    table.remove(r1)
    assert table.lookup(pack("10.0.0.5")) is None
    assert "via fe80::1" in r2.describe()
    table.remove_interface(eth0)
    assert table.routes() == []
