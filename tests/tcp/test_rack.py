"""RACK (RFC 8985 §6): loss told by send times. A segment is lost once a segment sent
after it was delivered and the reordering window has passed since; the window is
min_rtt/4 until loss is evident (then 0), grows with D-SACK, and the reordering timer
fires when it ends. Scripted with a fake clock: RTT = 1/8 s, so min_rtt/4 = 1/32 s."""

from __future__ import annotations

from rackflight import MSS, RTT, armed_in, cwnd_ssthresh, flight, sacked

from multisock.stack.tcp.rack import SCAN_LIMIT, Rack


def test_one_sack_waits_for_the_reordering_window_then_the_timer_resends() -> None:
    s, sock, _ = flight(10)
    s.advance(RTT)
    sacked(s, 2001)  # segment 2 arrived, segment 1 not (yet)
    s.expect_none()  # one segment above a hole may be reordering: wait min_rtt/4
    assert s.next_timer_in() == RTT / 4  # the RACK reordering timer, not the RTO
    assert s.stack.counters["rack_lost"] == 0
    s.advance(RTT / 4)
    s.expect(". 1:1001(1000) ack 1")
    s.expect_none()
    assert s.stack.counters["rack_lost"] == 1
    assert s.stack.counters["fast_retransmits"] == 1
    assert s.stack.counters["rto_expired"] == 0
    assert sock.info()["ca_state"] == "recovery"
    # CUBIC: ssthresh = 0.7 * 10 segments; PRR on a timer (nothing delivered): the pipe
    # (8 segments) is above ssthresh, the proportional share is 0, the fast retransmit
    # goes anyway: cwnd = pipe + 1 segment
    assert cwnd_ssthresh(sock) == (9000, 7000)


def test_late_original_within_the_window_is_reordering_not_loss() -> None:
    s, sock, _ = flight(10)
    s.advance(RTT)
    sacked(s, 2001)
    s.advance(RTT / 8)
    s.inject(". 1:1(0) ack 2001 win 65535")  # segment 1 was only late
    assert sock.info()["reord_seen"] == 1
    s.advance(RTT)
    s.expect_none()
    info = sock.info()
    assert info["total_retrans"] == 0 and info["ca_state"] == "open"
    # reordering seen: three segments SACKed above a hole no longer mean loss at once,
    # RACK keeps waiting min_rtt/4 (RFC 8985 §6.2 step 4)
    s.inject(". 1:1(0) ack 2001 win 65535 <sack 3001:6001>")
    s.expect_none()
    assert s.next_timer_in() == RTT / 4
    s.advance(RTT / 4)
    s.expect(". 2001:3001(1000) ack 1")


def test_a_dsack_doubles_the_wait() -> None:
    """RFC 8985 §6.2 step 4: a round with a D-SACK (here: the first block inside the
    second, RFC 2883) widens the window a step, min_rtt/4 -> min_rtt/2."""
    s, sock, _ = flight(10)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 1 win 65535 <sack 1001:2001 1001:2001>")
    assert s.stack.counters["dsack_received"] == 1
    s.expect_none()
    assert armed_in(s, sock) == RTT / 2
    s.advance(RTT / 4)
    s.expect_none()  # (where the window would have ended without the D-SACK)
    s.advance(RTT / 4)
    s.expect(". 1:1001(1000) ack 1")


def test_three_sacked_segments_mean_loss_at_once() -> None:
    """No reordering seen and DupThresh segments SACKed: reo_wnd is 0 (RFC 6675's rule
    in time form) and the hole is resent on that very ACK."""
    s, sock, _ = flight(10)
    s.advance(RTT)
    sacked(s, 2001)
    sacked(s, 3001)
    s.expect_none()
    sacked(s, 4001)
    s.expect(". 1:1001(1000) ack 1")
    s.expect_none()
    assert cwnd_ssthresh(sock) == (7000, 7000)


def test_lost_retransmission_is_found_without_a_timeout() -> None:
    """What duplicate ACKs cannot see: the retransmission itself lost. Segments sent after
    it were delivered, so one RTT later it is lost too, and resent again."""
    s, sock, _ = flight(10, queued=10)
    s.advance(RTT)
    sacked(s, 2001)  # limited transmit sends new data on the first two
    assert [p.split()[1] for p in s.pending()] == ["10001:11001(1000)", "11001:12001(1000)"]
    s.host.sent.clear()
    sacked(s, 3001)
    s.host.sent.clear()
    sacked(s, 4001)
    s.expect(". 1:1001(1000) ack 1")  # (the retransmission: lost again below)
    s.expect_none()
    for high in range(5001, 10002, 1000):
        sacked(s, high)
    sent_after_rtx = s.pending()
    assert sent_after_rtx  # PRR let new data go after the retransmission
    s.host.sent.clear()
    s.advance(RTT)
    # the new segments sent after the retransmission are SACKed one RTT later; the
    # retransmission, sent before them, is not: it is lost (reo_wnd is 0 in recovery)
    sacked(s, 15001)
    s.expect(". 1:1001(1000) ack 1")
    assert s.stack.counters["rack_lost"] == 2
    assert s.stack.counters["rto_expired"] == 0
    assert sock.info()["total_retrans"] == 2


def test_nothing_is_lost_before_anything_later_is_delivered() -> None:
    """Time alone marks nothing: with no delivery there is no RACK.xmit_ts to compare."""
    s, sock, _ = flight(4)
    s.advance(RTT / 2)
    s.inject(". 1:1(0) ack 1 win 65535")  # a pure duplicate ACK: nothing delivered
    s.expect_none()
    assert s.stack.counters["rack_lost"] == 0


def test_without_sack_duplicate_acks_and_newreno_are_unchanged() -> None:
    s, sock, _ = flight(6, sack=False)
    assert sock.rack is None
    s.advance(RTT)
    for _ in range(3):
        s.inject(". 1:1(0) ack 1 win 65535")
    s.expect(". 1:1001(1000) ack 1")
    s.inject(". 1:1(0) ack 2001 win 65535")  # a partial ACK: NewReno resends the next hole
    s.expect(". 2001:3001(1000) ack 1")
    assert s.stack.counters["rack_lost"] == 0 and s.stack.counters["tlp_probes"] == 0


def _rack_with(n: int) -> Rack:
    rack = Rack()
    for i in range(n):
        rack.on_send(i * MSS, (i + 1) * MSS, 0.0, i * MSS)
    return rack


def test_scan_marks_at_most_scan_limit_per_call_and_then_asks_to_go_on() -> None:
    n = 3 * SCAN_LIMIT + 10
    rack = _rack_with(n)
    # the last segment is SACKed one RTT later: every one before it is lost
    rack.on_sacked((n - 1) * MSS, n * MSS, (n - 1) * MSS, n * MSS, RTT, 0.0)
    marked = rack.detect_loss(RTT, 0.0)
    assert marked == SCAN_LIMIT and rack.reo_at == RTT  # the rest at the next turn
    assert len(rack.tq) == n - SCAN_LIMIT  # what was looked at is gone from the scan
    total = marked
    while rack.reo_at is not None:
        total += rack.detect_loss(RTT, 0.0)
    assert total == n - 1
    assert rack.lost_out == (n - 1) * MSS
    assert not rack.tq  # each transmission was examined once


def test_scan_work_per_ack_does_not_grow_with_the_window() -> None:
    """A long flight where losses are not due yet: each ACK's scan stops at the first
    segment not yet lost, it does not walk the window."""
    rack = _rack_with(10_000)
    rack.on_sacked(5_000 * MSS, 5_001 * MSS, 5_000 * MSS, 5_001 * MSS, RTT, 0.0)
    for k in range(100):
        before = len(rack.tq)
        assert rack.detect_loss(RTT, RTT) == 0  # a window of one RTT: nothing due
        assert before - len(rack.tq) <= 1 or k == 0
    assert rack.reo_at == RTT + RTT


def test_retransmission_spanning_records_merges_them() -> None:
    rack = Rack()
    for i in range(10):  # ten 100-byte writes sent one by one
        rack.on_send(i * 100, (i + 1) * 100, 0.0, i * 100)
    rack.on_send(0, 1000, 1.0, 1000)  # one full-size retransmission of all of them
    live = rack.recs[rack.first :]
    assert [(r.start, r.end, r.rtx) for r in live] == [(0, 1000, True)]


def test_retransmission_inside_a_record_splits_it() -> None:
    rack = Rack()
    rack.on_send(0, 1000, 0.0, 0)
    rack.on_send(1000, 2000, 0.0, 1000)
    rack.on_send(250, 500, 1.0, 2000)  # a smaller MSS: a piece from inside the first
    rack.on_send(500, 1500, 1.0, 2000)  # and one across the boundary
    live = [(r.start, r.end, r.rtx, r.xmit) for r in rack.recs[rack.first :]]
    assert live == [
        (0, 250, False, 0.0),
        (250, 500, True, 1.0),
        (500, 1500, True, 1.0),
        (1500, 2000, False, 0.0),
    ]
    # a record found lost is resent as one piece: none covers more than one transmission
    assert rack.recs[rack.first].start == 0


def test_dsack_widens_the_window_for_sixteen_recoveries() -> None:
    rack = Rack()
    rack.reordering_seen = True
    assert rack.reo_wnd(False, False, RTT, RTT) == RTT / 4
    rack.on_dsack(0, 10 * MSS)
    assert rack.reo_wnd(False, False, RTT, RTT) == RTT / 2
    rack.on_dsack(0, 10 * MSS)  # the same round: one step per round trip
    assert rack.reo_wnd(False, False, RTT, RTT) == RTT / 2
    rack.on_dsack(10 * MSS, 20 * MSS)  # next round
    assert rack.reo_wnd(False, False, RTT, RTT) == 3 * RTT / 4
    for _ in range(15):
        rack.on_recovery_exit()
    assert rack.reo_wnd(False, False, RTT, RTT) == 3 * RTT / 4
    rack.on_recovery_exit()  # the 16th recovery without a D-SACK: back to one step
    assert rack.reo_wnd(False, False, RTT, RTT) == RTT / 4
    for _ in range(8):
        rack.on_dsack(100 * MSS * (_ + 1), 100 * MSS * (_ + 2))
    assert rack.reo_wnd(False, False, RTT, RTT / 2) == RTT / 2  # never above SRTT
