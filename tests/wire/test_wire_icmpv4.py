"""ICMPv4 codec: the kernel's echo replies and errors rebuilt byte for byte, properties, fuzz."""

from __future__ import annotations

from functools import partial

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import icmpv4, ipv4
from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

ICMP_AT = cap.ETH + 20


def test_parse_kernel_echo_request_and_reply() -> None:
    request = icmpv4.parse(cap.ICMP4_ECHO_REQUEST[ICMP_AT:])
    reply = icmpv4.parse(cap.ICMP4_ECHO_REPLY[ICMP_AT:])
    assert (request.type, request.code, request.checksum) == (icmpv4.ECHO_REQUEST, 0, 0x5435)
    assert (reply.type, reply.code, reply.checksum) == (icmpv4.ECHO_REPLY, 0, 0x5C35)
    for message in (request, reply):
        assert message.rest == 0x12340001
        assert (message.ident, message.seq) == (0x1234, 1)
        assert isinstance(message.body, memoryview)
        assert bytes(message.body) == b"abcdefgh"
        assert not message.is_error


def test_build_echo_reproduces_the_kernel() -> None:
    built = icmpv4.build_echo(icmpv4.ECHO_REPLY, 0x1234, 1, b"abcdefgh")
    assert built == cap.ICMP4_ECHO_REPLY[ICMP_AT:]
    built = icmpv4.build_echo(icmpv4.ECHO_REQUEST, 0x1234, 1, memoryview(b"abcdefgh"))
    assert built == cap.ICMP4_ECHO_REQUEST[ICMP_AT:]


def test_build_error_reproduces_the_kernels_port_unreachable() -> None:
    for original, error in [
        (cap.UNREACH4_ORIGINAL, cap.UNREACH4),
        (cap.VETH_UDP4, cap.VETH_UNREACH4),
    ]:
        quoted = original[cap.ETH :]
        built = icmpv4.build_error(icmpv4.DEST_UNREACH, icmpv4.PORT_UNREACH, quoted)
        assert built == error[ICMP_AT:]
        message = icmpv4.parse(built)
        assert message.is_error
        assert (message.type, message.code, message.rest) == (3, 3, 0)
        assert bytes(message.body) == quoted


def test_error_quote_is_bounded_by_576_bytes_and_drops_link_padding() -> None:
    big = ipv4.build(cap.LOOPBACK4, cap.LOOPBACK4, 17, 1400) + bytes(range(200)) * 7
    message = icmpv4.build_error(icmpv4.TIME_EXCEEDED, icmpv4.TTL_EXCEEDED, big)
    assert 20 + len(message) == 576
    assert message[8:] == big[: 576 - 28]
    padded = cap.ICMP4_ECHO_REQUEST[cap.ETH :] + bytes(10)
    message = icmpv4.build_error(icmpv4.DEST_UNREACH, icmpv4.HOST_UNREACH, padded)
    assert message[8:] == cap.ICMP4_ECHO_REQUEST[cap.ETH :]
    # a truncated original (its total length claims more) is quoted as it is
    short = cap.UDP4[cap.ETH : cap.ETH + 30]
    assert icmpv4.build_error(3, 1, short)[8:] == short


def test_type_specific_words() -> None:
    original = cap.UDP4[cap.ETH :]
    frag = icmpv4.parse(icmpv4.build_error(icmpv4.DEST_UNREACH, icmpv4.FRAG_NEEDED, original, 1400))
    assert frag.mtu == 1400 and frag.code == 4
    problem = icmpv4.parse(icmpv4.build_error(icmpv4.PARAM_PROBLEM, 0, original, 9 << 24))
    assert problem.pointer == 9 and problem.is_error


def test_checksum_is_verified_unless_told_not_to() -> None:
    data = bytearray(cap.ICMP4_ECHO_REPLY[ICMP_AT:])
    data[-1] ^= 0x40
    with pytest.raises(MalformedPacket, match="checksum") as info:
        icmpv4.parse(data)
    assert info.value.layer == "icmpv4"
    assert bytes(icmpv4.parse(data, verify_checksum=False).body)[-1] == ord("h") ^ 0x40


def test_short_messages_are_refused() -> None:
    with pytest.raises(MalformedPacket, match="shorter"):
        icmpv4.parse(b"\x08\x00\xf7\xff\x00\x00\x00")
    # exactly a header with no body is valid
    message = icmpv4.parse(icmpv4.build_echo(icmpv4.ECHO_REQUEST, 1, 2, b""))
    assert len(message.body) == 0


@settings(max_examples=300)
@given(
    st.sampled_from([icmpv4.ECHO_REQUEST, icmpv4.ECHO_REPLY]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=200),
)
def test_echo_round_trip(kind: int, ident: int, seq: int, data: bytes) -> None:
    built = icmpv4.build_echo(kind, ident, seq, data)
    assert internet_checksum(built) == 0
    message = icmpv4.parse(built)
    assert (message.type, message.code, message.ident, message.seq) == (kind, 0, ident, seq)
    assert bytes(message.body) == data


@settings(max_examples=200)
@given(
    st.sampled_from([icmpv4.DEST_UNREACH, icmpv4.TIME_EXCEEDED, icmpv4.PARAM_PROBLEM]),
    st.integers(0, 15),
    st.binary(max_size=700),
    st.integers(0, 0xFFFFFFFF),
)
def test_error_round_trip(kind: int, code: int, original: bytes, rest: int) -> None:
    message = icmpv4.parse(icmpv4.build_error(kind, code, original, rest))
    assert (message.type, message.code, message.rest) == (kind, code, rest)
    assert len(message.body) <= icmpv4.MAX_QUOTE
    assert original.startswith(bytes(message.body))


@settings(max_examples=1000)
@given(st.binary(max_size=60))
def test_fuzz_random_bytes(data: bytes) -> None:
    for verify in (True, False):
        result = wire_fuzz.run_parser(partial(icmpv4.parse, verify_checksum=verify), data)
        if result is not None:
            assert isinstance(result, icmpv4.ICMPv4Message)
            assert len(result.body) == len(data) - 8


def test_fuzz_mutated_kernel_messages() -> None:
    seeds = [cap.ICMP4_ECHO_REPLY[ICMP_AT:], cap.UNREACH4[ICMP_AT:], cap.VETH_UNREACH4[ICMP_AT:]]
    parsed = 0
    for data in wire_fuzz.mutants(seeds, 3000, seed=792):
        for verify in (True, False):
            result = wire_fuzz.run_parser(partial(icmpv4.parse, verify_checksum=verify), data)
            parsed += result is not None
    assert parsed > 1000
