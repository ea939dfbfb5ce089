"""Ethernet II codec: kernel frames, VLAN tags, refusals, properties, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import ethernet
from multisock.wire.errors import MalformedPacket


def test_parse_kernel_frames() -> None:
    frame = ethernet.parse(cap.NEIGHBOR_SOLICIT)
    assert frame.dst == bytes.fromhex("3333ff000002")  # IPv6 multicast MAC of ff02::1:ff00:2
    assert frame.src == cap.MAC_A
    assert frame.ethertype == ethernet.ETHERTYPE_IPV6
    assert frame.vlan is None
    assert isinstance(frame.payload, memoryview)
    assert bytes(frame.payload) == cap.NEIGHBOR_SOLICIT[14:]
    arp = ethernet.parse(cap.ARP_REQUEST)
    assert (arp.dst, arp.src, arp.ethertype) == (ethernet.BROADCAST, cap.MAC_A, 0x0806)
    lo = ethernet.parse(cap.UDP4)  # lo frames carry all-zero MACs
    assert (lo.dst, lo.src, lo.ethertype) == (bytes(6), bytes(6), ethernet.ETHERTYPE_IPV4)


def test_build_reproduces_kernel_frames() -> None:
    for frame in cap.ALL_FRAMES.values():
        parsed = ethernet.parse(frame)
        assert ethernet.build(parsed.dst, parsed.src, parsed.ethertype, parsed.payload) == frame
        assert ethernet.build(parsed.dst, parsed.src, parsed.ethertype) == frame[:14]


def _tag(tpid: int, tci: int) -> bytes:
    return tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")


def test_vlan_tags_are_skipped() -> None:
    macs = cap.MAC_B + cap.MAC_A
    ip = cap.VETH_UDP4[14:]
    tagged = macs + _tag(0x8100, 0x2064) + b"\x08\x00" + ip  # priority 1, VLAN 100
    frame = ethernet.parse(bytearray(tagged))
    assert (frame.ethertype, frame.vlan, bytes(frame.payload)) == (0x0800, 100, ip)
    double = macs + _tag(0x88A8, 0x0007) + _tag(0x8100, 0x0FFF) + b"\x86\xdd" + b"v6"
    frame = ethernet.parse(memoryview(double))
    assert (frame.ethertype, frame.vlan, bytes(frame.payload)) == (0x86DD, 0xFFF, b"v6")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(13), "shorter"),
        (bytes(12) + b"\x81\x00\x00", "truncated VLAN"),
        (bytes(12) + _tag(0x8100, 1) + _tag(0x8100, 2) + _tag(0x8100, 3) + b"\x08\x00", "too many"),
        (bytes(12) + b"\x00\x2e" + bytes(46), "802.3"),
        (bytes(12) + _tag(0x8100, 5) + b"\x05\xff", "802.3"),
    ],
)
def test_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as info:
        ethernet.parse(data)
    assert info.value.layer == "ethernet"


def test_build_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ethernet.build(bytes(5), bytes(6), 0x0800)
    with pytest.raises(ValueError):
        ethernet.build(bytes(6), bytes(6), 0x05FF)


macs = st.binary(min_size=6, max_size=6)


@settings(max_examples=300)
@given(
    macs,
    macs,
    st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8)),
    st.binary(max_size=80),
)
def test_round_trip(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = ethernet.parse(ethernet.build(dst, src, ethertype, payload))
    assert (frame.dst, frame.src, frame.ethertype, frame.vlan) == (dst, src, ethertype, None)
    assert bytes(frame.payload) == payload


@settings(max_examples=1000)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    result = wire_fuzz.run_parser(ethernet.parse, data)
    if result is not None:
        assert isinstance(result, ethernet.EthernetFrame)
        assert result.ethertype >= 0x0600 and len(result.payload) <= len(data) - 14


def test_fuzz_mutated_frames() -> None:
    tagged = cap.MAC_B + cap.MAC_A + _tag(0x88A8, 1) + _tag(0x8100, 2) + b"\x08\x06" + bytes(28)
    seeds = [cap.ARP_REPLY, cap.NEIGHBOR_ADVERT[:40], tagged]
    parsed = 0
    for data in wire_fuzz.mutants(seeds, 3000, seed=8023):
        parsed += wire_fuzz.run_parser(ethernet.parse, data) is not None
    assert parsed > 1000
