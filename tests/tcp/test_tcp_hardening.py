"""Hostile input: random and malformed segments never raise out of the stack, are
counted, and leave an established connection working; ICMP errors are checked
against what is in flight (RFC 5927) before they act."""

from __future__ import annotations

import errno

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcpnet import A, B
from tcpscript import Script

from multisock.stack.tcp import TcpState
from multisock.wire import tcp as wire


def test_malformed_segments_are_counted_and_dropped() -> None:
    s = Script()
    sock = s.passive_open()
    bad = bytearray(s.build(". 1:1(0) ack 1 win 100"))
    bad[12] = 0x40  # data offset 16 bytes
    s.stack.input(B, A, memoryview(bytes(bad)), s.now)
    s.stack.input(B, A, memoryview(b"\x00" * 7), s.now)
    assert s.stack.counters["bad_segments"] == 2
    s.expect_none()
    assert sock.state is TcpState.ESTABLISHED


def test_syn_fin_and_port_zero_are_refused() -> None:
    s = Script()
    s.listen()
    s.inject("SF 0:0(0) win 100")
    s.inject("S 0:0(0) win 100", sport=0)
    s.expect_none()
    assert s.stack.counters["bad_segments"] == 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 65535),
    st.binary(max_size=40),
    st.binary(max_size=64),
)
def test_random_segments_never_raise(
    flags: int, seq: int, ack: int, win: int, options: bytes, payload: bytes
) -> None:
    s = Script()
    sock = s.passive_open(syn_opts="<mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>")
    options += b"\x00" * (-len(options) % 4)
    off = (20 + len(options)) // 4
    import struct

    raw = struct.pack("!HHIIBBHHH", s.peer_port, 8080, seq, ack, off << 4, flags, win, 0, 0)
    s.stack.input(B, A, memoryview(raw + options + payload), s.now)
    s.advance(5.0)
    assert s.stack.counters["internal_errors"] == 0
    if sock.state is TcpState.ESTABLISHED:
        # still usable: data both ways
        assert sock.send(b"ok", s.now) in (0, 2)


def test_icmp_port_unreachable_during_syn_sent_refuses() -> None:
    s = Script()
    sock = s.connect()
    hdr, _ = s.pop()
    quoted = wire.build(s.local_port, 8080, hdr.seq, 0, wire.SYN, 0)
    s.stack.icmp_unreachable(A, B, memoryview(quoted), errno.ECONNREFUSED, s.now)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ECONNREFUSED


def test_icmp_with_a_sequence_not_in_flight_is_ignored() -> None:
    s = Script()
    sock = s.connect()
    hdr, _ = s.pop()
    quoted = wire.build(s.local_port, 8080, hdr.seq + 5000, 0, wire.SYN, 0)
    s.stack.icmp_unreachable(A, B, memoryview(quoted), errno.EHOSTUNREACH, s.now)
    assert sock.state is TcpState.SYN_SENT
    assert s.stack.counters["icmp_out_of_window"] == 1


def test_icmp_soft_error_in_established_reported_on_timeout() -> None:
    s = Script()
    sock = s.active_open(user_timeout=500)
    sock.send(b"x" * 10, s.now)
    hdr, _ = s.pop()
    quoted = wire.build(s.local_port, 8080, hdr.seq, 0, wire.ACK, 0)
    s.stack.icmp_unreachable(A, B, memoryview(quoted), errno.EHOSTUNREACH, s.now)
    assert sock.state is TcpState.ESTABLISHED  # soft (RFC 5461)
    s.advance(2.0)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.EHOSTUNREACH


def test_icmp_fragmentation_needed_shrinks_the_mss() -> None:
    s = Script()
    sock = s.active_open()
    sock.send(b"x" * 3000, s.now)
    hdr, _ = s.pop()
    s.host.sent.clear()
    quoted = wire.build(s.local_port, 8080, hdr.seq, 0, wire.ACK, 0)
    s.stack.icmp_unreachable(A, B, memoryview(quoted), errno.EMSGSIZE, s.now, mtu=1000)
    assert sock.info()["snd_mss"] == 960
    s.expect(". 1:961(960) ack 1")
