"""Random and mutated packets into a host's input path: counted and dropped, never raised.

Uses hypothesis to generate byte strings and mutations of valid packets (IPv4 and
IPv6, with UDP, ICMP and TCP payloads), delivers them on an *untrusted* interface
(so checksums are verified) and a trusted one, and asserts that the host survives:
no exception escapes, the driver recorded no error, and the host still answers a ping.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multisock
from multisock.net.host import Host
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6, udp
from multisock.wire.checksum import transport_checksum
from tests.fuzz_budget import budget

SRC4, DST4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SRC6 = bytes.fromhex("fd000000000000000000000000000001")
DST6 = bytes.fromhex("fd000000000000000000000000000002")


def valid_packets() -> list[bytes]:
    out = []
    seg = udp.build(1234, 9000, 5) + b"hello"
    csum = transport_checksum(SRC4, DST4, 17, seg)
    seg = seg[:6] + struct.pack("!H", csum) + seg[8:]
    out.append(ipv4.build(SRC4, DST4, 17, len(seg)) + seg)
    echo = icmpv4.build_echo(icmpv4.ECHO_REQUEST, 1, 1, b"ping")
    out.append(ipv4.build(SRC4, DST4, 1, len(echo)) + echo)
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 0x50, 0x02, 65535, 0, 0)
    out.append(ipv4.build(SRC4, DST4, 6, len(tcp)) + tcp)
    echo6 = icmpv6.build_echo(icmpv6.ECHO_REQUEST, 1, 1, b"ping6", SRC6, DST6)
    out.append(ipv6.build(SRC6, DST6, 58, len(echo6)) + echo6)
    frag = ipv6.build_fragment_header(17, 0, True, 77) + bytes(16)
    out.append(ipv6.build(SRC6, DST6, ipv6.FRAGMENT, len(frag)) + frag)
    err = icmpv4.build_error(icmpv4.DEST_UNREACH, icmpv4.PORT_UNREACH, out[0])
    out.append(ipv4.build(SRC4, DST4, 1, len(err)) + err)
    return out


VALID = valid_packets()


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    net = multisock.Network(seed=99)
    a = net.add_host("a", "10.0.0.1/24", "fd00::1/64")
    b = net.add_host("b", "10.0.0.2/24", "fd00::2/64")
    net.link(a, b)
    sock = b.socket(2, 2)
    sock.bind(("0.0.0.0", 9000))
    yield b
    net.close()


def deliver(host: Host, packet: bytes) -> None:
    iface = host.ip.interface("eth0")
    with host.driver.operation():
        for trusted in (False, True):
            iface.trusted = trusted
            host.receive(packet, iface, host.driver.now())
    iface.trusted = True


mutation = st.tuples(st.integers(0, len(VALID) - 1), st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6), st.integers(0, 200))


@settings(max_examples=budget(500), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes(host: Host, data: bytes) -> None:
    deliver(host, data)
    assert host.driver.errors == []


@settings(max_examples=budget(1000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=mutation)
def test_mutated_valid_packets(host: Host, spec: tuple[int, list[tuple[int, int]], int]) -> None:
    index, flips, cut = spec
    packet = bytearray(VALID[index])
    for offset, value in flips:
        if offset < len(packet):
            packet[offset] = value
    deliver(host, bytes(packet[: max(1, len(packet) - cut % 8)] if cut % 3 == 0 else packet))
    assert host.driver.errors == []


def test_host_survives_and_counted(host: Host) -> None:
    for packet in VALID:
        deliver(host, packet)
    assert host.driver.errors == []
    other = host.net.hosts["a"]
    assert other.ping("10.0.0.2") < 1.0
    assert other.ping("fd00::2") < 1.0


def test_bad_packets_land_in_counters() -> None:
    with multisock.Network(seed=1) as net:
        b = net.add_host("b", "10.0.0.2/24")
        for junk in (b"\x45" + bytes(25), b"\x65" + bytes(50), b"\x46" + bytes(19)):
            deliver(b, junk)
        bad = bytearray(VALID[0])
        bad[-1] ^= 0xFF  # payload corrupted: UDP checksum catches it on the untrusted pass
        deliver(b, bytes(bad))
        assert b.ip.counters["in_malformed"] >= 6
        assert b.ip.counters["in_bad_checksum"] >= 1
        assert sum(b.ip.malformed_reasons.values()) == b.ip.counters["in_malformed"]
