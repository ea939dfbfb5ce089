"""Every RFC 9293 state transition, segment by segment, with a fake clock."""

from __future__ import annotations

import socket

import pytest
from tcpscript import Script, assert_time_wait_over

from multisock.stack.tcp import TcpConfig, TcpState


def test_passive_open_three_way_handshake() -> None:
    s = Script()
    lst = s.listen(backlog=4)
    assert lst.state is TcpState.LISTEN
    s.inject("S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 7>")
    s.expect("S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,wscale 7>")
    assert lst.accept() is None and not lst.readable
    s.inject(". 1:1(0) ack 1 win 512")
    assert lst.readable
    child = s.accept()
    assert child.state is TcpState.ESTABLISHED
    assert child.info()["snd_wnd"] == 512 << 7
    assert child.remote is not None and child.remote[1] == s.peer_port
    s.expect_none()


def test_active_open_and_established_data() -> None:
    s = Script()
    sock = s.connect()
    assert sock.state is TcpState.SYN_SENT and not sock.writable
    s.expect("S 0:0(0) win 65535 <mss 1460,sackOK,TS val * ecr 0,wscale 7>")
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1000>")
    s.expect(". 1:1(0) ack 1")
    assert sock.state is TcpState.ESTABLISHED and sock.writable
    assert sock.info()["snd_mss"] == 1000
    assert sock.send(b"hello", s.now) == 5
    s.expect("P. 1:6(5) ack 1")
    s.inject("P. 1:4(3) ack 6 win 65535", b"abc")
    buf = bytearray(10)
    assert sock.recv_into(memoryview(buf), s.now) == 3 and bytes(buf[:3]) == b"abc"


def test_simultaneous_open() -> None:
    s = Script()
    sock = s.connect(port=9000)
    s.expect("S 0:0(0) win 65535 <mss 1460,sackOK,TS val * ecr 0,wscale 7>")
    # the peer's SYN crosses ours
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    assert sock.state is TcpState.SYN_RECEIVED
    s.expect("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>")  # its SYN-ACK of our SYN
    assert sock.state is TcpState.ESTABLISHED


def test_active_close_fin_wait_and_time_wait_expiry() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    sock = s.passive_open()
    sock.close(s.now)
    assert sock.state is TcpState.FIN_WAIT_1
    s.expect("F. 1:1(0) ack 1")
    s.inject(". 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.FIN_WAIT_2
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.expect(". 2:2(0) ack 2")
    assert sock.state is TcpState.TIME_WAIT
    s.advance(1.9)
    assert sock.state is TcpState.TIME_WAIT
    # a retransmitted FIN is ACKed again and restarts the 2*MSL wait
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.expect(". 2:2(0) ack 2")
    s.advance(1.9)
    assert sock.state is TcpState.TIME_WAIT
    s.advance(0.2)
    assert_time_wait_over(s.stack, sock)
    assert not s.stack.conns
    s.expect_none()


def test_passive_close_close_wait_last_ack() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("F. 1:1(0) ack 1 win 65535")
    s.expect(". 1:1(0) ack 2")
    assert sock.state is TcpState.CLOSE_WAIT and sock.readable
    assert sock.recv_into(memoryview(bytearray(4)), s.now) == 0
    sock.close(s.now)
    assert sock.state is TcpState.LAST_ACK
    s.expect("F. 1:1(0) ack 2")
    s.inject(". 2:2(0) ack 2 win 65535")
    assert sock.state is TcpState.CLOSED and not s.stack.conns


def test_simultaneous_close_closing_state() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=0.5))
    sock = s.passive_open()
    sock.close(s.now)
    s.expect("F. 1:1(0) ack 1")
    s.inject("F. 1:1(0) ack 1 win 65535")  # peer's FIN has not seen ours
    assert sock.state is TcpState.CLOSING
    s.expect(". 2:2(0) ack 2")
    s.inject(". 2:2(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    s.advance(1.01)
    assert_time_wait_over(s.stack, sock)


def test_fin_with_ack_of_our_fin_goes_straight_to_time_wait() -> None:
    s = Script()
    sock = s.passive_open()
    sock.close(s.now)
    s.expect("F. 1:1(0) ack 1")
    s.inject("F. 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    s.expect(". 2:2(0) ack 2")


def test_half_close_keeps_receiving() -> None:
    s = Script()
    sock = s.passive_open()
    sock.shutdown(socket.SHUT_WR, s.now)
    s.expect("F. 1:1(0) ack 1")
    with pytest.raises(BrokenPipeError):
        sock.send(b"x", s.now)
    s.inject(". 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.FIN_WAIT_2
    s.inject("P. 1:11(10) ack 2 win 65535")
    buf = bytearray(100)
    assert sock.recv_into(memoryview(buf), s.now) == 10
    s.inject("F. 11:11(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    assert sock.recv_into(memoryview(buf), s.now) == 0


def test_peer_half_close_we_keep_sending() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("F. 1:1(0) ack 1 win 65535")
    s.expect(". 1:1(0) ack 2")
    assert sock.send(b"late data", s.now) == 9
    s.expect("P. 1:10(9) ack 2")
    assert sock.state is TcpState.CLOSE_WAIT


def test_syn_sent_close_and_errors() -> None:
    s = Script()
    sock = s.connect()
    s.pop()
    with pytest.raises(OSError) as info:
        sock.connect(B_ADDR, 8080, s.now)
    assert info.value.errno == 114  # EALREADY
    assert sock.send(b"x", s.now) == 0
    sock.close(s.now)
    assert sock.state is TcpState.CLOSED
    s.expect_none()


B_ADDR = bytes([10, 0, 0, 2])


def test_transitions_are_logged_when_enabled() -> None:
    s = Script(TcpConfig(quickack_segments=0, log_transitions=True))
    sock = s.passive_open()
    sock.close(s.now)
    names = [(old, new) for _, _, old, new in s.stack.transitions]
    assert ("CLOSED", "LISTEN") in names
    assert ("LISTEN", "SYN_RECEIVED") in names
    assert ("SYN_RECEIVED", "ESTABLISHED") in names
    assert ("ESTABLISHED", "FIN_WAIT_1") in names


def test_ipv6_connect_uses_ipv6_mss_and_v4_mapped_goes_ipv4() -> None:
    from tcpnet import RecordingHost

    from multisock.stack.tcp import TcpStack

    a6 = bytes(15) + b"\x01"
    b6 = bytes(15) + b"\x02"
    host = RecordingHost((a6, bytes([10, 0, 0, 1])), mtu=1500)
    host.select_source = lambda dst: a6 if len(dst) == 16 else bytes([10, 0, 0, 1])  # type: ignore[method-assign]
    stack = TcpStack(host, TcpConfig())
    sock = stack.socket(socket.AF_INET6)
    sock.connect(b6, 80, 0.0)
    from multisock.wire import tcp as wire

    hdr, _ = wire.parse(host.sent[-1][2])
    assert hdr.mss == 1440 and host.sent[-1][1] == b6
    mapped = stack.socket(socket.AF_INET6)
    mapped.connect(bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 2]), 80, 0.0)
    assert host.sent[-1][1] == bytes([10, 0, 0, 2])
    hdr, _ = wire.parse(host.sent[-1][2])
    assert hdr.mss == 1460


def test_idle_restart_shrinks_the_window() -> None:
    s = Script(TcpConfig(quickack_segments=0, congestion="reno"))
    sock = s.active_open(synack_opts="<mss 1000>")
    sock.nodelay = True
    for round_ in range(4):  # grow cwnd past the initial ten segments
        sock.send(b"g" * 10_000, s.now)
        while s.host.sent:
            s.pop()
        s.inject(f". 1:1(0) ack {1 + (round_ + 1) * 10_000} win 65535")
    assert sock.info()["snd_cwnd"] > 10_000
    s.advance(5.0)  # idle for much longer than an RTO
    sock.send(b"h" * 30_000, s.now)
    sent = 0
    while s.host.sent:
        sent += len(s.pop()[1])
    assert sent == 10_000  # RFC 5681 §4.1: back to the initial window


def test_time_wait_is_recycled_by_a_newer_syn() -> None:
    s = Script()
    sock = s.passive_open()
    sock.close(s.now)
    s.inject("F. 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    s.host.sent.clear()
    s.inject("S 100000:100000(0) win 65535 <mss 1460>")
    hdr, _ = s.pop()
    assert hdr.flags == 0x12  # a SYN-ACK from the listener: a new incarnation
    assert_time_wait_over(s.stack, sock)
    assert s.stack.counters["time_wait_recycled"] == 1


def test_rst_in_syn_received_removes_the_half_open_child() -> None:
    s = Script()
    lst = s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.expect("S. 0:0(0) ack 1")
    assert lst.syn_count == 1 and len(s.stack.conns) == 1
    s.inject("R 1:1(0) win 0")
    assert lst.syn_count == 0 and not s.stack.conns
    assert lst.accept() is None and lst.state is TcpState.LISTEN
