"""ICMP "fragmentation needed" / "packet too big" (issue #15 item 7): a forged message with
MTU 0 used to cut the MSS to 64 (an 8 MiB transfer 0.09 s -> 1.1 s). Like Linux, the path
MTU an ICMP error can set is at least 552 for IPv4 (ip_rt_min_pmtu) and 1280 for IPv6,
and nothing - neither the connection nor the IP layer's path-MTU cache - believes an error
whose quoted sequence number is not between snd_una and snd_nxt (tcp_v4_err, RFC 5927)."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

import pytest
from tcpnet import A, B
from tcpscript import Script

import multisock
from multisock.net.host import Host
from multisock.stack.tcp import TcpSocket
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6
from multisock.wire import tcp as wire


def _frag_needed(s: Script, sock: TcpSocket, mtu: int) -> None:
    quoted = wire.build(s.local_port, 8080, sock.snd_una & 0xFFFFFFFF, 0, wire.ACK, 0)
    s.stack.icmp_unreachable(A, B, memoryview(quoted), errno.EMSGSIZE, s.now, mtu=mtu)


@pytest.mark.parametrize("mtu", [0, 1, 68, 300, 551])
def test_a_tiny_mtu_is_raised_to_the_ipv4_minimum(mtu: int) -> None:
    s = Script()
    sock = s.active_open()
    assert sock.info()["snd_mss"] == 1460
    _frag_needed(s, sock, mtu)
    assert sock.info()["snd_mss"] == 552 - 40  # before: max(mtu - 40, 64)


def test_a_real_mtu_above_the_minimum_still_counts() -> None:
    s = Script()
    sock = s.active_open()
    _frag_needed(s, sock, 1000)
    assert sock.info()["snd_mss"] == 960
    _frag_needed(s, sock, 0)  # a later forged zero does not undo it, nor go below 552
    assert sock.info()["snd_mss"] == 512


# ----------------------------------------------------------------- through the IP layer

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"


@pytest.fixture
def pair() -> Iterator[tuple[multisock.Network, Host, Host]]:
    net = multisock.Network(seed=4)
    a = net.add_host("a", f"{A4}/24", f"{A6}/64")
    b = net.add_host("b", f"{B4}/24", f"{B6}/64")
    net.link(a, b, mtu=1500)
    yield net, a, b
    _KEEP.clear()
    net.close()


_KEEP: list[object] = []  # the sockets of the test running (a collected socket closes)


def _connection(a: Host, b: Host, family: int, dst: str) -> TcpSocket:
    server = b.socket(family, socket.SOCK_STREAM)
    server.bind((dst, 80))
    server.listen(1)
    client = a.socket(family, socket.SOCK_STREAM)
    client.connect((dst, 80))
    conn, _ = server.accept()
    _KEEP[:] = [server, client, conn]
    client.sendall(b"hello")
    assert conn.recv(5) == b"hello"
    blocks = [s for s in a.ip.tcp.conns.values() if s.remote[1] == 80]
    assert len(blocks) == 1
    block = blocks[0]
    assert isinstance(block, TcpSocket) and block.state.name == "ESTABLISHED"
    return block


def _icmp_about(block: TcpSocket, seq: int, mtu: int) -> bytes:
    """The error a router between a and b would send a, quoting a segment a sent."""
    local, remote = block.local, block.remote
    assert local is not None and remote is not None
    tcp = struct.pack("!HHIIBBHHH", local[1], remote[1], seq & 0xFFFFFFFF, 0, 0x50, 0x10, 0, 0, 0)
    if len(local[0]) == 4:
        original = ipv4.build(local[0], remote[0], 6, len(tcp) + 1400) + tcp + bytes(1400)
        err = icmpv4.build_error(icmpv4.DEST_UNREACH, icmpv4.FRAG_NEEDED, original, rest=mtu)
        return ipv4.build(remote[0], local[0], 1, len(err)) + err
    original = ipv6.build(local[0], remote[0], 6, len(tcp) + 1400) + tcp + bytes(1400)
    err = icmpv6.build_error(icmpv6.PACKET_TOO_BIG, 0, original, mtu, remote[0], local[0])
    return ipv6.build(remote[0], local[0], 58, len(err)) + err


def _deliver(net: multisock.Network, a: Host, packet: bytes) -> None:
    iface = a.ip.interfaces[-1]
    with net.driver.lock:
        a.receive(packet, iface, net.driver.now())


@pytest.mark.parametrize(
    ("family", "dst", "minimum", "overhead"),
    [(socket.AF_INET, B4, 552, 40), (socket.AF_INET6, B6, 1280, 60)],
)
def test_forged_mtu_zero_is_clamped_to_the_family_minimum(
    pair: tuple[multisock.Network, Host, Host], family: int, dst: str, minimum: int, overhead: int
) -> None:
    net, a, b = pair
    block = _connection(a, b, family, dst)
    remote = block.remote
    assert remote is not None
    _deliver(net, a, _icmp_about(block, block.snd_una, 0))
    assert a.ip.route_mtu(remote[0]) == minimum
    assert block.info()["snd_mss"] == minimum - overhead - 12  # (timestamps on)


@pytest.mark.parametrize(("family", "dst"), [(socket.AF_INET, B4), (socket.AF_INET6, B6)])
def test_an_error_quoting_a_sequence_not_in_flight_changes_nothing(
    pair: tuple[multisock.Network, Host, Host], family: int, dst: str
) -> None:
    net, a, b = pair
    block = _connection(a, b, family, dst)
    remote = block.remote
    assert remote is not None
    mss = block.info()["snd_mss"]
    _deliver(net, a, _icmp_about(block, block.snd_una + 100_000, 1300))
    assert block.info()["snd_mss"] == mss
    assert a.ip.route_mtu(remote[0]) == 1500  # the path-MTU cache did not learn it either
    assert a.ip.tcp.counters["icmp_out_of_window"] == 1
    _deliver(net, a, _icmp_about(block, block.snd_una, 1300))  # the same, in flight: believed
    assert a.ip.route_mtu(remote[0]) == 1300
    assert block.info()["snd_mss"] < mss
