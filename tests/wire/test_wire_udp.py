"""UDP header codec: kernel datagrams, exact rebuilds, refusals, properties, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import udp
from multisock.wire.checksum import verify_transport_checksum
from multisock.wire.errors import MalformedPacket

ETH = cap.ETH


def test_parse_kernel_datagram() -> None:
    segment = cap.VETH_UDP4[ETH + 20 :]
    header, payload = udp.parse(segment)
    assert header.src_port == 40000
    assert header.dst_port == 40001
    assert header.length == 14
    assert header.checksum == 0x2658
    assert isinstance(payload, memoryview)
    assert bytes(payload) == b"arp me"


def test_build_and_checksum_reproduce_kernel_datagrams() -> None:
    cases = [
        (cap.VETH_UDP4[ETH + 20 :], cap.LINK4_A, cap.LINK4_B),
        (cap.VETH_UDP6[ETH + 40 :], cap.LINK6_A, cap.LINK6_B),
        (cap.EXT6[ETH + 56 :], cap.LOOPBACK6, cap.LOOPBACK6),
    ]
    for segment, src, dst in cases:
        header, payload = udp.parse(segment)
        built = udp.build(header.src_port, header.dst_port, len(payload))
        assert built == segment[:6] + b"\0\0"
        datagram = built + bytes(payload)
        value = udp.checksum(src, dst, datagram)
        assert value == header.checksum
        filled = (
            datagram[: udp.CHECKSUM_OFFSET]
            + value.to_bytes(2, "big")
            + datagram[udp.CHECKSUM_OFFSET + 2 :]
        )
        assert filled == segment
        assert verify_transport_checksum(src, dst, udp.PROTO, filled)


def test_kernel_fragmented_datagram_reassembled() -> None:
    datagram = cap.FRAG4_FIRST_HEADERS[ETH + 20 :] + cap.FRAG_DATA
    header, payload = udp.parse(datagram)
    assert header.length == 8 + len(cap.FRAG_DATA) == 1544
    assert bytes(payload) == cap.FRAG_DATA
    zeroed = datagram[:6] + b"\0\0" + datagram[8:]
    assert udp.checksum(cap.LOOPBACK4, cap.LOOPBACK4, zeroed) == header.checksum == 0x3BDB


def test_zero_checksum_is_sent_as_all_ones() -> None:
    # Find a payload whose true checksum is 0: the two-byte value that cancels the rest.
    src = dst = cap.LOOPBACK4
    base = udp.build(1, 2, 2) + b"\0\0"
    value = udp.checksum(src, dst, base)
    # a payload word equal to the current checksum brings the sum to 0xFFFF: checksum 0
    payload = value.to_bytes(2, "big")
    datagram = udp.build(1, 2, 2) + payload
    assert udp.checksum(src, dst, datagram) == 0xFFFF
    filled = datagram[:6] + b"\xff\xff" + datagram[8:]
    assert verify_transport_checksum(src, dst, udp.PROTO, filled)


def test_length_field_trims_trailing_bytes() -> None:
    segment = udp.build(5, 6, 3) + b"abc" + b"padding"
    for buf in (segment, bytearray(segment), memoryview(segment)):
        header, payload = udp.parse(buf)
        assert header.length == 11
        assert bytes(payload) == b"abc"


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (bytes(7), "shorter"),
        (bytes.fromhex("0001000200070000"), "below 8"),
        (bytes.fromhex("000100020000ffff"), "below 8"),
        (bytes.fromhex("00010002000a0000") + b"x", "beyond"),
    ],
)
def test_refusals(segment: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as info:
        udp.parse(segment)
    assert info.value.layer == "udp"


def test_build_refuses_oversize() -> None:
    with pytest.raises(ValueError):
        udp.build(1, 2, 65528)
    with pytest.raises(ValueError):
        udp.build(1, 2, -1)
    assert udp.build(1, 2, 65527)[4:6] == b"\xff\xff"


@settings(max_examples=300)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=100),
    st.binary(max_size=10),
)
def test_round_trip(sport: int, dport: int, payload: bytes, trailer: bytes) -> None:
    header, parsed = udp.parse(udp.build(sport, dport, len(payload)) + payload + trailer)
    assert (header.src_port, header.dst_port, header.length, header.checksum) == (
        sport,
        dport,
        8 + len(payload),
        0,
    )
    assert bytes(parsed) == payload


def _check(result: object, data: bytes) -> None:
    if result is None:
        return
    assert isinstance(result, tuple)
    header, payload = result
    assert 8 <= header.length <= len(data)
    assert len(payload) == header.length - 8


@settings(max_examples=1000)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(wire_fuzz.run_parser(udp.parse, data), data)


def test_fuzz_mutated_kernel_datagrams() -> None:
    seeds = [cap.VETH_UDP4[ETH + 20 :], cap.UDP6[ETH + 40 :], cap.EXT6[ETH + 56 :]]
    parsed = 0
    for data in wire_fuzz.mutants(seeds, 3000, seed=768):
        result = wire_fuzz.run_parser(udp.parse, data)
        _check(result, data)
        parsed += result is not None
    assert parsed > 300
