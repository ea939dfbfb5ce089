"""Timers: RTO with backoff and Karn, SYN retries, delayed ACK, persist, keepalive,
user timeout. The clock is fake, so every expiry is checked at its exact time."""

from __future__ import annotations

import errno

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpState
from multisock.wire import tcp as wire


def test_syn_retransmission_backoff_then_etimedout() -> None:
    s = Script(TcpConfig(quickack_segments=0, syn_retries=2))
    sock = s.connect()
    s.expect("S 0:0(0)")
    for wait in (1.0, 2.0):
        s.advance(wait - 0.001)
        s.expect_none()
        s.advance(0.001)
        s.expect("S 0:0(0)")
    s.advance(3.999)
    assert sock.state is TcpState.SYN_SENT
    s.advance(0.001)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT
    s.expect_none()


def test_rto_backoff_doubles_and_karn_ignores_the_retransmitted_sample() -> None:
    s = Script()
    sock = s.active_open()
    s.advance(0.1)
    sock.send(b"a" * 100, s.now)
    s.expect("P. 1:101(100) ack 1")
    base = sock.info()["rto"]
    assert base == pytest.approx(0.2)  # the handshake's 0 s sample, floored at rto_min
    times = []
    for _ in range(3):
        wait = s.next_timer_in()
        assert wait is not None
        times.append(round(wait, 6))
        s.advance(wait - 0.0001)
        s.expect_none()
        s.advance(0.0001)
        s.expect("P. 1:101(100) ack 1")
    assert times == [0.2, 0.4, 0.8]
    assert sock.info()["backoff"] == 3 and sock.info()["retransmits"] == 3
    rtt_before = sock.info()["rtt"]
    s.advance(0.3)
    s.inject(". 1:1(0) ack 101 win 65535")  # ambiguous: which transmission does it ACK?
    info = sock.info()
    assert info["rtt"] == rtt_before  # Karn: no sample from a retransmitted segment
    assert info["backoff"] == 0 and info["rto"] == pytest.approx(0.2)
    sock.send(b"b" * 10, s.now)
    s.expect("P. 101:111(10) ack 1")
    s.advance(0.08)
    s.inject(". 1:1(0) ack 111 win 65535")
    assert sock.info()["last_rtt"] == pytest.approx(0.08)


def test_retries2_exhausted_gives_etimedout() -> None:
    s = Script(TcpConfig(quickack_segments=0, retries2=2))
    sock = s.active_open()
    sock.send(b"x", s.now)
    s.advance(10)
    assert sock.state is TcpState.CLOSED
    with pytest.raises(TimeoutError):
        sock.send(b"y", s.now)


def test_user_timeout_aborts_earlier_than_retries() -> None:
    s = Script()
    sock = s.active_open(user_timeout=1000)
    sock.send(b"x", s.now)
    s.advance(0.9)
    assert sock.state is TcpState.ESTABLISHED
    s.advance(1.0)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_rto_resends_the_first_segment_only_and_collapses_cwnd() -> None:
    s = Script()
    sock = s.active_open()
    sock.nodelay = True
    sock.send(b"x" * 4000, s.now)
    sent = [s.pop()[0].seq for _ in range(3)]
    assert len(sent) == 3
    s.advance(0.2)
    s.expect(". 1:1461(1460) ack 1")
    s.expect_none()
    assert sock.info()["snd_cwnd"] == sock.info()["snd_mss"]


def test_delayed_ack_timer() -> None:
    s = Script(TcpConfig(quickack_segments=0, delayed_ack=0.04))
    s.passive_open()
    s.inject("P. 1:101(100) ack 1 win 65535")
    s.expect_none()
    s.advance(0.039)
    s.expect_none()
    s.advance(0.001)
    s.expect(". 1:1(0) ack 101")


def test_every_second_full_segment_is_acked_at_once() -> None:
    s = Script()
    s.passive_open()
    s.inject(". 1:1461(1460) ack 1 win 65535")
    s.expect_none()
    s.inject(". 1461:2921(1460) ack 1 win 65535")
    s.expect(". 1:1(0) ack 2921")


def test_quickack_mode_at_connection_start() -> None:
    s = Script(TcpConfig(quickack_segments=2))
    s.passive_open()
    s.inject("P. 1:11(10) ack 1 win 65535")
    s.expect(". 1:1(0) ack 11")
    s.inject("P. 11:21(10) ack 1 win 65535")
    s.expect(". 1:1(0) ack 21")
    s.inject("P. 21:31(10) ack 1 win 65535")
    s.expect_none()  # quickack budget spent: back to delayed ACKs


def test_quickack_option_acks_every_segment() -> None:
    s = Script()
    sock = s.passive_open()
    sock.quickack = True
    s.inject("P. 1:11(10) ack 1 win 65535")
    s.expect(". 1:1(0) ack 11")


def test_out_of_order_data_is_acked_at_once() -> None:
    s = Script()
    s.passive_open()
    s.inject("P. 11:21(10) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1")


def test_ack_piggybacks_on_data() -> None:
    s = Script()
    sock = s.passive_open()
    s.inject("P. 1:11(10) ack 1 win 65535")
    sock.send(b"reply", s.now)
    s.expect("P. 1:6(5) ack 11")
    s.inject(". 11:11(0) ack 6 win 65535")
    s.advance(1)
    s.expect_none()  # the delayed ACK was satisfied by the data segment


def test_persist_timer_probes_a_zero_window() -> None:
    s = Script()
    sock = s.active_open()
    s.inject(". 1:1(0) ack 1 win 0")
    assert sock.send(b"z" * 100, s.now) == 100
    s.expect_none()
    s.advance(0.2)
    s.expect(". 0:0(0) ack 1")  # probe: an old sequence number forces the peer to answer
    s.inject(". 1:1(0) ack 1 win 0")
    assert s.next_timer_in() == pytest.approx(0.4)  # backed off
    s.advance(0.3999)
    s.expect_none()
    s.advance(0.0002)
    s.expect(". 0:0(0) ack 1")
    s.inject(". 1:1(0) ack 1 win 1000")  # the window opens
    s.expect("P. 1:101(100) ack 1")
    assert s.stack.counters["window_probes"] == 2


def test_keepalive_probes_then_etimedout() -> None:
    s = Script()
    sock = s.active_open()
    sock.keepidle = 10.0
    sock.keepintvl = 2.0
    sock.keepcnt = 3
    sock.keepalive = True
    s.advance(9.99)
    s.expect_none()
    s.advance(0.01)
    s.expect(". 0:0(0) ack 1")
    s.inject(". 1:1(0) ack 1 win 65535")  # the peer is alive: idle time restarts
    s.advance(9.99)
    s.expect_none()
    s.advance(0.01)
    s.expect(". 0:0(0) ack 1")
    s.advance(2)
    s.expect(". 0:0(0) ack 1")
    s.advance(2)
    s.expect(". 0:0(0) ack 1")
    assert sock.state is TcpState.ESTABLISHED
    s.advance(2)
    s.expect("R. 1:1(0) ack 1")
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_orphaned_fin_wait_2_times_out() -> None:
    s = Script(TcpConfig(quickack_segments=0, fin_timeout=5.0))
    sock = s.passive_open()
    sock.close(s.now)
    s.expect("F. 1:1(0) ack 1")
    s.inject(". 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.FIN_WAIT_2
    s.advance(4.9)
    assert sock.state is TcpState.FIN_WAIT_2
    s.advance(0.2)
    assert sock.state is TcpState.CLOSED


def test_synack_retries_drop_the_half_open_child() -> None:
    s = Script(TcpConfig(quickack_segments=0, synack_retries=1))
    lst = s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.expect("S. 0:0(0) ack 1")
    s.advance(1.0)
    s.expect("S. 0:0(0) ack 1")
    assert lst.syn_count == 1
    s.advance(2.0)
    assert lst.syn_count == 0 and not s.stack.conns


def test_timestamp_echo_older_than_a_timeout_retransmission_is_not_a_sample() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460,TS val 1 ecr *>")
    sock.send(b"q" * 100, s.now)
    first, _ = s.expect("P. 1:101(100) ack 1")
    s.advance(0.2)
    s.expect("P. 1:101(100) ack 1")
    s.advance(0.3)
    rtt_before = sock.info()["rtt"]
    # the ACK of the original (its ACK delayed or lost for a while) echoes the old value
    s.inject(f". 1:1(0) ack 101 win 65535 <TS val 2 ecr {first.ts_val}>")
    assert sock.info()["rtt"] == rtt_before and sock.info()["unacked"] == 0


def test_repeated_timeouts_keep_the_first_ssthresh() -> None:
    s = Script(TcpConfig(quickack_segments=0, congestion="reno"))
    sock = s.active_open(synack_opts="<mss 1000>")
    sock.nodelay = True
    sock.send(b"z" * 8000, s.now)
    while s.host.sent:
        s.pop()
    s.advance(0.2)
    first = sock.info()["snd_ssthresh"]
    assert first == 4000  # half of the 8000 bytes in flight (RFC 5681 eq. 4)
    s.advance(0.4)
    s.advance(0.8)
    assert sock.info()["retransmits"] == 3
    assert sock.info()["snd_ssthresh"] == first and sock.info()["snd_cwnd"] == 1000


def test_pure_ack_after_a_timeout_carries_snd_max_not_the_rewound_snd_nxt() -> None:
    """A timeout rewinds snd_nxt; an ACK sent then with seq=snd_nxt would fall left of the
    peer's window and be dropped unread — with both sides rewound, both sides' ACKs are
    ignored and the connection deadlocks (found by the 1 %-loss bulk test)."""
    s = Script()
    sock = s.active_open()
    sock.nodelay = True
    sock.send(b"x" * 4000, s.now)
    for _ in range(3):
        s.pop()
    s.advance(0.2)
    s.expect(". 1:1461(1460) ack 1")  # the timeout resent the first segment only
    s.inject(". 1:101(100) ack 1 win 65535", b"y" * 100)  # peer data arrives: we must ACK it
    s.advance(0.25)  # let a delayed ACK fire if the stack chose to delay
    acks = []
    while s.host.sent:
        hdr, payload = s.pop()
        if not payload and not hdr.flags & wire.SYN:
            acks.append(hdr)
    assert acks, "the data was never acknowledged"
    assert all(h.seq == (sock.iss + 4001) & 0xFFFFFFFF for h in acks)  # snd_max, never snd_nxt
