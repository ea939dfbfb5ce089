"""Spurious retransmissions undone: D-SACK (RFC 2883) reporting every retransmission of an
episode as a duplicate, or the Eifel detection (RFC 3522: the ACK covering the first
retransmission echoes the original's timestamp), restores cwnd and ssthresh to their
values before the episode (Linux's undo; RFC 4015's response after a timeout)."""

from __future__ import annotations

from rackflight import RTT, cwnd_ssthresh, flight, sacked

from multisock.stack.tcp.congestion import INFINITE_SSTHRESH


def _spurious_recovery(holes: int = 1) -> tuple:
    """Ten segments out; segment 1 (and 3 with ``holes=2``) only delayed, but three SACKed
    segments make RACK declare it lost: a fast retransmit that was not needed."""
    s, sock, _ = flight(10)
    s.advance(RTT)
    if holes == 1:
        sacked(s, 4001)
        s.expect(". 1:1001(1000) ack 1")
    else:
        s.inject(". 1:1(0) ack 1 win 65535 <sack 3001:5001 1001:2001>")
        s.expect(". 1:1001(1000) ack 1")
        s.expect(". 2001:3001(1000) ack 1")
    s.expect_none()
    assert sock.info()["ca_state"] == "recovery"
    return s, sock


def test_dsack_of_the_only_retransmission_restores_the_window() -> None:
    s, sock = _spurious_recovery()
    assert cwnd_ssthresh(sock) == (7000, 7000)
    s.inject(". 1:1(0) ack 10001 win 65535")  # the original arrived: recovery ends
    assert cwnd_ssthresh(sock) == (7000, 7000)
    s.inject(". 1:1(0) ack 10001 win 65535 <sack 1:1001>")  # ... and so did the resend
    assert cwnd_ssthresh(sock) == (10000, INFINITE_SSTHRESH)
    assert s.stack.counters["undo_dsack"] == 1
    assert s.stack.counters["dsack_received"] == 1
    assert sock.info()["dsack_dups"] == 1
    assert sock.undo is not None and sock.undo.events == 1


def test_dsack_during_recovery_ends_it() -> None:
    """The originals were only late and arrive while recovery still waits for data sent
    by limited transmit; the D-SACK of the resend ends the recovery at once."""
    s, sock, _ = flight(10, queued=2)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 1 win 65535 <sack 1001:2001>")
    assert [p.split()[1] for p in s.pending()] == ["10001:11001(1000)", "11001:12001(1000)"]
    s.host.sent.clear()
    s.inject(". 1:1(0) ack 1 win 65535 <sack 3001:5001 1001:2001>")
    s.expect(". 1:1001(1000) ack 1")  # (PRR: one segment now; 2001:3001 would be next)
    s.expect_none()
    s.inject(". 1:1(0) ack 10001 win 65535")  # the originals: below recover (12001)
    assert sock.info()["ca_state"] == "recovery"
    assert sock.info()["total_retrans"] == 1
    s.inject(". 1:1(0) ack 10001 win 65535 <sack 1:1001>")
    assert sock.info()["ca_state"] == "open"
    assert cwnd_ssthresh(sock)[1] == INFINITE_SSTHRESH
    assert s.stack.counters["undo_dsack"] == 1


def test_undo_needs_every_retransmission_reported() -> None:
    s, sock = _spurious_recovery(holes=2)
    reduced = cwnd_ssthresh(sock)
    s.inject(". 1:1(0) ack 10001 win 65535")
    s.inject(". 1:1(0) ack 10001 win 65535 <sack 1:1001>")
    assert s.stack.counters["dsack_received"] == 1 and s.stack.counters["undo_dsack"] == 0
    assert cwnd_ssthresh(sock)[1] == reduced[1]  # one resend may still have been needed
    s.inject(". 1:1(0) ack 10001 win 65535 <sack 2001:3001>")
    assert s.stack.counters["undo_dsack"] == 1
    assert cwnd_ssthresh(sock) == (10000, INFINITE_SSTHRESH)


def test_dsack_outside_the_episode_does_not_undo() -> None:
    s, sock, _ = flight(10)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 3001 win 65535")
    s.inject(". 1:1(0) ack 3001 win 65535 <sack 4001:7001>")  # segment 4 lost
    s.expect(". 3001:4001(1000) ack 1")
    reduced = cwnd_ssthresh(sock)
    # a duplicate of data acknowledged before the episode (the network duplicated it)
    s.inject(". 1:1(0) ack 3001 win 65535 <sack 1001:2001 4001:7001>")
    assert s.stack.counters["dsack_received"] == 1 and s.stack.counters["undo_dsack"] == 0
    assert cwnd_ssthresh(sock) == reduced and sock.info()["ca_state"] == "recovery"


def test_dsack_inside_the_second_block_is_recognised() -> None:
    """RFC 2883 §4's second form: the first block lies within the second."""
    s, sock, _ = flight(10)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 1 win 65535 <sack 2001:3001>")
    s.inject(". 1:1(0) ack 1 win 65535 <sack 2001:3001 2001:3001>")
    assert s.stack.counters["dsack_received"] == 1
    assert sock.info()["dsack_dups"] == 1


def test_eifel_undoes_a_fast_retransmit_answered_by_the_original() -> None:
    s, sock, tsvals = flight(10, timestamps=True)
    s.advance(RTT)
    s.inject(f". 1:1(0) ack 1 win 65535 <TS val 2 ecr {tsvals[0] - 1},sack 1001:4001>")
    hdr, _ = s.expect(". 1:1001(1000) ack 1")
    assert hdr.ts_val is not None and hdr.ts_val > tsvals[0]
    assert cwnd_ssthresh(sock) == (7000, 7000)
    # the ACK covering segment 1 echoes the original's TSval: it answers the original
    s.inject(f". 1:1(0) ack 10001 win 65535 <TS val 3 ecr {tsvals[0]}>")
    assert s.stack.counters["undo_eifel"] == 1
    # back to 10 segments, then this ACK's own slow start (RFC 3465: at most 2 MSS)
    assert cwnd_ssthresh(sock) == (12000, INFINITE_SSTHRESH)


def test_eifel_leaves_a_needed_retransmission_alone() -> None:
    s, sock, tsvals = flight(10, timestamps=True)
    s.advance(RTT)
    s.inject(f". 1:1(0) ack 1 win 65535 <TS val 2 ecr {tsvals[0] - 1},sack 1001:4001>")
    hdr, _ = s.expect(". 1:1001(1000) ack 1")
    s.advance(RTT)
    s.inject(f". 1:1(0) ack 10001 win 65535 <TS val 3 ecr {hdr.ts_val}>")  # the resend's
    assert s.stack.counters["undo_eifel"] == 0
    assert cwnd_ssthresh(sock) == (7000, 7000)


def test_eifel_after_a_spurious_timeout_restores_and_stops_going_back() -> None:
    """RFC 4015's response: after a spurious RTO, the window comes back and the sender
    continues after snd_max instead of resending what the receiver has."""
    s, sock, tsvals = flight(4, timestamps=True)
    s.advance(2 * RTT)
    s.expect(". 3001:4001(1000) ack 1")  # the tail loss probe (no new data in window)
    wait = sock.t_rexmit
    assert wait is not None
    s.advance(wait - s.now)
    s.expect(". 1:1001(1000) ack 1")  # the RTO: go back to snd_una with cwnd = 1 MSS
    assert s.stack.counters["rto_expired"] == 1
    assert sock.info()["snd_cwnd"] == 1000
    s.inject(f". 1:1(0) ack 2001 win 65535 <TS val 2 ecr {tsvals[0]}>")  # the original's
    assert s.stack.counters["undo_eifel"] == 1
    assert sock.info()["snd_cwnd"] >= 10000
    s.expect_none()  # no go-back-N: 2001:4001 is out there (snd_nxt = snd_max)
    assert sock.snd_nxt == sock.snd_max
