"""Reset rules: RFC 9293 §3.10.7.1 replies, Linux's abortive closes, RFC 5961 hardening."""

from __future__ import annotations

import errno

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpState


def test_syn_to_closed_port_gets_rst_ack() -> None:
    s = Script()
    s.local_port = 9999
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.expect("R. 0:0(0) ack 1 win 0")  # seq 0 (no ISN of ours), ack = peer's SYN + 1
    assert s.stack.counters["rst_sent"] == 1


def test_ack_to_closed_port_gets_rst_with_its_ack_as_seq() -> None:
    s = Script()
    s.local_port = 9999
    s.inject(". 5:5(0) ack 777 win 100", absolute=True)
    hdr, _ = s.pop()
    assert hdr.flags == 0x04 and hdr.seq == 777


def test_rst_to_closed_port_is_not_answered() -> None:
    s = Script()
    s.local_port = 9999
    s.inject("R 0:0(0) win 0")
    s.expect_none()


def test_data_for_closed_port_counts_its_length() -> None:
    s = Script()
    s.local_port = 9999
    s.inject("FP 0:10(10) win 100", absolute=True)
    hdr, _ = s.pop()
    assert hdr.ack == 11  # data + FIN


def test_close_with_unread_data_rst_segment() -> None:
    s = Script()
    sock = s.passive_open()
    sock.quickack = True
    s.inject("P. 1:11(10) ack 1 win 65535")
    s.expect(". 1:1(0) ack 11")
    sock.close(s.now)
    s.expect("R. 1:1(0) ack 11")
    assert sock.state is TcpState.CLOSED and not s.stack.conns
    assert s.stack.counters["rst_on_close"] == 1


def test_linger_zero_close_sends_rst() -> None:
    s = Script()
    sock = s.passive_open(linger=0)
    assert sock.send(b"abc", s.now) == 3
    s.expect("P. 1:4(3) ack 1")
    sock.close(s.now)
    s.expect("R. 4:4(0) ack 1")
    assert sock.state is TcpState.CLOSED


def test_data_after_close_is_answered_with_rst() -> None:
    s = Script()
    sock = s.passive_open()
    sock.close(s.now)
    s.expect("F. 1:1(0) ack 1")
    s.inject(". 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.FIN_WAIT_2
    s.inject("P. 1:6(5) ack 2 win 65535")
    s.expect("R. 2:2(0) ack 1")
    assert sock.state is TcpState.CLOSED


def test_rst_in_syn_sent_needs_an_acceptable_ack() -> None:
    s = Script()
    sock = s.connect()
    s.pop()
    s.inject("R. 0:0(0) ack 5 win 0")  # ack does not cover our SYN: ignored
    assert sock.state is TcpState.SYN_SENT
    s.expect_none()
    s.inject("R 0:0(0) win 0")  # no ACK at all: ignored too
    assert sock.state is TcpState.SYN_SENT
    s.inject("R. 0:0(0) ack 1 win 0")
    assert sock.state is TcpState.CLOSED
    assert sock.writable and sock.readable
    with pytest.raises(ConnectionRefusedError):
        sock.recv_into(memoryview(bytearray(1)), s.now)


def test_synack_with_bad_ack_in_syn_sent_gets_rst() -> None:
    s = Script()
    sock = s.connect()
    s.pop()
    assert s.local_isn is not None
    s.inject("S. 0:0(0) ack 1000 win 65535")
    hdr, _ = s.pop()
    assert hdr.flags == 0x04 and hdr.seq == (s.local_isn + 1000) & 0xFFFFFFFF
    assert sock.state is TcpState.SYN_SENT


def test_exact_rst_resets_once_then_eof() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("R. 1:1(0) ack 1 win 0")
    assert sock.state is TcpState.CLOSED
    assert sock.pending_error == errno.ECONNRESET
    with pytest.raises(ConnectionResetError):
        sock.recv_into(memoryview(bytearray(4)), s.now)
    assert sock.recv_into(memoryview(bytearray(4)), s.now) == 0
    s.expect_none()


def test_queued_data_is_readable_before_the_reset_error() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("P. 1:4(3) ack 1 win 65535", b"xyz")
    s.inject("R. 4:4(0) ack 1 win 0")
    buf = bytearray(8)
    assert sock.recv_into(memoryview(buf), s.now) == 3
    with pytest.raises(ConnectionResetError):
        sock.recv_into(memoryview(buf), s.now)


def test_in_window_rst_gets_challenge_ack() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("R. 100:100(0) ack 1 win 0")
    assert sock.state is TcpState.ESTABLISHED
    s.expect(". 1:1(0) ack 1")
    assert s.stack.counters["challenge_acks"] == 1


def test_out_of_window_rst_is_ignored() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("R. 900000000:900000000(0) ack 1 win 0")
    assert sock.state is TcpState.ESTABLISHED
    s.expect_none()


def test_syn_in_established_gets_challenge_ack() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("S 500:500(0) win 65535 <mss 1460>")
    s.expect(". 1:1(0) ack 1")
    assert sock.state is TcpState.ESTABLISHED


def test_ack_for_unsent_data_is_answered_and_dropped() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("P. 1:5(4) ack 5000 win 65535")
    s.expect(". 1:1(0) ack 1")
    assert sock.readable_bytes == 0 and s.stack.counters["ack_too_new"] == 1


def test_too_old_ack_gets_challenge_ack() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("P. 1:5(4) ack 4000000000 win 65535")
    s.expect(". 1:1(0) ack 1")
    assert sock.readable_bytes == 0 and s.stack.counters["ack_too_old"] == 1


def test_challenge_acks_are_rate_limited_per_connection() -> None:
    """One challenge ACK per connection per tcp_invalid_ratelimit (0.5 s), as Linux."""
    s = Script()
    s.passive_open()
    for i in range(6):
        s.inject(f"R. {100 + i}:{100 + i}(0) ack 1 win 0")
    assert len(s.host.sent) == 1
    assert s.stack.counters["challenge_acks_skipped"] == 5
    s.now += 0.5
    s.inject("R. 200:200(0) ack 1 win 0")
    assert len(s.host.sent) == 2 and s.stack.counters["challenge_acks"] == 2


def test_listener_closed_resets_unaccepted_children() -> None:
    s = Script()
    lst = s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.pop()
    s.inject(". 1:1(0) ack 1 win 65535")
    lst.close(s.now)
    s.expect("R. 1:1(0) ack 1")
    assert not s.stack.conns and not s.stack.listeners


def test_abort_sends_rst_and_frees_everything() -> None:
    s = Script()
    sock = s.passive_open()
    sock.abort(s.now)
    s.expect("R. 1:1(0) ack 1")
    assert sock.state is TcpState.CLOSED and len(s.stack.conns) == 0
    assert s.listener is not None
    s.listener.abort(s.now)
    assert not s.stack.listeners and not s.stack.ports.by_port
