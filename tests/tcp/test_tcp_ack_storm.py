"""ACK storms (issue #15 item 1): a segment that does not advance a connection is answered
at most once per ``tcp_invalid_ratelimit`` (0.5 s) per connection, as Linux does
(tcp_oow_rate_limited), so two ends that each take the other's ACK for invalid - after a
forged segment, or one connection talking to itself after a LAND SYN - stop after a round.
Segments carrying data or a FIN are still answered every time (their sender waits for it).
Fake clock throughout: counts of segments, no timing."""

from __future__ import annotations

import socket

from tcpnet import A, B, Wire
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpState
from multisock.wire import tcp as wire


def test_forged_data_at_rcv_nxt_does_not_start_an_ack_loop() -> None:
    """Three bytes forged from the client's 4-tuple at exactly the server's rcv_nxt: the
    server ACKs data the client never sent, the client answers that ACK (ack > snd_max),
    the server answers the client's ACK (now left of its window), and so on for ever."""
    w = Wire(delay=0.001)
    client, server, _ = w.connect_pair()
    before = w.delivered
    assert client.local is not None
    forged = wire.build(client.local[1], 80, server.rcv_nxt & 0xFFFFFFFF,
                        server.snd_nxt & 0xFFFFFFFF, wire.ACK | wire.PSH, 65535) + b"xyz"
    w.b.input(A, B, memoryview(forged), w.now)
    steps = 0
    while steps < 10_000 and w.step():  # until nothing is in flight and no timer is due
        steps += 1
    # without the limit: ~1,000 segments per second of (virtual) time, never ending
    assert w.delivered - before <= 4, w.delivered - before
    assert steps < 10_000
    assert w.a.counters["acks_skipped_unsent"] + w.b.counters["acks_skipped_seq"] >= 1
    assert client.state is TcpState.ESTABLISHED and server.state is TcpState.ESTABLISHED


def _loop_back(s: Script, limit: int) -> int:
    """Feed what the stack sends to itself back into it (a loopback); how many went."""
    sent = 0
    while s.host.sent and sent < limit:
        src, dst, seg = s.host.sent.pop(0)
        sent += 1
        s.stack.input(src, dst, memoryview(seg), s.now)
    return sent


def test_land_syn_makes_a_bounded_number_of_segments() -> None:
    """A SYN whose source is its destination (LAND): the half-open connection talks to
    itself; its SYN-ACK is out of its own window, so is the ACK answering that."""
    s = Script()
    s.listen(8080)
    land = wire.build(8080, 8080, 1000, 0, wire.SYN, 65535, mss=1460)
    s.stack.input(A, A, memoryview(land), s.now)
    assert _loop_back(s, 10_000) <= 3  # SYN-ACK, one ACK; then the limit
    assert s.stack.counters["acks_skipped_seq"] >= 1
    s.now += 0.5  # a later stray packet may get one more answer, no more
    assert not s.host.sent


def test_out_of_window_pure_acks_get_one_answer_per_interval() -> None:
    s = Script()
    s.passive_open()
    for i in range(5):  # beyond the right edge of the window (65,535 without scaling)
        s.inject(f". {200000 + i}:{200000 + i}(0) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1")
    s.expect_none()
    assert s.stack.counters["acks_skipped_seq"] == 4
    s.now += 0.49
    s.inject(". 300000:300000(0) ack 1 win 65535")
    s.expect_none()
    s.now += 0.01  # 0.5 s after the last ACK sent
    s.inject(". 300001:300001(0) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1")


def test_old_data_and_fins_are_always_answered() -> None:
    """A retransmission of data already received (the sender lost our ACK) or of a FIN
    needs its ACK/DSACK now: Linux exempts segments occupying sequence space (no SYN)."""
    s = Script(TcpConfig(quickack_segments=0, sack=True))
    sock = s.passive_open("<mss 1460,sackOK>")
    sock.quickack = True
    s.inject("P. 1:11(10) ack 1 win 65535")
    s.pop()
    for _ in range(3):
        s.inject("P. 1:11(10) ack 1 win 65535")
        hdr, _ = s.pop()
        assert hdr.ack == s.peer_isn + 11
    s.inject("F. 11:11(0) ack 1 win 65535")
    s.pop()
    for _ in range(3):  # the FIN again: each copy answered
        s.inject("F. 11:11(0) ack 1 win 65535")
        hdr, _ = s.pop()
        assert hdr.ack == s.peer_isn + 12
    assert s.stack.counters["acks_skipped_seq"] == 0


def test_paws_rejects_are_answered_once_per_interval() -> None:
    s = Script()
    s.passive_open("<mss 1460,TS val 100 ecr 0>")
    s.inject(". 1:1(0) ack 1 win 65535 <TS val 200 ecr 0>")
    for _ in range(4):
        s.inject(". 1:1(0) ack 1 win 65535 <TS val 150 ecr 0>")  # older than ts_recent
    assert len(s.host.sent) == 1
    assert s.stack.counters["acks_skipped_paws"] == 3


def test_acks_of_unsent_data_are_answered_once_per_interval() -> None:
    s = Script()
    s.passive_open()
    for _ in range(4):
        s.inject(". 1:1(0) ack 5000 win 65535")
    s.expect(". 1:1(0) ack 1")
    s.expect_none()
    assert s.stack.counters["ack_too_new"] == 4
    assert s.stack.counters["acks_skipped_unsent"] == 3


def test_time_wait_record_answers_paws_rejects_once_per_interval() -> None:
    w = Wire(delay=0.001)
    client, server, _ = w.connect_pair()
    client.close(w.now)
    w.run_until(lambda: server.state is TcpState.CLOSE_WAIT)
    server.close(w.now)
    w.run_until(lambda: server.state is TcpState.CLOSED)
    assert client.local is not None
    record = w.a.conns[(A, client.local[1], B, 80)]
    assert record.state is TcpState.TIME_WAIT
    assert record.ts_ok
    sent = []
    w.host_a.deliver = lambda src, dst, seg: sent.append(seg)
    old = wire.build(80, client.local[1], record.rcv_nxt & 0xFFFFFFFF, record.snd_max & 0xFFFFFFFF,
                     wire.ACK, 65535, ts=((record.ts_recent - 10) & 0xFFFFFFFF, 0))
    for _ in range(4):
        w.a.input(B, A, memoryview(old), w.now)
    assert len(sent) == 1
    assert w.a.counters["acks_skipped_time_wait"] == 3


def test_self_connect_still_works() -> None:
    """A socket connected to itself (simultaneous open with itself, which Linux allows)
    is not a LAND attack: it completes and carries data through the same limits."""
    s = Script()
    sock = s.stack.socket(socket.AF_INET)
    sock.bind(A, 5555)
    sock.connect(A, 5555, s.now)
    _loop_back(s, 100)
    assert sock.state is TcpState.ESTABLISHED
    assert sock.send(b"hello", s.now) == 5
    _loop_back(s, 100)
    buf = bytearray(16)
    assert sock.recv_into(memoryview(buf), s.now) == 5 and bytes(buf[:5]) == b"hello"
