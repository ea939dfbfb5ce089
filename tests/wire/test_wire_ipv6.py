"""IPv6 header and extension chain: kernel packets, exact rebuilds, refusals, properties, fuzz."""

from __future__ import annotations

import pytest
import wire_captures as cap
import wire_fuzz
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import ipv6
from multisock.wire.errors import MalformedPacket

ETH = cap.ETH
LO = cap.LOOPBACK6


def _ip(frame: bytes) -> bytes:
    return frame[ETH:]


def _ext(kind_next: int, body: bytes = b"") -> bytes:
    """An options-style extension header (next header byte, length in 8-byte units - 1)."""
    raw = bytes((kind_next, 0)) + body
    raw += b"\x00" * (-len(raw) % 8)
    return bytes((kind_next, len(raw) // 8 - 1)) + raw[2:]


def test_parse_kernel_udp_datagram() -> None:
    header, payload = ipv6.parse(_ip(cap.UDP6))
    assert header.traffic_class == 0
    assert header.flow_label == 0x8621E
    assert header.payload_length == 17
    assert header.hop_limit == 64
    assert header.src == LO and header.dst == LO
    assert header.next_header == ipv6.UDP
    assert header.fragment is None
    assert header.ext_headers == []
    assert isinstance(payload, memoryview)
    assert bytes(payload) == _ip(cap.UDP6)[40:]


def test_build_reproduces_kernel_headers() -> None:
    for frame, flow, nh in [
        (cap.UDP6, 0x8621E, 17),
        (cap.ICMP6_ECHO_REPLY, 0x7155B, 58),
        (cap.UNREACH6, 0x8E275, 58),
        (cap.EXT6, 0xB3782, 0),
    ]:
        ip = _ip(frame)
        assert ipv6.build(LO, LO, nh, len(ip) - 40, flow_label=flow) == ip[:40]


def test_neighbor_solicit_header_to_solicited_node_group() -> None:
    ip = _ip(cap.NEIGHBOR_SOLICIT)
    header, payload = ipv6.parse(ip)
    group = bytes.fromhex("ff0200000000000000000001ff000002")
    assert (header.src, header.dst, header.hop_limit, header.next_header) == (
        cap.LINK6_A,
        group,
        255,
        ipv6.ICMPV6,
    )
    assert len(payload) == 32
    assert ipv6.build(cap.LINK6_A, group, 58, 32, hop_limit=255) == ip[:40]


def test_kernel_hop_by_hop_and_destination_options_are_walked() -> None:
    header, payload = ipv6.parse(_ip(cap.EXT6))
    assert header.next_header == ipv6.UDP
    assert header.ext_headers == [
        (ipv6.HOP_BY_HOP, bytes.fromhex("3c00050200000100")),
        (ipv6.DEST_OPTS, bytes.fromhex("1100010400000000")),
    ]
    assert header.payload_length == 27
    assert bytes(payload) == bytes.fromhex("9c429c41000bedd9657874")


def test_kernel_fragments_stop_the_walk() -> None:
    first, data1 = ipv6.parse(_ip(cap.FRAG6_FIRST))
    last, data2 = ipv6.parse(_ip(cap.FRAG6_LAST))
    assert first.fragment is not None and last.fragment is not None
    assert first.next_header == ipv6.UDP == first.fragment.next_header
    assert (first.fragment.offset, first.fragment.more, first.fragment.ident) == (
        0,
        True,
        0xEF1D67CB,
    )
    assert (last.fragment.offset, last.fragment.more, last.fragment.ident) == (
        1232,
        False,
        0xEF1D67CB,
    )
    assert len(data1) == 1232 and len(data2) == 312
    assert bytes(data1)[8:] == cap.FRAG_DATA[:1224]
    assert bytes(data2) == cap.FRAG_DATA[1224:]
    # rebuild both fragments' headers exactly
    assert (
        ipv6.build(LO, LO, ipv6.FRAGMENT, 1240, flow_label=0x8621E)
        + ipv6.build_fragment_header(17, 0, True, 0xEF1D67CB)
        == _ip(cap.FRAG6_FIRST_HEADERS)[:48]
    )
    assert ipv6.build(LO, LO, ipv6.FRAGMENT, 320, flow_label=0x8621E) + ipv6.build_fragment_header(
        17, 1232, False, 0xEF1D67CB
    ) == _ip(cap.FRAG6_LAST_HEADERS)
    # after reassembly the chain continues from the fragment's next header
    whole = bytes(data1) + bytes(data2)
    proto, upper = ipv6.walk_extensions(first.next_header, whole)
    assert proto == ipv6.UDP and bytes(upper) == whole


def test_fragment_after_other_extension_headers() -> None:
    frag = ipv6.build_fragment_header(ipv6.DEST_OPTS, 8, True, 7)
    body = _ext(ipv6.FRAGMENT, b"\x01\x04\0\0\0\0") + frag + b"fragment data..."
    packet = ipv6.build(LO, LO, ipv6.HOP_BY_HOP, len(body)) + body
    header, payload = ipv6.parse(packet)
    assert header.fragment is not None
    assert header.next_header == ipv6.DEST_OPTS == header.fragment.next_header
    assert header.fragment.offset == 8
    assert [kind for kind, _ in header.ext_headers] == [ipv6.HOP_BY_HOP]
    assert bytes(payload) == b"fragment data..."


def test_walk_extensions_skips_headers_in_a_reassembled_payload() -> None:
    data = _ext(ipv6.ROUTING, b"\0" * 6) + _ext(ipv6.TCP, b"\x01\x02") + b"segment"
    proto, payload = ipv6.walk_extensions(ipv6.DEST_OPTS, memoryview(data))
    assert proto == ipv6.TCP
    assert bytes(payload) == b"segment"
    proto, payload = ipv6.walk_extensions(ipv6.NO_NEXT, b"ignored")
    assert proto == ipv6.NO_NEXT and len(payload) == 0
    with pytest.raises(MalformedPacket, match="hop-by-hop"):
        ipv6.walk_extensions(ipv6.HOP_BY_HOP, _ext(17))
    with pytest.raises(MalformedPacket, match="fragment"):
        ipv6.walk_extensions(ipv6.FRAGMENT, ipv6.build_fragment_header(17, 0, False, 1))


def test_no_next_header_gives_an_empty_payload() -> None:
    body = _ext(ipv6.NO_NEXT) + b"trailing bytes are ignored"
    packet = ipv6.build(LO, LO, ipv6.DEST_OPTS, len(body)) + body
    header, payload = ipv6.parse(packet)
    assert header.next_header == ipv6.NO_NEXT
    assert len(payload) == 0


def test_link_padding_is_trimmed_and_buffers_of_any_kind_work() -> None:
    ip = _ip(cap.ICMP6_ECHO_REPLY) + bytes(12)
    for buf in (ip, bytearray(ip), memoryview(ip)):
        header, payload = ipv6.parse(buf)
        assert header.payload_length == len(payload) == 13


def test_eight_extension_headers_pass_and_nine_do_not() -> None:
    def chain(count: int) -> bytes:
        body = b"".join(_ext(ipv6.DEST_OPTS if i < count - 1 else ipv6.UDP) for i in range(count))
        return ipv6.build(LO, LO, ipv6.DEST_OPTS, len(body) + 8) + body + bytes(8)

    header, payload = ipv6.parse(chain(ipv6.MAX_EXTENSIONS))
    assert len(header.ext_headers) == ipv6.MAX_EXTENSIONS
    assert header.next_header == ipv6.UDP and len(payload) == 8
    with pytest.raises(MalformedPacket, match="too many"):
        ipv6.parse(chain(ipv6.MAX_EXTENSIONS + 1))


def _packet(next_header: int, body: bytes, plen: int | None = None) -> bytes:
    header = ipv6.build(LO, LO, next_header, len(body) if plen is None else plen)
    return header + body


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (_ip(cap.UDP6)[:39], "shorter"),
        (b"\x40" + _ip(cap.UDP6)[1:], "version"),
        (_packet(17, b"12345678", plen=9), "beyond"),
        (_packet(ipv6.DEST_OPTS, _ext(ipv6.HOP_BY_HOP) + _ext(17)), "hop-by-hop"),
        (_packet(ipv6.DEST_OPTS, b"\x11"), "truncated extension"),
        (_packet(ipv6.DEST_OPTS, b"\x11\x01" + bytes(10)), "beyond"),
        (_packet(ipv6.FRAGMENT, bytes(7)), "truncated fragment"),
        (_packet(ipv6.FRAGMENT, ipv6.build_fragment_header(44, 0, True, 1)), "nested"),
        (_packet(ipv6.HOP_BY_HOP, b"", plen=0), "jumbogram"),
    ],
)
def test_refusals(packet: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as info:
        ipv6.parse(packet)
    assert info.value.layer == "ipv6"


def test_build_refuses_impossible_headers() -> None:
    with pytest.raises(ValueError):
        ipv6.build(LO, LO, 17, 65536)
    with pytest.raises(ValueError):
        ipv6.build(LO, LO, 17, 0, flow_label=1 << 20)
    with pytest.raises(ValueError):
        ipv6.build(LO, LO, 17, 0, traffic_class=256)
    with pytest.raises(ValueError):
        ipv6.build(LO[:4], LO, 17, 0)
    with pytest.raises(ValueError):
        ipv6.build_fragment_header(17, 4, False, 0)
    with pytest.raises(ValueError):
        ipv6.build_fragment_header(17, 65536, False, 0)


extension = st.tuples(
    st.sampled_from([ipv6.ROUTING, ipv6.DEST_OPTS]),
    st.binary(max_size=30),
)


@settings(max_examples=300)
@given(
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
    tclass=st.integers(0, 255),
    flow=st.integers(0, 0xFFFFF),
    hlim=st.integers(0, 255),
    hop_by_hop=st.booleans(),
    chain=st.lists(extension, max_size=6),
    fragment=st.one_of(
        st.none(), st.tuples(st.integers(0, 0x1FFF), st.booleans(), st.integers(0, 0xFFFFFFFF))
    ),
    upper=st.sampled_from([ipv6.TCP, ipv6.UDP, ipv6.ICMPV6, 253]),
    payload=st.binary(max_size=40),
)
def test_round_trip(
    src: bytes,
    dst: bytes,
    tclass: int,
    flow: int,
    hlim: int,
    hop_by_hop: bool,
    chain: list[tuple[int, bytes]],
    fragment: tuple[int, bool, int] | None,
    upper: int,
    payload: bytes,
) -> None:
    kinds = ([ipv6.HOP_BY_HOP] if hop_by_hop else []) + [kind for kind, _ in chain]
    bodies = ([b""] if hop_by_hop else []) + [body for _, body in chain]
    following = (kinds + [ipv6.FRAGMENT if fragment else upper])[1:]
    raw_ext = [_ext(nxt, body) for nxt, body in zip(following, bodies, strict=True)]
    tail = b""
    if fragment is not None:
        units, more, ident = fragment
        tail = ipv6.build_fragment_header(upper, units * 8, more, ident)
    body = b"".join(raw_ext) + tail + payload
    first = kinds[0] if kinds else (ipv6.FRAGMENT if fragment else upper)
    packet = ipv6.build(
        src, dst, first, len(body), hop_limit=hlim, traffic_class=tclass, flow_label=flow
    )
    header, parsed = ipv6.parse(packet + body + b"link padding")
    assert (header.src, header.dst, header.hop_limit) == (src, dst, hlim)
    assert (header.traffic_class, header.flow_label) == (tclass, flow)
    assert header.payload_length == len(body)
    assert header.next_header == upper
    assert header.ext_headers == list(zip(kinds, raw_ext, strict=True))
    assert bytes(parsed) == payload
    if fragment is None:
        assert header.fragment is None
    else:
        assert header.fragment is not None
        assert (header.fragment.offset, header.fragment.more, header.fragment.ident) == (
            fragment[0] * 8,
            fragment[1],
            fragment[2],
        )


def _check(result: object, data: bytes) -> None:
    if result is None:
        return
    assert isinstance(result, tuple)
    header, payload = result
    assert 40 + header.payload_length <= len(data)
    assert len(payload) <= header.payload_length
    assert len(header.ext_headers) <= ipv6.MAX_EXTENSIONS
    if header.fragment is not None:
        assert header.fragment.offset % 8 == 0
        assert header.next_header == header.fragment.next_header


@settings(max_examples=1000)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(wire_fuzz.run_parser(ipv6.parse, data), data)
    if len(data) >= 40:
        forged = bytes((0x60 | data[0] & 0x0F,)) + data[1:]
        _check(wire_fuzz.run_parser(ipv6.parse, forged), forged)


def test_fuzz_mutated_kernel_packets() -> None:
    seeds = [
        _ip(f) for f in (cap.UDP6, cap.EXT6, cap.FRAG6_LAST, cap.NEIGHBOR_ADVERT, cap.VETH_UNREACH6)
    ]
    parsed = 0
    for data in wire_fuzz.mutants(seeds, 4000, seed=8200):
        result = wire_fuzz.run_parser(ipv6.parse, data)
        _check(result, data)
        parsed += result is not None
        if result is not None:
            header, payload = result
            try:
                ipv6.walk_extensions(header.next_header, payload)
            except MalformedPacket:
                pass
    assert parsed > 400
