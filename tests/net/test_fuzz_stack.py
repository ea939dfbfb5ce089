"""Fuzzing the parsers and ``IPStack.input`` with mutations of real captured packets.

The seeds are not hand-made: they are the packets of a real exchange between two hosts
of the virtual network (TCP handshakes, data both ways, FINs, UDP, fragments, ICMP echo
and errors, IPv4 and IPv6), captured with their checksums filled (``PcapWriter``), plus
the Linux kernel's packets of ``tests/wire/wire_captures.py``. The TCP seeds keep the
4-tuples of connections that are still open on the target hosts, so mutated segments
reach a live listener and established connections, not only the "no socket" path.

Every mutant goes to the host it is addressed to, once as from an untrusted link
(checksums verified) and once as from a trusted one, and must:

* raise nothing and leave no caught exception behind (driver errors, TCP
  ``internal_errors``);
* be counted when it is malformed: the wire parsers, run independently on the same
  bytes, say which layer must refuse it, and that layer's counter must rise
  (``in_malformed``, ``in_bad_checksum``, TCP ``bad_segments``, UDP ``bad_header``).

Budgets are small by default (a few seconds); ``MULTISOCK_FUZZ_EXAMPLES=N`` (see
``tests/fuzz_budget.py``) runs N examples per fuzzer. During the fuzzing the link between
the hosts is down: each mutant's effect is on the host it reaches, and a reply cannot
start a ping-pong between the hosts (issue 15 item 1 has its own tests).
"""

from __future__ import annotations

import io
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multisock
from multisock.net.host import Host
from multisock.net.pcap import PcapWriter
from multisock.stack import addresses
from multisock.wire import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, tcp, udp
from multisock.wire.checksum import verify_transport_checksum
from multisock.wire.errors import MalformedPacket
from tests.fuzz_budget import budget
from tests.wire import wire_captures as kernel_captures
from tests.wire import wire_fuzz

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"


@dataclass
class Target:
    net: multisock.Network
    hosts: dict[bytes, Host]  # each host by its addresses
    seeds: list[bytes]  # IP packets
    keep: list[Any]  # the open sockets (listeners, live connections)


def _exchange(a: Host, b: Host, keep: list[Any]) -> None:
    for family, b_addr in ((socket.AF_INET, B4), (socket.AF_INET6, B6)):
        srv = b.socket(family, socket.SOCK_STREAM)
        srv.bind((b_addr, 8080))
        srv.listen()
        keep.append(srv)
        for closing in (False, True):
            cli = a.socket(family, socket.SOCK_STREAM)
            cli.settimeout(5)
            cli.connect((b_addr, 8080))
            conn, _ = srv.accept()
            conn.settimeout(5)
            cli.sendall(b"request " * 40)
            assert conn.recv(4096)
            conn.sendall(b"response " * 400)
            got = 0
            while got < 3600:
                got += len(cli.recv(65536))
            if closing:
                cli.close()
                assert conn.recv(10) == b""
                conn.close()
            else:
                keep += [cli, conn]  # live: mutants of its segments hit an established socket
        rx = b.socket(family, socket.SOCK_DGRAM)
        rx.bind((b_addr, 5353))
        keep.append(rx)
        tx = a.socket(family, socket.SOCK_DGRAM)
        tx.settimeout(5)
        for size in (12, 3000):  # 3000: fragmented on the 1500-byte link
            tx.sendto(b"d" * size, (b_addr, 5353))
            rx.settimeout(5)
            data, peer = rx.recvfrom(65536)
            rx.sendto(data, peer)
            tx.recv(65536)
        tx.sendto(b"nobody", (b_addr, 9))  # port unreachable comes back
        tx.close()
        a.ping(b_addr)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    net = multisock.Network(seed=1515)
    a = net.add_host("a", f"{A4}/24", f"{A6}/64")
    b = net.add_host("b", f"{B4}/24", f"{B6}/64")
    link = net.link(a, b, mtu=1500)
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    link.capture(writer)
    keep: list[Any] = []
    _exchange(a, b, keep)
    for direction in link.directions:
        direction.taps.clear()
    writer.flush()
    captured = [bytes(p) for _ts, p in dpkt.pcap.Reader(io.BytesIO(buf.getvalue()))]
    assert len(captured) > 40
    kernel = [getattr(kernel_captures, name)[14:] for name in (
        "UDP4", "ICMP4_ECHO_REQUEST", "UNREACH4", "OPTS4", "UDP6", "ICMP6_ECHO_REQUEST",
        "UNREACH6", "EXT6", "VETH_UDP4", "VETH_UNREACH4", "NEIGHBOR_SOLICIT", "VETH_UDP6")]
    link.down()
    hosts = {}
    for host in (a, b):
        for iface in host.ip.interfaces:
            for addr, _ in iface.addresses:
                hosts[addr] = host
    yield Target(net, hosts, captured + kernel, keep)
    for sock in keep:
        sock.close()
    net.close()


# ------------------------------------------------------------------- the oracle


def must_refuse(packet: bytes, trusted: bool, local: set[bytes]) -> str | None:
    """Which counter must rise for ``packet``, by the wire parsers alone (None: no claim)."""
    try:
        if not packet or packet[0] >> 4 not in (4, 6):
            return "in_malformed"
        if packet[0] >> 4 == 4:
            h4, payload = ipv4.parse(packet, verify_checksum=not trusted)
            if _martian(h4.src, local):
                return "in_martian_source"
            if h4.mf or h4.frag_offset:
                return None
            src, dst, proto = h4.src, h4.dst, h4.proto
        else:
            h6, payload = ipv6.parse(packet)
            if _martian(h6.src, local):
                return "in_martian_source"
            if h6.fragment is not None:
                return None
            src, dst, proto = h6.src, h6.dst, h6.next_header
    except MalformedPacket:
        return "in_malformed"
    if dst not in local or proto not in (6, 17):
        return None
    if not trusted:
        # TCP's checksum is verified whatever the length; UDP's from a whole header on, and
        # not at all when an IPv4 sender sent none (zero)
        checked = proto == 6 or (len(payload) >= 8 and not (
            len(src) == 4 and payload[6:8] == b"\0\0"))
        if checked and not verify_transport_checksum(src, dst, proto, payload):
            return "in_bad_checksum"
    try:
        (tcp.parse if proto == 6 else udp.parse)(payload)
    except MalformedPacket:
        return "tcp bad_segments" if proto == 6 else "udp bad_header"
    return None


def _martian(src: bytes, local: set[bytes]) -> bool:
    """A source no link may bring (ours, loopback, multicast, broadcast): IP drops it first."""
    return (src in local or addresses.is_loopback(src) or addresses.is_multicast(src)
            or src == b"\xff\xff\xff\xff")


def counter(host: Host, name: str) -> int:
    if name == "tcp bad_segments":
        assert host.ip.tcp is not None
        return int(host.ip.tcp.counters["bad_segments"])
    if name == "udp bad_header":
        return int(host.ip.udp.counters["bad_header"])
    return int(host.ip.counters[name])


def deliver(target: Target, packet: bytes) -> None:
    """``packet`` into the host it is addressed to (else b), untrusted then trusted; what must
    be refused is counted, and nothing is raised or caught inside."""
    dst = packet[16:20] if packet[:1] and packet[0] >> 4 == 4 else packet[24:40]
    host = target.hosts.get(bytes(dst)) or target.hosts[socket.inet_aton(B4)]
    iface = host.ip.interface("eth0")
    local = {addr for addr, h in target.hosts.items() if h is host}
    with host.driver.operation():
        for trusted in (False, True):
            iface.trusted = trusted
            expected = must_refuse(packet, trusted, local)
            before = counter(host, expected) if expected else 0
            try:
                host.receive(packet, iface, host.driver.now())
            finally:
                iface.trusted = True
            if expected:
                assert counter(host, expected) > before, (expected, packet.hex(), trusted)
    assert host.driver.errors == []
    assert host.ip.tcp is not None and host.ip.tcp.counters["internal_errors"] == 0, (
        host.ip.tcp.last_exception)


# ------------------------------------------------------------------- the fuzzers


def test_parsers_take_mutants_of_real_packets(target: Target) -> None:
    """Only MalformedPacket may leave a parser, whatever the mutation (IP, then the layer
    its header names; Ethernet and ARP on the kernel's frames)."""
    parsed = 0
    for data in wire_fuzz.mutants(target.seeds, budget(3000), seed=1516):
        if data and data[0] >> 4 == 6:
            result: Any = wire_fuzz.run_parser(ipv6.parse, data)
            proto = result[0].next_header if result else None
        else:
            result = wire_fuzz.run_parser(lambda b: ipv4.parse(b, False), data)
            proto = result[0].proto if result else None
        if result is None:
            continue
        parsed += 1
        payload = bytes(result[1])
        layer = {6: tcp.parse, 17: udp.parse, 1: lambda b: icmpv4.parse(b, False),
                 58: icmpv6.parse}.get(proto)
        if layer is not None:
            wire_fuzz.run_parser(layer, payload)
    frames = [kernel_captures.ARP_REQUEST, kernel_captures.ARP_REPLY,
              kernel_captures.NEIGHBOR_ADVERT, kernel_captures.VETH_UDP4]
    for data in wire_fuzz.mutants(frames, budget(500), seed=1517):
        frame = wire_fuzz.run_parser(ethernet.parse, data)
        if frame is not None:
            wire_fuzz.run_parser(arp.parse, bytes(data[14:]))
    assert parsed > 100  # the mutations are not all refused at the first header


def test_stack_takes_mutants_of_real_packets(target: Target) -> None:
    """Seeded mutations (truncation, bit flips, boundary lengths, garbage) of every seed."""
    for data in wire_fuzz.mutants(target.seeds, budget(1500), seed=1518):
        deliver(target, data)


edit = st.tuples(st.integers(0, 80), st.integers(0, 255))


@settings(max_examples=budget(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 10_000), edits=st.lists(edit, max_size=4),
       cut=st.integers(0, 4000), extra=st.binary(max_size=16))
def test_stack_takes_hypothesis_edits_of_real_packets(target: Target, index: int,
                                                      edits: list[tuple[int, int]], cut: int,
                                                      extra: bytes) -> None:
    """hypothesis' search (it shrinks a failure to the smallest edit): byte edits in the
    headers, a cut at any length, trailing bytes, on any seed."""
    packet = bytearray(target.seeds[index % len(target.seeds)])
    for offset, value in edits:
        if offset < len(packet):
            packet[offset] = value
    deliver(target, bytes(packet[: cut or len(packet)]) + extra)


def test_stack_takes_random_bytes(target: Target) -> None:
    rng = random.Random(1519)
    for _ in range(budget(500)):
        head = rng.choice((b"", b"\x45", b"\x46", b"\x60", b"\x4f"))
        deliver(target, head + rng.randbytes(rng.randrange(60)))


def test_hosts_still_serve_after_the_fuzzing(target: Target) -> None:
    """The live listener accepts, and both hosts answer pings, once the link is back."""
    test_stack_takes_mutants_of_real_packets(target)
    a = target.hosts[socket.inet_aton(A4)]
    b = target.hosts[socket.inet_aton(B4)]
    target.net.links[0].up()
    assert a.ping(B4) < 1.0 and a.ping(B6) < 1.0
    listener = target.keep[0]
    cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.connect((B4, 8080))
    listener.settimeout(5)
    conn, _ = listener.accept()
    cli.sendall(b"after")
    assert conn.recv(10) == b"after"
    conn.close()
    cli.close()
    assert b.ip.counters["in_malformed"] > 0 and b.ip.counters["in_bad_checksum"] > 0
    assert sum(b.ip.malformed_reasons.values()) == b.ip.counters["in_malformed"]
