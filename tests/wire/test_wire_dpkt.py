"""Differential tests against dpkt, an independent codec: each side reads what the other wrote."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, udp

dpkt = pytest.importorskip("dpkt", reason="dpkt is a test-only dependency (extra 'test')")

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
macs = st.binary(min_size=6, max_size=6)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=64)


@settings(max_examples=150)
@given(
    addr4, addr4, u8, u8, u8, u16, st.booleans(), st.booleans(), st.integers(0, 0x1FFF), payloads
)
def test_ipv4_ours_read_by_dpkt(
    src: bytes,
    dst: bytes,
    proto: int,
    ttl: int,
    tos: int,
    ident: int,
    df: bool,
    mf: bool,
    units: int,
    payload: bytes,
) -> None:
    header = ipv4.build(
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
    )
    theirs = dpkt.ip.IP(header + payload)
    assert (theirs.v, theirs.hl, theirs.len) == (4, 5, 20 + len(payload))
    assert (theirs.src, theirs.dst, theirs.p, theirs.ttl, theirs.tos, theirs.id) == (
        src,
        dst,
        proto,
        ttl,
        tos,
        ident,
    )
    assert (bool(theirs.df), bool(theirs.mf), theirs.offset) == (df, mf, units)
    # dpkt's own checksum routine accepts our header checksum
    assert dpkt.in_cksum(header) == 0


@settings(max_examples=150)
@given(addr4, addr4, u8, u8, u16, st.booleans(), st.integers(0, 0x1FFF), payloads)
def test_ipv4_dpkt_read_by_ours(
    src: bytes, dst: bytes, proto: int, ttl: int, ident: int, df: bool, units: int, payload: bytes
) -> None:
    theirs = dpkt.ip.IP(
        src=src, dst=dst, p=proto, ttl=ttl, id=ident, df=int(df), offset=units, data=payload
    )
    header, parsed = ipv4.parse(bytes(theirs))
    assert (header.src, header.dst, header.proto, header.ttl, header.ident) == (
        src,
        dst,
        proto,
        ttl,
        ident,
    )
    assert (header.df, header.frag_offset, bytes(parsed)) == (df, units * 8, payload)


@settings(max_examples=150)
@given(addr6, addr6, u8, u8, st.integers(0, 0xFFFFF), u8, payloads)
def test_ipv6_both_ways(
    src: bytes, dst: bytes, tclass: int, hlim: int, flow: int, nxt: int, payload: bytes
) -> None:
    nxt = nxt if nxt not in (0, 43, 44, 50, 51, 59, 60, 135, 139, 140) else 17
    ours = (
        ipv6.build(
            src, dst, nxt, len(payload), hop_limit=hlim, traffic_class=tclass, flow_label=flow
        )
        + payload
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = dpkt.ip6.IP6(ours)
    assert (theirs.src, theirs.dst, theirs.nxt, theirs.hlim) == (src, dst, nxt, hlim)
    assert (theirs.fc, theirs.flow, theirs.plen) == (tclass, flow, len(payload))
    built = dpkt.ip6.IP6(
        src=src, dst=dst, nxt=nxt, hlim=hlim, fc=tclass, flow=flow, plen=len(payload), data=payload
    )
    assert bytes(built) == ours
    header, parsed = ipv6.parse(bytes(built))
    assert (header.next_header, bytes(parsed)) == (nxt, payload)


@settings(max_examples=150)
@given(u16, u16, payloads, addr4, addr4)
def test_udp_checksum_agrees_with_dpkt(
    sport: int, dport: int, payload: bytes, src: bytes, dst: bytes
) -> None:
    datagram = udp.build(sport, dport, len(payload)) + payload
    value = udp.checksum(src, dst, datagram)
    packet = dpkt.ip.IP(
        src=src,
        dst=dst,
        p=17,
        data=dpkt.udp.UDP(sport=sport, dport=dport, ulen=len(datagram), data=payload),
    )
    theirs = dpkt.ip.IP(bytes(packet)).data
    assert (theirs.sport, theirs.dport, theirs.ulen) == (sport, dport, len(datagram))
    assert theirs.sum == value
    header, parsed = udp.parse(bytes(theirs))
    assert (header.src_port, header.dst_port, bytes(parsed)) == (sport, dport, payload)


@settings(max_examples=150)
@given(st.sampled_from([0, 8]), u16, u16, payloads)
def test_icmpv4_echo_matches_dpkt(kind: int, ident: int, seq: int, data: bytes) -> None:
    theirs = dpkt.icmp.ICMP(
        type=kind, code=0, data=dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=data)
    )
    assert icmpv4.build_echo(kind, ident, seq, data) == bytes(theirs)


@settings(max_examples=150)
@given(st.sampled_from([128, 129]), u16, u16, payloads, addr6, addr6)
def test_icmpv6_echo_checksum_matches_dpkt(
    kind: int, ident: int, seq: int, data: bytes, src: bytes, dst: bytes
) -> None:
    ours = icmpv6.build_echo(kind, ident, seq, data, src, dst)
    message = dpkt.icmp6.ICMP6(
        type=kind, code=0, data=dpkt.icmp6.ICMP6.Echo(id=ident, seq=seq, data=data)
    )
    packet = dpkt.ip6.IP6(src=src, dst=dst, nxt=58, hlim=64, plen=len(ours), data=message)
    # dpkt fills the ICMPv6 checksum (with the pseudo header) when serialising the IPv6 packet
    assert bytes(packet)[40:] == ours


@settings(max_examples=150)
@given(st.sampled_from([1, 2]), macs, addr4, macs, addr4)
def test_arp_both_ways(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    theirs = dpkt.arp.ARP(op=op, sha=sha, spa=spa, tha=tha, tpa=tpa)
    assert arp.build(op, sha, spa, tha, tpa) == bytes(theirs)
    parsed = dpkt.arp.ARP(arp.build(op, sha, spa, tha, tpa))
    assert (parsed.op, parsed.sha, parsed.spa, parsed.tha, parsed.tpa) == (op, sha, spa, tha, tpa)


@settings(max_examples=150)
@given(macs, macs, st.sampled_from([0x0800, 0x0806, 0x86DD]), payloads)
def test_ethernet_matches_dpkt(dst: bytes, src: bytes, kind: int, payload: bytes) -> None:
    theirs = dpkt.ethernet.Ethernet(dst=dst, src=src, type=kind, data=payload)
    assert ethernet.build(dst, src, kind, payload) == bytes(theirs)
    frame = ethernet.parse(bytes(theirs))
    assert (frame.dst, frame.src, frame.ethertype, bytes(frame.payload)) == (
        dst,
        src,
        kind,
        payload,
    )
