"""Segmentation offload at the IP layer (stack/ip.py ``route_gso``, ``_tcp_output_large``):
an interface that takes large TCP segments gets them whole with the MSS to cut at; where it
cannot (its offload gone, hooks that must see the wire's packets), IP cuts them itself; and
a packet whose link did not vouch for it is verified even on a trusted interface."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_split_packets import _connected

import multisock
from multisock.net.host import Host
from multisock.net.network import Network
from multisock.stack.gso import split_packet
from multisock.stack.hooks import ACCEPT, POST_ROUTING, Packet
from multisock.wire import ipv4
from multisock.wire import tcp as tcpwire

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"
SIZE = 3 << 20


@pytest.fixture
def net() -> Iterator[Network]:
    with multisock.Network(seed=11) as network:
        yield network


class _GsoLink:
    """Gives host a's interface a ``transmit_gso`` that records each large segment and
    cuts it like a kernel (stack/gso.py) onto the ordinary link."""

    def __init__(self, a: Host) -> None:
        self.iface = next(i for i in a.ip.interfaces if not i.loopback)
        self.sizes: list[tuple[int, int]] = []  # (payload bytes, size to cut at)
        with a.driver.lock:
            self.iface.gso_max_size = 65535
            self.iface.transmit_gso = self

    def __call__(self, head: bytes, payload: Any, size: int, next_hop: bytes,
                 now: float) -> None:
        self.sizes.append((len(payload), size))
        for packet in split_packet(head + bytes(payload), size):
            self.iface.transmit(packet, next_hop, now)


def _hosts(net: Network) -> tuple[Host, Host]:
    a = net.add_host("a", f"{A_ADDR}/24")
    b = net.add_host("b", f"{B_ADDR}/24")
    net.link(a, b, mtu=1500)
    return a, b


def _transfer(a: Host, b: Host, data: bytes, during: Any = None) -> bytes:
    listener, client, server = _connected(a, b, B_ADDR)
    got = bytearray()

    def receive() -> None:
        while chunk := server.recv(1 << 20):
            got.extend(chunk)

    reader = threading.Thread(target=receive)
    reader.start()
    half = len(data) // 2
    client.sendall(data[:half])
    if during is not None:
        during()
    client.sendall(data[half:])
    client.close()
    reader.join(60)
    assert not reader.is_alive()
    server.close()
    listener.close()
    return bytes(got)


def test_large_segments_reach_an_interface_that_takes_them(net: Network) -> None:
    a, b = _hosts(net)
    link = _GsoLink(a)
    data = bytes(range(256)) * (SIZE // 256)
    assert hashlib.sha256(_transfer(a, b, data)).digest() == hashlib.sha256(data).digest()
    assert link.sizes, "TCP built no segment larger than the MSS"
    assert {size for _, size in link.sizes} == {1448}  # MTU 1500, timestamps on
    assert all(n > 1448 for n, _ in link.sizes)
    assert a.ip.counters["out_gso_packets"] == len(link.sizes)
    assert a.ip.counters["out_gso_split"] == 0


def test_ip_cuts_them_when_the_interface_no_longer_takes_them(net: Network) -> None:
    a, b = _hosts(net)
    link = _GsoLink(a)

    def offload_gone() -> None:
        with a.driver.lock:
            link.iface.transmit_gso = None  # the connection still builds large segments

    data = bytes(range(251)) * (SIZE // 251)
    assert _transfer(a, b, data, during=offload_gone) == data
    assert a.ip.counters["out_gso_split"] > 0


def test_hooks_see_packets_of_the_wire_s_size(net: Network) -> None:
    a, b = _hosts(net)
    link = _GsoLink(a)
    seen: list[int] = []

    def watch(packet: Packet) -> int:
        seen.append(packet.length)
        return ACCEPT

    with a.driver.lock:
        a.ip.add_hook(POST_ROUTING, watch)
    data = bytes(range(256)) * (1 << 12)
    assert _transfer(a, b, data) == data
    assert not link.sizes and a.ip.counters["out_gso_split"] > 0
    assert seen and max(seen) <= 1500


def test_a_packet_its_link_did_not_vouch_for_is_verified(net: Network) -> None:
    a, b = _hosts(net)
    iface = next(i for i in b.ip.interfaces if not i.loopback)
    assert iface.trusted
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    segment = tcpwire.build(40000, 9, 1, 0, tcpwire.SYN, 1000)  # checksum left zero: wrong
    packet = ipv4.build(src, dst, 6, len(segment), df=True) + segment
    with b.driver.lock:
        before = dict(b.ip.counters)
        b.receive(packet, iface, b.driver.now(), True)
        assert b.ip.counters["in_bad_checksum"] == before["in_bad_checksum"] + 1
        b.receive(packet, iface, b.driver.now())  # vouched for: taken (port 9: a RST)
        assert b.ip.counters["in_bad_checksum"] == before["in_bad_checksum"] + 1
        assert b.ip.counters["in_delivered"] == before["in_delivered"] + 1
