"""ARP codec (Ethernet/IPv4): the kernel's request and reply, refusals, properties, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import arp
from multisock.wire.errors import MalformedPacket


def test_parse_kernel_request_and_reply() -> None:
    request = arp.parse(cap.ARP_REQUEST[14:])
    assert request.op == arp.OP_REQUEST
    assert (request.sender_mac, request.sender_ip) == (cap.MAC_A, cap.LINK4_A)
    assert (request.target_mac, request.target_ip) == (bytes(6), cap.LINK4_B)
    reply = arp.parse(cap.ARP_REPLY[14:])
    assert reply.op == arp.OP_REPLY
    assert (reply.sender_mac, reply.sender_ip) == (cap.MAC_B, cap.LINK4_B)
    assert (reply.target_mac, reply.target_ip) == (cap.MAC_A, cap.LINK4_A)
    assert not request.is_gratuitous and not reply.is_gratuitous


def test_build_reproduces_the_kernel() -> None:
    built = arp.build(arp.OP_REQUEST, cap.MAC_A, cap.LINK4_A, bytes(6), cap.LINK4_B)
    assert built == cap.ARP_REQUEST[14:]
    built = arp.build(arp.OP_REPLY, cap.MAC_B, cap.LINK4_B, cap.MAC_A, cap.LINK4_A)
    assert built == cap.ARP_REPLY[14:]


def test_minimum_frame_padding_is_ignored() -> None:
    padded = cap.ARP_REPLY[14:] + bytes(18)
    for buf in (padded, bytearray(padded), memoryview(padded)):
        assert arp.parse(buf).target_ip == cap.LINK4_A


def test_gratuitous_announcement() -> None:
    packet = arp.parse(arp.build(arp.OP_REQUEST, cap.MAC_A, cap.LINK4_A, bytes(6), cap.LINK4_A))
    assert packet.is_gratuitous


REPLY = cap.ARP_REPLY[14:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (REPLY[:27], "shorter"),
        (b"\x00\x06" + REPLY[2:], "hardware"),
        (REPLY[:4] + b"\x08" + REPLY[5:], "hardware"),
        (REPLY[:2] + b"\x86\xdd" + REPLY[4:], "protocol"),
        (REPLY[:5] + b"\x10" + REPLY[6:], "protocol"),
        (REPLY[:6] + b"\x00\x03" + REPLY[8:], "operation"),
        (REPLY[:6] + b"\x00\x00" + REPLY[8:], "operation"),
    ],
)
def test_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as info:
        arp.parse(data)
    assert info.value.layer == "arp"


def test_build_refuses_bad_address_lengths() -> None:
    with pytest.raises(ValueError):
        arp.build(1, bytes(5), bytes(4), bytes(6), bytes(4))
    with pytest.raises(ValueError):
        arp.build(1, bytes(6), bytes(16), bytes(6), bytes(4))


macs = st.binary(min_size=6, max_size=6)
ips = st.binary(min_size=4, max_size=4)


@settings(max_examples=300)
@given(st.sampled_from([arp.OP_REQUEST, arp.OP_REPLY]), macs, ips, macs, ips)
def test_round_trip(op: int, smac: bytes, sip: bytes, tmac: bytes, tip: bytes) -> None:
    packet = arp.parse(arp.build(op, smac, sip, tmac, tip))
    assert (packet.op, packet.sender_mac, packet.sender_ip) == (op, smac, sip)
    assert (packet.target_mac, packet.target_ip) == (tmac, tip)


@settings(max_examples=1000)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    forced = b"\x00\x01\x08\x00\x06\x04\x00" + data  # valid prefix reaches the op check
    for candidate in (data, forced):
        result = wire_fuzz.run_parser(arp.parse, candidate)
        if result is not None:
            assert isinstance(result, arp.ARPPacket)
            assert len(result.sender_mac) == len(result.target_mac) == 6


def test_fuzz_mutated_kernel_packets() -> None:
    parsed = 0
    for data in wire_fuzz.mutants([cap.ARP_REQUEST[14:], REPLY], 3000, seed=826):
        parsed += wire_fuzz.run_parser(arp.parse, data) is not None
    assert parsed > 300
