"""Loss recovery: fast retransmit on three duplicate ACKs, limited transmit, NewReno
partial ACKs (RFC 6582) and SACK-based recovery (RFC 6675)."""

from __future__ import annotations

from tcpscript import Script

from multisock.stack.tcp import TcpState


def _flight(s: Script, segments: int, sack: bool) -> None:
    sock = s.active_open(synack_opts="<mss 1000,sackOK>" if sack else "<mss 1000>")
    sock.nodelay = True
    assert sock.send(b"d" * (segments * 1000), s.now) == segments * 1000
    for _i in range(segments):
        hdr, payload = s.pop()
        assert len(payload) == 1000
    s.expect_none()
    s.sock = sock


def test_limited_transmit_then_fast_retransmit_on_third_dupack() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1000>")
    sock.nodelay = True
    sock.send(b"d" * 10_000, s.now)  # the initial window: exactly ten segments
    for _ in range(10):
        s.pop()
    sock.send(b"e" * 2000, s.now)  # more data waits for the window
    s.expect_none()
    s.inject(". 1:1(0) ack 1 win 65535")
    s.expect(". 10001:11001(1000) ack 1")  # RFC 3042: a new segment on the 1st dupack
    s.inject(". 1:1(0) ack 1 win 65535")
    s.expect("P. 11001:12001(1000) ack 1")  # ... and on the 2nd
    s.inject(". 1:1(0) ack 1 win 65535")
    s.expect(". 1:1001(1000) ack 1")  # 3rd: fast retransmit of the first segment
    assert sock.info()["ca_state"] == "recovery"
    assert s.stack.counters["fast_retransmits"] == 1
    cwnd = sock.info()["snd_cwnd"]
    assert cwnd < 10_000  # the window was reduced (CUBIC: 0.7x)
    s.inject(". 1:1(0) ack 12001 win 65535")  # everything arrives
    assert sock.info()["ca_state"] == "open"


def test_newreno_partial_ack_resends_the_next_hole() -> None:
    s = Script()
    _flight(s, 6, sack=False)
    sock = s.sock
    assert sock is not None
    for _ in range(3):
        s.inject(". 1:1(0) ack 1 win 65535")
    s.expect(". 1:1001(1000) ack 1")
    # the first hole is filled; the third segment was lost too: a partial ACK
    s.inject(". 1:1(0) ack 2001 win 65535")
    s.expect(". 2001:3001(1000) ack 1")
    assert sock.info()["ca_state"] == "recovery"
    s.inject(". 1:1(0) ack 6001 win 65535")
    assert sock.info()["ca_state"] == "open" and sock.info()["unacked"] == 0


def test_sack_recovery_resends_only_the_holes() -> None:
    s = Script()
    _flight(s, 8, sack=True)
    sock = s.sock
    assert sock is not None
    # segments 1 and 4 (0-based 0, 3) are lost; the peer SACKs the rest as they arrive
    s.inject(". 1:1(0) ack 1 win 65535 <sack 1001:3001>")
    s.expect_none()
    s.inject(". 1:1(0) ack 1 win 65535 <sack 1001:3001 4001:6001>")
    # four segments SACKed above snd_una: the first hole is lost (RFC 6675 IsLost)
    s.expect(". 1:1001(1000) ack 1")
    assert sock.info()["ca_state"] == "recovery"
    s.inject(". 1:1(0) ack 1 win 65535 <sack 1001:3001 4001:8001>")
    s.expect(". 3001:4001(1000) ack 1")  # the second hole, and nothing SACKed is resent
    s.expect_none()
    s.inject(". 1:1(0) ack 3001 win 65535 <sack 4001:8001>")
    s.inject(". 1:1(0) ack 8001 win 65535")
    info = sock.info()
    assert info["ca_state"] == "open" and info["total_retrans"] == 2 and info["sacked"] == 0


def test_dupacks_with_window_updates_are_not_counted() -> None:
    s = Script()
    _flight(s, 4, sack=False)
    sock = s.sock
    assert sock is not None
    for win in (65535, 60000, 50000):
        s.inject(f". 1:1(0) ack 1 win {win}")
    assert sock.info()["ca_state"] == "open"
    s.expect_none()


def test_rto_after_lost_retransmission_goes_back_to_slow_start() -> None:
    s = Script()
    _flight(s, 4, sack=False)
    sock = s.sock
    assert sock is not None
    for _ in range(3):
        s.inject(". 1:1(0) ack 1 win 65535")
    s.expect(". 1:1001(1000) ack 1")
    wait = s.next_timer_in()
    assert wait is not None
    s.advance(wait)
    s.expect(". 1:1001(1000) ack 1")
    info = sock.info()
    assert info["snd_cwnd"] == 1000 and info["ca_state"] == "loss"
    assert sock.state is TcpState.ESTABLISHED
    # after the timeout the rest is resent as ACKs come back (go-back-N, cwnd grows)
    s.inject(". 1:1(0) ack 1001 win 65535")
    first, _ = s.expect(". 1001:2001(1000) ack 1")
    s.expect(". 2001:3001(1000) ack 1")
