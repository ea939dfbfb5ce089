"""Datagram port rules as Linux applies them."""

from __future__ import annotations

import errno
import random

import pytest

from multisock.stack.addresses import AF_INET, AF_INET6, pack
from multisock.stack.datagram import DatagramEndpoint
from multisock.stack.ports import EPHEMERAL_HIGH, EPHEMERAL_LOW, PortTable


def ep(family: int = AF_INET, **opts: bool) -> DatagramEndpoint:
    e = DatagramEndpoint(family)
    for key, value in opts.items():
        setattr(e, key, value)
    return e


def test_conflicts_and_reuse() -> None:
    table = PortTable(random.Random(1))
    a = ep()
    table.bind(a, pack("0.0.0.0"), 5000)
    with pytest.raises(OSError) as info:
        table.bind(ep(), pack("10.0.0.1"), 5000)
    assert info.value.errno == errno.EADDRINUSE
    table.bind(ep(), pack("10.0.0.1"), 5001)
    r1, r2 = ep(reuseaddr=True), ep(reuseaddr=True)
    table.bind(r1, pack("0.0.0.0"), 6000)
    table.bind(r2, pack("0.0.0.0"), 6000)
    p1, p2 = ep(reuseport=True), ep(reuseport=True)
    table.bind(p1, pack("0.0.0.0"), 7000)
    table.bind(p2, pack("0.0.0.0"), 7000)
    with pytest.raises(OSError):
        table.bind(ep(reuseaddr=True), pack("0.0.0.0"), 7000)


def test_v6_wildcard_covers_v4_unless_v6only() -> None:
    table = PortTable(random.Random(1))
    table.bind(ep(AF_INET6), pack("::"), 5000)
    with pytest.raises(OSError):
        table.bind(ep(), pack("0.0.0.0"), 5000)
    table.bind(ep(AF_INET6, v6only=True), pack("::"), 5001)
    table.bind(ep(), pack("0.0.0.0"), 5001)


def test_ephemeral_ports_are_random_in_range() -> None:
    table = PortTable(random.Random(2))
    ports = []
    for _ in range(200):
        e = ep()
        table.bind(e, pack("0.0.0.0"), 0)
        assert e.local is not None
        ports.append(e.local[1])
    assert all(EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH for p in ports)
    assert len(set(ports)) == 200
    assert sorted(ports) != ports  # not sequential


def test_most_specific_receiver_wins() -> None:
    table = PortTable(random.Random(3))
    wild, exact, connected = ep(reuseaddr=True), ep(reuseaddr=True), ep(reuseaddr=True)
    table.bind(wild, pack("0.0.0.0"), 53)
    table.bind(exact, pack("10.0.0.1"), 53)
    table.bind(connected, pack("10.0.0.1"), 53)
    connected.remote = (pack("10.0.0.9"), 1234)
    assert table.lookup(pack("10.0.0.1"), 53, pack("10.0.0.9"), 1234)[0] is connected
    assert table.lookup(pack("10.0.0.1"), 53, pack("10.0.0.8"), 1234)[0] is exact
    assert table.lookup(pack("10.0.0.2"), 53, pack("10.0.0.8"), 1234) == [wild]
    table.unbind(wild)
    assert table.lookup(pack("10.0.0.2"), 53, pack("10.0.0.8"), 1234) == []
    v6 = ep(AF_INET6)
    table.bind(v6, pack("::"), 54)
    assert table.lookup(pack("10.0.0.2"), 54, pack("10.0.0.8"), 1) == [v6]
