"""Flow control: Nagle and TCP_NODELAY, sender and receiver SWS avoidance, window
updates after reads, bounded buffers (SO_SNDBUF, SO_RCVBUF, out-of-order queue)."""

from __future__ import annotations

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpConfig


def test_nagle_holds_small_segments_while_data_is_unacked() -> None:
    s = Script()
    sock = s.active_open()
    sock.send(b"a", s.now)
    s.expect("P. 1:2(1) ack 1")
    sock.send(b"b", s.now)
    sock.send(b"c", s.now)
    s.expect_none()  # Nagle: wait for the ACK
    s.inject(". 1:1(0) ack 2 win 65535")
    s.expect("P. 2:4(2) ack 1")  # then both go together


def test_nodelay_sends_small_segments_at_once() -> None:
    s = Script()
    sock = s.active_open(nodelay=True)
    sock.send(b"a", s.now)
    sock.send(b"b", s.now)
    s.expect("P. 1:2(1) ack 1")
    s.expect("P. 2:3(1) ack 1")


def test_nagle_never_holds_a_full_segment() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1000>")
    sock.send(b"a", s.now)
    s.expect("P. 1:2(1) ack 1")
    sock.send(b"b" * 1500, s.now)
    s.expect(". 2:1002(1000) ack 1")
    s.expect_none()  # the 500-byte tail waits for the ACK


def test_push_after_nodelay_releases_held_data() -> None:
    s = Script()
    sock = s.active_open()
    sock.send(b"a", s.now)
    sock.send(b"b", s.now)
    s.pop()
    s.expect_none()
    sock.nodelay = True
    sock.push(s.now)
    s.expect("P. 2:3(1) ack 1")


def test_sender_sws_avoidance_waits_for_a_useful_window() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1000>")
    s.inject(". 1:1(0) ack 1 win 4000")
    sock.send(b"x" * 4000, s.now)
    for _i in range(4):
        s.pop()
    s.inject(". 1:1(0) ack 4001 win 0")
    sock.send(b"y" * 3000, s.now)
    s.expect_none()
    s.inject(". 1:1(0) ack 4001 win 100")  # a tiny window: below half the largest seen
    s.expect_none()
    s.inject(". 1:1(0) ack 4001 win 2000")  # half of the max window: worth sending
    s.expect(". 4001:5001(1000) ack 1")
    s.expect(". 5001:6001(1000) ack 1")
    s.expect_none()


def test_receiver_window_shrinks_as_data_queues_and_reopens_after_read() -> None:
    s = Script()
    sock = s.passive_open(rcvbuf=4000)
    sock.quickack = True
    s.inject("P. 1:1001(1000) ack 1 win 65535")
    hdr, _ = s.expect(". 1:1(0) ack 1001")
    assert hdr.window == 3000
    s.inject("P. 1001:4001(3000) ack 1 win 65535")
    hdr, _ = s.expect(". 1:1(0) ack 4001")
    assert hdr.window == 0
    buf = memoryview(bytearray(500))
    assert sock.recv_into(buf, s.now) == 500
    s.expect_none()  # 500 bytes free is less than min(rcvbuf/2, mss): no update (SWS)
    big = memoryview(bytearray(4000))
    assert sock.recv_into(big, s.now) == 3500
    hdr, _ = s.expect(". 1:1(0) ack 4001")  # the window update
    assert hdr.window == 4000


def test_receiver_does_not_advertise_tiny_window_increments() -> None:
    s = Script()
    sock = s.passive_open(rcvbuf=10000)
    sock.quickack = True
    s.inject("P. 1:10001(10000) ack 1 win 65535")
    hdr, _ = s.expect(". 1:1(0) ack 10001")
    assert hdr.window == 0
    assert sock.recv_into(memoryview(bytearray(100)), s.now) == 100
    s.inject("P. 10001:10001(0) ack 1 win 65535")
    s.inject("P. 10001:10002(1) ack 1 win 65535")  # beyond the (zero) window: answered
    hdr, _ = s.expect(". 1:1(0) ack 10001")
    assert hdr.window == 0  # 100 free bytes are not offered (RFC 9293 §3.8.6.2.2)


def test_data_beyond_the_window_is_trimmed() -> None:
    s = Script()
    sock = s.passive_open(rcvbuf=2000)
    sock.quickack = True
    s.inject("P. 1:3001(3000) ack 1 win 65535")
    s.expect(". 1:1(0) ack 2001")
    assert sock.readable_bytes == 2000


def test_sndbuf_bounds_what_send_accepts() -> None:
    s = Script()
    sock = s.active_open(sndbuf=5000)
    s.inject(". 1:1(0) ack 1 win 0")
    assert sock.send(b"x" * 8000, s.now) == 5000
    assert not sock.writable
    assert sock.send(b"x", s.now) == 0


def test_out_of_order_queue_is_bounded_in_bytes() -> None:
    s = Script(TcpConfig(quickack_segments=0, ooo_limit=3000))
    sock = s.passive_open()
    for i in range(5):
        start = 2001 + i * 1000
        s.inject(f"P. {start}:{start + 1000}(1000) ack 1 win 65535")
    info = sock.info()
    assert info["ooo_bytes"] == 3000 and info["ooo_dropped"] == 2
    s.inject("P. 1:2001(2000) ack 1 win 65535")
    assert sock.readable_bytes == 5000


def test_recv_peek_and_partial_reads() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("P. 1:6(5) ack 1 win 65535", b"hello")
    s.inject("P. 6:12(6) ack 1 win 65535", b" world")
    buf = bytearray(3)
    assert sock.recv_into(memoryview(buf), s.now, peek=True) == 3 and bytes(buf) == b"hel"
    assert sock.readable_bytes == 11
    out = bytearray()
    while sock.readable_bytes:
        n = sock.recv_into(memoryview(buf), s.now)
        out += buf[:n]
    assert bytes(out) == b"hello world"
    with pytest.raises(BlockingIOError):
        sock.recv_into(memoryview(buf), s.now)


def test_reassembly_of_overlapping_out_of_order_segments() -> None:
    s = Script()
    sock = s.passive_open()
    payload = bytes(range(200))
    s.inject("P. 51:151(100) ack 1 win 65535", payload[50:150])
    s.inject("P. 101:201(100) ack 1 win 65535", payload[100:200])
    s.inject("P. 1:76(75) ack 1 win 65535", payload[:75])
    buf = bytearray(300)
    n = sock.recv_into(memoryview(buf), s.now)
    assert bytes(buf[:n]) == payload
