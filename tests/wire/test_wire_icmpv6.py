"""ICMPv6 and neighbour discovery: the kernel's messages rebuilt byte for byte, refusals, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import icmpv6, ipv6
from multisock.wire.checksum import transport_checksum
from multisock.wire.errors import MalformedPacket

AT = cap.ETH + 40
LO = cap.LOOPBACK6
GROUP = bytes.fromhex("ff0200000000000000000001ff000002")  # solicited-node of fe80::2


def test_parse_kernel_echo_with_checksum_verification() -> None:
    request = icmpv6.parse(cap.ICMP6_ECHO_REQUEST[AT:], LO, LO)
    reply = icmpv6.parse(cap.ICMP6_ECHO_REPLY[AT:], LO, LO)
    assert (request.type, request.code, request.checksum) == (icmpv6.ECHO_REQUEST, 0, 0x27BD)
    assert (reply.type, reply.code, reply.checksum) == (icmpv6.ECHO_REPLY, 0, 0x26BD)
    for message in (request, reply):
        assert (message.ident, message.seq) == (0x4321, 7)
        assert bytes(message.body) == b"ping6"
        assert not message.is_error


def test_build_echo_reproduces_the_kernel() -> None:
    expected = cap.ICMP6_ECHO_REPLY[AT:]
    assert icmpv6.build_echo(icmpv6.ECHO_REPLY, 0x4321, 7, b"ping6", LO, LO) == expected
    # without addresses the field stays zero for the IP layer to fill
    bare = icmpv6.build_echo(icmpv6.ECHO_REPLY, 0x4321, 7, b"ping6")
    offset = icmpv6.CHECKSUM_OFFSET
    assert bare[offset : offset + 2] == b"\0\0"
    filled = transport_checksum(LO, LO, icmpv6.PROTO, bare).to_bytes(2, "big")
    assert bare[:offset] + filled + bare[offset + 2 :] == expected


def test_build_error_reproduces_the_kernels_port_unreachable() -> None:
    for original, error, src, dst in [
        (cap.UNREACH6_ORIGINAL, cap.UNREACH6, LO, LO),
        (cap.VETH_UDP6, cap.VETH_UNREACH6, cap.LINK6_B, cap.LINK6_A),
    ]:
        quoted = original[cap.ETH :]
        built = icmpv6.build_error(
            icmpv6.DEST_UNREACH, icmpv6.PORT_UNREACH, quoted, src=src, dst=dst
        )
        assert built == error[AT:]
        message = icmpv6.parse(built, src, dst)
        assert message.is_error and bytes(message.body) == quoted


def test_error_quote_fits_the_minimum_mtu_and_drops_link_padding() -> None:
    big = ipv6.build(LO, LO, 17, 1500) + bytes(range(250)) * 6
    message = icmpv6.build_error(icmpv6.PACKET_TOO_BIG, 0, big, 1280, LO, LO)
    assert 40 + len(message) == icmpv6.MIN_MTU
    assert message[8:] == big[: icmpv6.MAX_QUOTE]
    parsed = icmpv6.parse(message, LO, LO)
    assert parsed.mtu == 1280
    padded = cap.UDP6[cap.ETH :] + bytes(9)
    assert icmpv6.build_error(1, 4, padded)[8:] == cap.UDP6[cap.ETH :]
    problem = icmpv6.parse(icmpv6.build_error(icmpv6.PARAM_PROBLEM, 1, big, 0x12345678))
    assert problem.pointer == 0x12345678


def test_checksum_verified_only_with_both_addresses() -> None:
    data = bytearray(cap.ICMP6_ECHO_REPLY[AT:])
    data[-1] ^= 1
    with pytest.raises(MalformedPacket, match="checksum") as info:
        icmpv6.parse(data, LO, LO)
    assert info.value.layer == "icmpv6"
    assert icmpv6.parse(data).type == icmpv6.ECHO_REPLY
    assert icmpv6.parse(data, LO, None).type == icmpv6.ECHO_REPLY
    with pytest.raises(MalformedPacket, match="shorter"):
        icmpv6.parse(bytes(7))


def test_kernel_neighbor_solicitation() -> None:
    data = cap.NEIGHBOR_SOLICIT[AT:]
    message = icmpv6.parse(data, cap.LINK6_A, GROUP)
    neighbor = icmpv6.parse_neighbor(message)
    assert neighbor.type == icmpv6.NEIGHBOR_SOLICIT
    assert neighbor.target == cap.LINK6_B
    assert neighbor.lladdr == cap.MAC_A
    assert not (neighbor.router or neighbor.solicited or neighbor.override)
    built = icmpv6.build_neighbor_solicit(cap.LINK6_B, cap.MAC_A, cap.LINK6_A, GROUP)
    assert built == data


def test_kernel_neighbor_advertisement() -> None:
    data = cap.NEIGHBOR_ADVERT[AT:]
    neighbor = icmpv6.parse_neighbor(icmpv6.parse(data, cap.LINK6_B, cap.LINK6_A))
    assert neighbor.type == icmpv6.NEIGHBOR_ADVERT
    assert neighbor.target == cap.LINK6_B
    assert neighbor.lladdr == cap.MAC_B
    assert (neighbor.router, neighbor.solicited, neighbor.override) == (False, True, True)
    assert neighbor.flags == 0x60000000
    built = icmpv6.build_neighbor_advert(
        cap.LINK6_B, False, True, True, cap.MAC_B, cap.LINK6_B, cap.LINK6_A
    )
    assert built == data


def _neighbor(kind: int, code: int = 0, rest: int = 0, body: bytes = cap.LINK6_B) -> bytes:
    return bytes((kind, code, 0, 0)) + rest.to_bytes(4, "big") + body


def test_neighbor_options_of_other_kinds_are_skipped() -> None:
    nonce = bytes((14, 1)) + b"\x01\x02\x03\x04\x05\x06"
    wrong = bytes((icmpv6.OPT_TARGET_LLADDR, 1)) + cap.MAC_B  # not for a solicitation
    source = bytes((icmpv6.OPT_SOURCE_LLADDR, 1)) + cap.MAC_A
    message = icmpv6.parse(_neighbor(135, body=cap.LINK6_B + nonce + wrong + source))
    assert icmpv6.parse_neighbor(message).lladdr == cap.MAC_A
    message = icmpv6.parse(_neighbor(135, body=cap.LINK6_B + wrong))
    assert icmpv6.parse_neighbor(message).lladdr is None
    # an address option longer than Ethernet's keeps its whole data area
    long_option = bytes((icmpv6.OPT_TARGET_LLADDR, 2)) + bytes(range(14))
    message = icmpv6.parse(_neighbor(136, rest=1 << 31, body=cap.LINK6_B + long_option))
    neighbor = icmpv6.parse_neighbor(message)
    assert neighbor.lladdr == bytes(range(14)) and neighbor.router


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_neighbor(icmpv6.ECHO_REQUEST), "not a neighbour"),
        (_neighbor(135, code=1), "code"),
        (_neighbor(136, body=cap.LINK6_B[:15]), "short"),
        (_neighbor(135, body=GROUP), "multicast"),
        (_neighbor(135, body=cap.LINK6_B + b"\x01\x00" + bytes(6)), "option length"),
        (_neighbor(135, body=cap.LINK6_B + b"\x01\x02" + bytes(6)), "option length"),
        (_neighbor(135, body=cap.LINK6_B + b"\x01"), "truncated option"),
    ],
)
def test_neighbor_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        icmpv6.parse_neighbor(icmpv6.parse(data))


def test_neighbor_builders_check_the_target() -> None:
    with pytest.raises(ValueError):
        icmpv6.build_neighbor_solicit(bytes(4))
    with pytest.raises(ValueError):
        icmpv6.build_neighbor_advert(bytes(4), False, False, False)


addresses = st.binary(min_size=16, max_size=16)
unicast = addresses.filter(lambda a: a[0] != 0xFF)
lladdrs = st.one_of(st.none(), st.binary(min_size=6, max_size=6))


@settings(max_examples=200)
@given(unicast, lladdrs, addresses, addresses)
def test_solicit_round_trip(target: bytes, lladdr: bytes | None, src: bytes, dst: bytes) -> None:
    message = icmpv6.parse(icmpv6.build_neighbor_solicit(target, lladdr, src, dst), src, dst)
    neighbor = icmpv6.parse_neighbor(message)
    assert (neighbor.target, neighbor.lladdr, neighbor.flags) == (target, lladdr, 0)


@settings(max_examples=200)
@given(unicast, st.booleans(), st.booleans(), st.booleans(), lladdrs, addresses, addresses)
def test_advert_round_trip(
    target: bytes, r: bool, s: bool, o: bool, lladdr: bytes | None, src: bytes, dst: bytes
) -> None:
    data = icmpv6.build_neighbor_advert(target, r, s, o, lladdr, src, dst)
    neighbor = icmpv6.parse_neighbor(icmpv6.parse(data, src, dst))
    assert (neighbor.target, neighbor.lladdr) == (target, lladdr)
    assert (neighbor.router, neighbor.solicited, neighbor.override) == (r, s, o)


@settings(max_examples=200)
@given(
    st.sampled_from([icmpv6.ECHO_REQUEST, icmpv6.ECHO_REPLY]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=200),
    addresses,
    addresses,
)
def test_echo_round_trip(
    kind: int, ident: int, seq: int, data: bytes, src: bytes, dst: bytes
) -> None:
    message = icmpv6.parse(icmpv6.build_echo(kind, ident, seq, data, src, dst), src, dst)
    assert (message.type, message.ident, message.seq, bytes(message.body)) == (
        kind,
        ident,
        seq,
        data,
    )


def _parse_all(data: memoryview) -> object:
    message = icmpv6.parse(data, LO, LO)
    if message.type in (icmpv6.NEIGHBOR_SOLICIT, icmpv6.NEIGHBOR_ADVERT):
        return icmpv6.parse_neighbor(message)
    return message


@settings(max_examples=1000)
@given(st.binary(max_size=60))
def test_fuzz_random_bytes(data: bytes) -> None:
    wire_fuzz.run_parser(_parse_all, data)
    # force a neighbour type so parse_neighbor sees random bodies too
    if len(data) >= 8:
        forced = bytes((135 + (data[0] & 1), 0)) + data[2:]
        wire_fuzz.run_parser(lambda b: icmpv6.parse_neighbor(icmpv6.parse(b)), forced)


def test_fuzz_mutated_kernel_messages() -> None:
    seeds = [
        cap.NEIGHBOR_SOLICIT[AT:],
        cap.NEIGHBOR_ADVERT[AT:],
        cap.UNREACH6[AT:],
        cap.ICMP6_ECHO_REPLY[AT:],
    ]
    neighbors = 0
    for data in wire_fuzz.mutants(seeds, 4000, seed=4861):
        wire_fuzz.run_parser(_parse_all, data)
        result = wire_fuzz.run_parser(lambda b: icmpv6.parse_neighbor(icmpv6.parse(b)), data)
        neighbors += result is not None
    assert neighbors > 500
