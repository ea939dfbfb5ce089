"""NAT on a router: clients behind masquerade reach a server, a port forward is reached from
outside, pings and ICMP errors are translated, mappings follow RFC 4787."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.net.network import Network

INSIDE, OUTSIDE, SERVER = "192.168.1.254", "203.0.113.1", "203.0.113.10"


@pytest.fixture(params=[False, True], ids=["trusted", "untrusted-links"])
def lan(request: Any) -> Iterator[tuple[Network, Host, Host, Host, Host]]:
    """c1, c2 on 192.168.1.0/24 behind router r; s on 203.0.113.0/24 outside."""
    corrupt = {"corrupt": 1e-12} if request.param else {}  # untrusted: checksums on the wire
    with multisock.Network(seed=11) as net:
        sw = net.add_switch()
        c1 = net.add_host("c1", "192.168.1.10/24")
        c2 = net.add_host("c2", "192.168.1.11/24")
        r = net.add_router("r", f"{INSIDE}/24")
        s = net.add_host("s", f"{SERVER}/24")
        net.link(c1, sw, **corrupt)
        net.link(c2, sw, **corrupt)
        net.link(r, sw, **corrupt)
        net.link(r, s, a_addr=f"{OUTSIDE}/24", **corrupt)
        for c in (c1, c2):
            c.add_route("0.0.0.0/0", via=INSIDE)
        # s has no route to 192.168.1.0/24: only NAT lets the clients reach it
        r.nat.masquerade("eth1", source="192.168.1.0/24")
        assert r.ip.interface("eth1").trusted is not request.param
        yield net, c1, c2, r, s
        # every rewritten checksum was right where the links check them
        for host in (c1, c2, r, s):
            assert host.ip.counters["in_bad_checksum"] == 0, host
            assert host.ip.counters["in_malformed"] == 0, host


def test_clients_behind_nat_reach_a_server(lan: Any) -> None:
    _, c1, c2, r, s = lan
    listener = s.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 80))
    listener.listen()
    seen = []
    for client_host in (c1, c2):
        client = client_host.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.bind(("0.0.0.0", 40000))  # both pick the same port: one keeps it
        client.connect((SERVER, 80))
        conn, peer = listener.accept()
        seen.append(peer)
        client.sendall(b"hello " * 1000)
        got = b""
        while len(got) < 6000:
            got += conn.recv(65536)
        conn.sendall(got[::-1])
        back = b""
        while len(back) < 6000:
            back += client.recv(65536)
        assert back == got[::-1]
    assert [addr for addr, _ in seen] == [OUTSIDE, OUTSIDE]
    assert seen[0][1] == 40000  # port preservation
    assert seen[1][1] != 40000  # taken: another one, from the same range
    assert seen[1][1] >= 1024
    rows = r.nat.mappings()
    assert {row["inside"] for row in rows} == {"192.168.1.10:40000", "192.168.1.11:40000"}


def test_mapping_is_endpoint_independent_and_filtering_address_dependent(lan: Any) -> None:
    net, c1, _, r, s = lan
    s2 = net.add_host("s2", "198.51.100.20/24")  # another network outside, by eth2
    net.link(r, s2, a_addr="198.51.100.1/24")
    r.nat.masquerade("eth2", source="192.168.1.0/24")
    receivers = []
    for host, addr in ((s, SERVER), (s2, "198.51.100.20")):
        sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((addr, 5000))
        sock.settimeout(1.0)
        receivers.append(sock)
    client = c1.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("0.0.0.0", 6000))
    client.settimeout(0.3)
    client.sendto(b"to s", (SERVER, 5000))
    _, seen_by_s = receivers[0].recvfrom(100)
    client.sendto(b"to s2", ("198.51.100.20", 5000))
    _, seen_by_s2 = receivers[1].recvfrom(100)
    # one mapping for c1:6000 whatever the destination (endpoint-independent): port kept
    assert seen_by_s[1] == seen_by_s2[1] == 6000
    receivers[0].sendto(b"reply", seen_by_s)
    assert client.recvfrom(100) == (b"reply", (SERVER, 5000))
    # a host c1 never wrote to may not use the mapping (address-dependent filtering)
    stranger = s.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.add_address("203.0.113.31/24")
    stranger.bind(("203.0.113.31", 7000))
    stranger.sendto(b"unsolicited", (OUTSIDE, 6000))
    with pytest.raises(TimeoutError):
        client.recvfrom(100)
    assert r.nat.counters["filtered"] == 1
    r.nat.set_filtering("endpoint-independent")
    stranger.sendto(b"now welcome", (OUTSIDE, 6000))
    assert client.recvfrom(100) == (b"now welcome", ("203.0.113.31", 7000))


def test_port_forward_is_reached_from_outside(lan: Any) -> None:
    _, c1, _, r, s = lan
    r.nat.forward_port("tcp", 8080, "192.168.1.10", 80)
    listener = c1.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 80))
    listener.listen()
    client = s.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(2.0)
    client.connect((OUTSIDE, 8080))
    conn, peer = listener.accept()
    assert peer[0] == SERVER  # DNAT only: the inside host sees the real client
    client.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert conn.recv(100) == b"GET / HTTP/1.0\r\n\r\n"
    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
    assert client.recv(100) == b"HTTP/1.0 200 OK\r\n\r\n"
    assert client.getpeername() == (OUTSIDE, 8080)
    udp = s.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a UDP port not forwarded
    udp.sendto(b"x", (OUTSIDE, 8080))


def test_ping_through_nat_and_icmp_errors_are_translated(lan: Any) -> None:
    _, c1, c2, r, s = lan
    assert c1.ping(SERVER) < 1.0
    assert c2.ping(SERVER) < 1.0
    assert r.nat.counters["translated_in"] >= 2
    # a UDP datagram to a closed port of s: s's "port unreachable" comes back translated,
    # quoted packet included, and reaches the client's socket as ECONNREFUSED
    client = c1.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect((SERVER, 9))
    client.settimeout(1.0)
    client.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):
        client.recv(100)
    assert r.nat.counters["icmp_errors_translated"] == 1


def test_mappings_time_out(lan: Any) -> None:
    _, c1, _, r, s = lan
    server = s.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((SERVER, 5000))
    client = c1.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sendto(b"a", (SERVER, 5000))
    server.recvfrom(10)
    assert len(r.nat.mappings()) == 1
    r.ip.now += 301.0  # UDP mappings live 300 s (RFC 4787 REQ-5: at least 120)
    assert r.nat.mappings() == []
