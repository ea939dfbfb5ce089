"""RFC 6298 §5.7: a handshake that gave no round-trip sample (its SYN or SYN-ACK timed out
and was repeated, so Karn forbids timing it) leaves the retransmission timeout at 3 s until
the first sample, not at the 1 s initial value. Linux's condition is the same one (no srtt
when the connection is established: ``tcp_init_metrics`` sets TCP_TIMEOUT_FALLBACK);
before, the first data segment was resent after 1 s. Scripted segments, fake clock."""

from __future__ import annotations

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpConfig


def _no_ts() -> Script:
    return Script(TcpConfig(quickack_segments=0, timestamps=False))


def test_active_open_after_a_repeated_syn_times_data_out_after_3_s() -> None:
    s = _no_ts()
    sock = s.connect()
    s.expect("S 0:0(0)")
    s.advance(1.0)  # the SYN was lost: its timer fires
    s.expect("S 0:0(0)")
    s.advance(0.01)
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s.expect(". 1:1(0) ack 1")
    assert sock.state.name == "ESTABLISHED"
    assert sock.rtt.srtt is None  # Karn: the repeated SYN is not timed
    assert sock.info()["rto"] == pytest.approx(3.0)
    sock.send(b"x" * 100, s.now)
    s.expect("P. 1:101(100) ack 1")
    s.advance(2.99)
    s.expect_none()  # (before: the copy went at 1 s)
    s.advance(0.02)
    s.expect("P. 1:101(100) ack 1")


def test_passive_open_after_a_repeated_synack_times_data_out_after_3_s() -> None:
    s = _no_ts()
    s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.expect("S. 0:0(0) ack 1")
    s.advance(1.0)
    s.expect("S. 0:0(0) ack 1")
    s.advance(0.01)
    s.inject(". 1:1(0) ack 1 win 65535")
    sock = s.accept()
    assert sock.info()["rto"] == pytest.approx(3.0)
    sock.send(b"y" * 10, s.now)
    s.expect("P. 1:11(10) ack 1")
    s.advance(2.99)
    s.expect_none()
    s.advance(0.02)
    s.expect("P. 1:11(10) ack 1")


def test_the_first_sample_ends_the_fallback() -> None:
    s = _no_ts()
    sock = s.connect()
    s.pop()
    s.advance(1.0)
    s.pop()
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s.pop()
    sock.send(b"x" * 100, s.now)
    s.expect("P. 1:101(100) ack 1")
    s.advance(0.005)
    s.inject(". 1:1(0) ack 101 win 65535")
    assert sock.rtt.srtt == pytest.approx(0.005)
    assert sock.info()["rto"] == pytest.approx(0.2)  # rto_min: the sample rules again


def test_a_handshake_with_a_sample_keeps_its_own_rto() -> None:
    s = _no_ts()
    sock = s.connect()
    s.pop()
    s.advance(0.004)
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    assert sock.rtt.srtt == pytest.approx(0.004)
    assert sock.info()["rto"] == pytest.approx(0.2)


def test_a_repeated_syn_timed_by_its_own_timestamp_echo_is_a_sample() -> None:
    """As Linux (tcp_ack_update_rtt takes the echo when Karn forbids the sequence
    sample): the SYN-ACK echoing the second SYN's TSval times that SYN, so no fallback."""
    s = Script()
    sock = s.connect()
    s.pop()
    s.advance(1.0)
    again, _ = s.expect("S 0:0(0)")
    s.advance(0.004)
    s.inject(f"S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 500 ecr {again.ts_val}>")
    assert sock.rtt.srtt is not None
    assert sock.info()["rto"] == pytest.approx(0.2)
