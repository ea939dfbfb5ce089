"""UDP and ICMP over the in-process network, end to end through the public API."""

from __future__ import annotations

import errno
import os
import socket

import pytest

import multisock
from multisock.net.network import Network


@pytest.fixture
def net() -> Network:
    n = multisock.Network(seed=7)
    yield n
    n.close()


def pair(net: Network, **link: object) -> tuple[multisock.Host, multisock.Host]:
    a = net.add_host("alpha", "10.0.0.1/24", "fd00::1/64")
    b = net.add_host("beta", "10.0.0.2/24", "fd00::2/64")
    net.link(a, b, **link)
    return a, b


@pytest.mark.parametrize("family,addr", [(socket.AF_INET, "10.0.0.2"), (socket.AF_INET6, "fd00::2")])
def test_udp_datagram_both_families(net: Network, family: int, addr: str) -> None:
    a, b = pair(net)
    server = b.socket(family, socket.SOCK_DGRAM)
    server.bind((addr, 9000))
    client = a.socket(family, socket.SOCK_DGRAM)
    client.sendto(b"hello", (addr, 9000))
    server.settimeout(2)
    data, source = server.recvfrom(100)
    assert data == b"hello"
    assert source[0] in ("10.0.0.1", "fd00::1")
    server.sendto(b"back", source)
    client.settimeout(2)
    assert client.recvfrom(100)[0] == b"back"
    client.close()
    server.close()


def test_udp_large_datagram_is_fragmented_and_reassembled(net: Network) -> None:
    a, b = pair(net, mtu=1500)
    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", 9000))
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = os.urandom(65507)
    client.sendto(payload, ("10.0.0.2", 9000))
    server.settimeout(2)
    assert server.recv(70000) == payload
    assert a.ip.counters["out_fragments"] >= 44
    assert b.ip.reassembly4.counters["reassembled"] == 1
    with pytest.raises(OSError) as info:
        client.sendto(b"x" * 65508, ("10.0.0.2", 9000))
    assert info.value.errno == errno.EMSGSIZE


def test_udp_ipv6_fragmentation(net: Network) -> None:
    a, b = pair(net, mtu=1500)
    server = b.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.bind(("::", 9000))
    client = a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    payload = os.urandom(30000)
    client.sendto(payload, ("fd00::2", 9000))
    server.settimeout(2)
    assert server.recv(70000) == payload
    assert b.ip.reassembly6.counters["reassembled"] == 1


def test_connected_udp_gets_econnrefused_from_port_unreachable(net: Network) -> None:
    a, _b = pair(net)
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(("10.0.0.2", 9999))
    client.send(b"anyone?")
    client.settimeout(2)
    with pytest.raises(ConnectionRefusedError):
        client.recv(100)


def test_ping_both_families(net: Network) -> None:
    a, b = pair(net, delay="5ms")
    rtt = a.ping("10.0.0.2")
    assert 0.009 <= rtt < 0.5
    assert b.ping("fd00::1") >= 0.009
    assert a.ping("127.0.0.1") < 0.5


def test_ping_times_out_over_a_partition(net: Network) -> None:
    a, _b = pair(net)
    net.links[0].down()
    with pytest.raises(TimeoutError):
        a.ping("10.0.0.2", timeout=0.2)
    net.links[0].up()
    assert a.ping("10.0.0.2") < 0.5


def test_no_route_is_enetunreach(net: Network) -> None:
    a, _b = pair(net)
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as info:
        client.sendto(b"x", ("192.0.2.1", 9))
    assert info.value.errno == errno.ENETUNREACH


def test_router_forwards_and_ttl_expires() -> None:
    with multisock.Network(seed=3) as net:
        a = net.add_host("a", "10.1.0.1/24")
        r = net.add_router("r", "10.1.0.254/24")
        b = net.add_host("b", "10.2.0.1/24")
        net.link(a, r)
        net.link(r, b, b_addr=None, a_addr="10.2.0.254/24")
        a.add_route("0.0.0.0/0", via="10.1.0.254")
        b.add_route("0.0.0.0/0", via="10.2.0.254")
        assert a.ping("10.2.0.1") < 0.5
        server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("0.0.0.0", 7))
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.sendto(b"via router", ("10.2.0.1", 7))
        server.settimeout(2)
        assert server.recv(100) == b"via router"
        assert r.ip.counters["forwarded"] >= 3
        client.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        client.connect(("10.2.0.1", 7))
        client.send(b"dies at the router")
        client.settimeout(2)
        with pytest.raises(OSError) as info:
            client.recv(100)
        assert info.value.errno == errno.EHOSTUNREACH
        assert r.ip.counters["ttl_exceeded"] == 1


def test_switch_joins_three_hosts() -> None:
    with multisock.Network(seed=4) as net:
        sw = net.add_switch()
        hosts = [net.add_host(f"h{i}", f"10.9.0.{i}/24") for i in range(1, 4)]
        for h in hosts:
            net.link(h, sw)
        for src in hosts:
            for dst in hosts:
                if src is not dst:
                    assert src.ping(dst.addresses()[0]) < 0.5
        assert sw.counters["forwarded"] >= 12


def test_malformed_packets_are_counted_not_raised(net: Network) -> None:
    a, b = pair(net)
    iface = b.ip.interface("eth0")
    with net.driver.lock:
        for junk in (b"", b"\x45", b"\x60" + bytes(10), b"\x45" + bytes(30), os.urandom(100)):
            b.receive(junk, iface, 0.0)
    assert b.ip.counters["in_malformed"] >= 4
    assert a.ping("10.0.0.2") < 0.5


def test_raw_icmp_sockets_both_families(net: Network) -> None:
    import struct

    from multisock.wire.checksum import internet_checksum

    a, _b = pair(net)
    raw4 = a.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw4.settimeout(2)
    msg = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"rawping"
    msg = msg[:2] + internet_checksum(msg).to_bytes(2, "big") + msg[4:]
    raw4.sendto(msg, ("10.0.0.2", 0))
    data, addr = raw4.recvfrom(1000)
    assert addr == ("10.0.0.2", 0)
    assert data[0] >> 4 == 4 and data[20] == 0 and data[28:] == b"rawping"  # IP header + reply
    raw6 = a.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    raw6.settimeout(2)
    raw6.sendto(struct.pack("!BBHHH", 128, 0, 0, 7, 1) + b"v6raw", ("fd00::2", 0))
    data, addr = raw6.recvfrom(1000)
    assert addr[0] == "fd00::2" and data[0] == 129 and data[8:] == b"v6raw"  # no IP header
    with pytest.raises(OSError) as info:
        a.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    assert info.value.errno == errno.EPROTONOSUPPORT
    raw4.close()
    raw6.close()
