"""IPv4 header codec: kernel packets field by field, exact rebuilds, refusals, properties, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import ipv4
from multisock.wire.checksum import internet_checksum
from multisock.wire.errors import MalformedPacket

ETH = cap.ETH
LO = cap.LOOPBACK4


def _ip(frame: bytes) -> bytes:
    return frame[ETH:]


def test_parse_kernel_udp_datagram() -> None:
    header, payload = ipv4.parse(_ip(cap.UDP4))
    assert header.tos == 0
    assert header.total_length == 44
    assert header.ident == 0x1764
    assert header.df is True
    assert header.mf is False
    assert header.frag_offset == 0
    assert header.ttl == 64
    assert header.proto == ipv4.PROTO_UDP
    assert header.checksum == 0x255B
    assert header.src == LO
    assert header.dst == LO
    assert header.header_length == 20
    assert header.options == b""
    assert not header.is_fragment
    assert isinstance(payload, memoryview)
    assert bytes(payload) == _ip(cap.UDP4)[20:]


def test_build_reproduces_kernel_headers() -> None:
    cases: list[tuple[bytes, dict[str, int], int]] = [
        (cap.UDP4, {"ident": 0x1764, "df": True}, ipv4.PROTO_UDP),
        (cap.ICMP4_ECHO_REPLY, {"ident": 0x19F8}, ipv4.PROTO_ICMP),
        (cap.UNREACH4, {"ident": 0x1A35, "tos": 0xC0}, ipv4.PROTO_ICMP),
    ]
    for frame, fields, proto in cases:
        ip = _ip(frame)
        built = ipv4.build(LO, LO, proto, len(ip) - 20, **fields)
        assert built == ip[:20]


def test_veth_header_with_link_local_addresses() -> None:
    ip = _ip(cap.VETH_UDP4)
    header, payload = ipv4.parse(ip)
    assert (header.src, header.dst, header.ident, header.df) == (
        cap.LINK4_A,
        cap.LINK4_B,
        0x573A,
        True,
    )
    built = ipv4.build(cap.LINK4_A, cap.LINK4_B, 17, len(payload), ident=0x573A, df=True)
    assert built == ip[:20]


def test_kernel_options_are_kept_raw_and_rebuilt() -> None:
    ip = _ip(cap.OPTS4)
    header, payload = ipv4.parse(ip)
    assert header.header_length == 32
    assert header.options == bytes.fromhex("01070b087f00000100000000")
    assert bytes(payload) == ip[32:]
    built = ipv4.build(LO, LO, 17, len(payload), ident=0x17E1, df=True, options=header.options)
    assert built == ip[:32]


def test_kernel_fragments() -> None:
    first, data1 = ipv4.parse(_ip(cap.FRAG4_FIRST))
    last, data2 = ipv4.parse(_ip(cap.FRAG4_LAST))
    assert (first.mf, first.frag_offset, first.ident) == (True, 0, 0x1926)
    assert (last.mf, last.frag_offset, last.ident) == (False, 1256, 0x1926)
    assert first.is_fragment and last.is_fragment
    assert len(data1) == 1256 and len(data2) == 288
    assert first.frag_offset + len(data1) == last.frag_offset
    built = ipv4.build(LO, LO, 17, 288, ident=0x1926, frag_offset=1256)
    assert built == _ip(cap.FRAG4_LAST)[:20]
    built = ipv4.build(LO, LO, 17, 1256, ident=0x1926, mf=True)
    assert built == _ip(cap.FRAG4_FIRST)[:20]


def test_accepts_bytearray_and_memoryview_and_trims_link_padding() -> None:
    ip = _ip(cap.ICMP4_ECHO_REPLY) + bytes(10)  # Ethernet minimum-frame padding
    for buf in (ip, bytearray(ip), memoryview(ip)):
        header, payload = ipv4.parse(buf)
        assert header.total_length == 36
        assert len(payload) == 16


def test_checksum_false_leaves_zero_and_verification_can_be_skipped() -> None:
    built = ipv4.build(LO, LO, 17, 0, checksum=False)
    assert built[10:12] == b"\0\0"
    with pytest.raises(MalformedPacket, match="checksum"):
        ipv4.parse(built)
    header, _ = ipv4.parse(built, verify_checksum=False)
    assert header.checksum == 0


def _with_checksum(packet: bytes) -> bytes:
    """``packet`` with a correct header checksum over the length its IHL claims."""
    hlen = max(20, min((packet[0] & 0x0F) * 4, len(packet)))
    header = packet[:10] + b"\0\0" + packet[12:hlen]
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + packet[12:]


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"\x45" + bytes(18), "shorter"),
        (_with_checksum(b"\x65" + _ip(cap.UDP4)[1:20]) + _ip(cap.UDP4)[20:], "version"),
        (_with_checksum(b"\x44" + _ip(cap.UDP4)[1:20]) + _ip(cap.UDP4)[20:], "header length"),
        (_with_checksum(_ip(cap.UDP4)[:2] + b"\x00\x13" + _ip(cap.UDP4)[4:20]), "total length"),
        (_ip(cap.UDP4)[:43], "beyond"),
        (_ip(cap.UDP4)[:11] + b"\x00" + _ip(cap.UDP4)[12:], "checksum"),
        # IHL 6 but only 20 bytes: total_length check catches it before the options
        (_with_checksum(b"\x46" + _ip(cap.UDP4)[1:20]), "total length"),
    ],
)
def test_refusals(packet: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as info:
        ipv4.parse(packet)
    assert info.value.layer == "ipv4"


def _packet_with_options(options: bytes) -> bytes:
    header = ipv4.build(LO, LO, 17, 0, options=options)
    return header


@pytest.mark.parametrize(
    "options",
    [
        bytes((7, 1, 0, 0)),  # length below 2
        bytes((7, 9, 4, 0, 0, 0, 0, 0)),  # runs past the options area
        bytes((1, 1, 1, 0x44)),  # timestamp option type with no length byte
        bytes((1, 0x83, 0, 4)),  # length 0
    ],
)
def test_bad_option_lengths_are_refused(options: bytes) -> None:
    with pytest.raises(MalformedPacket, match="option"):
        ipv4.parse(_packet_with_options(options))


def test_everything_after_end_of_options_is_padding() -> None:
    options = bytes((1, 0, 0xFF, 0xFF))  # NOP, EOL, then junk that must be ignored
    header, _ = ipv4.parse(_packet_with_options(options))
    assert header.options == options


def test_reserved_flag_is_ignored_like_linux() -> None:
    ip = bytearray(_ip(cap.UDP4))
    ip[6] |= 0x80
    header, _ = ipv4.parse(_with_checksum(bytes(ip[:20])) + bytes(ip[20:]))
    assert header.df and not header.mf and header.frag_offset == 0


def test_build_refuses_impossible_headers() -> None:
    with pytest.raises(ValueError):
        ipv4.build(LO, LO, 17, 0, options=bytes(41))
    with pytest.raises(ValueError):
        ipv4.build(LO, LO, 17, 65516)
    with pytest.raises(ValueError):
        ipv4.build(LO, LO, 17, 0, frag_offset=12)
    with pytest.raises(ValueError):
        ipv4.build(LO, LO, 17, 0, frag_offset=65536)
    with pytest.raises(ValueError):
        ipv4.build(LO + b"\0", LO, 17, 0)
    assert len(ipv4.build(LO, LO, 17, 65515)) == 20


def test_options_are_padded_to_four_bytes() -> None:
    header = ipv4.build(LO, LO, 17, 0, options=b"\x01\x01\x01\x01\x01")
    assert len(header) == 28
    assert header[0] == 0x47
    assert header[20:] == b"\x01" * 5 + b"\0\0\0"


addresses = st.binary(min_size=4, max_size=4)
option_lists = (
    st.lists(
        st.one_of(
            st.just(b"\x01"),
            st.binary(max_size=6).map(lambda body: bytes((0x88, 2 + len(body))) + body),
        ),
        max_size=6,
    )
    .map(b"".join)
    .filter(lambda o: len(o) <= 40)
)


@settings(max_examples=300)
@given(
    src=addresses,
    dst=addresses,
    proto=st.integers(0, 255),
    payload=st.binary(max_size=64),
    ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    df=st.booleans(),
    mf=st.booleans(),
    units=st.integers(0, 0x1FFF),
    options=option_lists,
)
def test_round_trip(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    ttl: int,
    tos: int,
    ident: int,
    df: bool,
    mf: bool,
    units: int,
    options: bytes,
) -> None:
    header_bytes = ipv4.build(
        src,
        dst,
        proto,
        len(payload),
        ttl=ttl,
        tos=tos,
        ident=ident,
        df=df,
        mf=mf,
        frag_offset=units * 8,
        options=options,
    )
    header, parsed_payload = ipv4.parse(header_bytes + payload + b"pad")
    padded = options + b"\0" * (-len(options) % 4)
    assert (header.src, header.dst, header.proto, header.ttl, header.tos) == (
        src,
        dst,
        proto,
        ttl,
        tos,
    )
    assert (header.ident, header.df, header.mf, header.frag_offset) == (ident, df, mf, units * 8)
    assert header.options == padded
    assert header.header_length == 20 + len(padded)
    assert header.total_length == header.header_length + len(payload)
    assert bytes(parsed_payload) == payload
    assert internet_checksum(header_bytes) == 0


def _check(result: object, data: bytes) -> None:
    if result is None:
        return
    assert isinstance(result, tuple)
    header, payload = result
    assert 20 <= header.header_length <= 60
    assert header.header_length <= header.total_length <= len(data)
    assert len(payload) == header.total_length - header.header_length


@settings(max_examples=1000)
@given(st.binary(max_size=80))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(wire_fuzz.run_parser(ipv4.parse, data), data)
    # with a valid version nibble and checksum the parser goes deeper
    if len(data) >= 20:
        forged = _with_checksum(bytes((0x40 | data[0] & 0x0F,)) + data[1:])
        _check(wire_fuzz.run_parser(ipv4.parse, forged), forged)


def test_fuzz_mutated_kernel_packets() -> None:
    seeds = [_ip(f) for f in (cap.UDP4, cap.OPTS4, cap.UNREACH4, cap.FRAG4_LAST, cap.VETH_UDP4)]
    parsed = 0
    for data in wire_fuzz.mutants(seeds, 4000, seed=791):
        _check(wire_fuzz.run_parser(ipv4.parse, data), data)
        # the same mutant with its checksum repaired exercises the later checks
        if len(data) >= 20:
            fixed = _with_checksum(data)
            result = wire_fuzz.run_parser(ipv4.parse, fixed)
            _check(result, fixed)
            parsed += result is not None
    assert parsed > 400  # the mutants are not all trivially refused
