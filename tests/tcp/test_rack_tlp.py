"""The tail loss probe (RFC 8985 §7): when the ACKs stop with data outstanding, a probe
goes after PTO = 2*SRTT (plus the worst-case delayed ACK with one segment in flight,
never later than the RTO): new data if the window has some, else the last segment. Its
ACK lets RACK find what the tail lost: fast recovery instead of a timeout."""

from __future__ import annotations

import pytest
from rackflight import RTT, armed_in, cwnd_ssthresh, flight, opened

from multisock.stack.tcp.rack import WC_DEL_ACK


def test_tail_loss_is_probed_and_repaired_by_fast_recovery() -> None:
    s, sock, _ = flight(10)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 7001 win 65535")  # segments 8-10 were lost
    cwnd_before = sock.info()["snd_cwnd"]
    assert armed_in(s, sock) == 2 * RTT  # the PTO: 2*SRTT, before the RTO
    s.advance(2 * RTT - RTT / 8)
    s.expect_none()
    s.advance(RTT / 8)
    s.expect(". 9001:10001(1000) ack 1")  # no new data: the last segment again
    s.expect_none()
    assert s.stack.counters["tlp_probes"] == 1 and sock.rack is not None
    assert sock.rack.tlp_end is not None and sock.rack.tlp_rtx
    s.advance(RTT)
    s.inject(". 1:1(0) ack 7001 win 65535 <sack 9001:10001>")  # the probe arrived
    # RACK: 8 and 9 were sent before the probe, which was delivered: lost
    s.expect(". 7001:8001(1000) ack 1")
    s.expect(". 8001:9001(1000) ack 1")
    s.expect_none()
    assert s.stack.counters["rack_lost"] == 2
    assert s.stack.counters["rto_expired"] == 0
    assert sock.info()["ca_state"] == "recovery"
    # CUBIC's reduction (0.7), and PRR-SSRB with an empty pipe: what was delivered + 1
    assert cwnd_ssthresh(sock) == (2000, int(cwnd_before * 0.7))
    s.inject(". 1:1(0) ack 10001 win 65535")
    assert sock.info()["ca_state"] == "open"
    assert cwnd_ssthresh(sock) == (int(cwnd_before * 0.7),) * 2


def test_probe_sends_new_data_when_there_is_some() -> None:
    s, sock, _ = flight(10, queued=3)  # three more segments wait for the window
    assert s.next_timer_in() == 2 * RTT
    s.advance(2 * RTT)
    s.expect(". 10001:11001(1000) ack 1")  # beyond cwnd: a probe may send it
    s.expect_none()
    assert sock.rack is not None and not sock.rack.tlp_rtx


def test_at_most_one_probe_then_the_rto() -> None:
    s, sock, _ = flight(4)
    s.advance(2 * RTT)
    s.expect(". 3001:4001(1000) ack 1")
    wait = s.next_timer_in()
    assert wait == sock.rtt.current()  # the RTO, armed afresh after the probe
    s.advance(wait)
    s.expect(". 1:1001(1000) ack 1")  # a timeout: go back to snd_una
    assert s.stack.counters["tlp_probes"] == 1
    assert s.stack.counters["rto_expired"] == 1


def test_one_segment_in_flight_adds_the_delayed_ack_and_the_rto_caps_it() -> None:
    s, sock = opened()
    sock.send(b"x" * 500, s.now)
    s.pop()
    # 2*SRTT + 200 ms is later than the RTO (SRTT + 4*RTTVAR = 3*RTT): the RTO is armed
    assert sock.rtt.current() < 2 * RTT + WC_DEL_ACK
    assert s.next_timer_in() == sock.rtt.current()
    s.advance(sock.rtt.current())
    s.expect("P. 1:501(500) ack 1")
    assert s.stack.counters["tlp_probes"] == 0 and s.stack.counters["rto_expired"] == 1


def test_one_segment_pto_includes_the_delayed_ack_allowance() -> None:
    s, sock = opened()
    s.advance(RTT)
    # samples of 1/32 s bring SRTT and RTTVAR down until 2*SRTT + 200 ms < RTO floor
    sock.rtt.srtt = RTT / 4
    sock.rtt.rttvar = RTT / 8
    sock.rtt.rto = 1.0
    sock.send(b"x" * 500, s.now)
    s.pop()
    assert s.next_timer_in() == pytest.approx(2 * (RTT / 4) + WC_DEL_ACK, abs=1e-9)
    s.advance(2 * (RTT / 4) + WC_DEL_ACK)
    s.expect(". 1:501(500) ack 1")  # the last segment again
    assert s.stack.counters["tlp_probes"] == 1 and s.stack.counters["rto_expired"] == 0


def test_probe_answered_by_a_dsack_was_not_needed() -> None:
    """The original and the probe both arrived (the ACKs were only slow): the D-SACK
    for the probe ends it without any window reduction."""
    s, sock, _ = flight(4)
    s.advance(2 * RTT)
    s.expect(". 3001:4001(1000) ack 1")
    before = cwnd_ssthresh(sock)
    s.inject(". 1:1(0) ack 4001 win 65535")
    s.inject(". 1:1(0) ack 4001 win 65535 <sack 3001:4001>")
    assert sock.rack is not None and sock.rack.tlp_end is None
    assert s.stack.counters["tlp_recoveries"] == 0
    assert cwnd_ssthresh(sock)[1] == before[1]


def test_probe_that_repaired_a_loss_reduces_the_window_once() -> None:
    s, sock, _ = flight(4, rto_min=1.0)  # (an RTO later than the one-segment PTO)
    s.advance(RTT)
    s.inject(". 1:1(0) ack 3001 win 65535")  # the last segment is lost
    assert armed_in(s, sock) == pytest.approx(2 * RTT + WC_DEL_ACK, abs=1e-9)
    s.advance(armed_in(s, sock))
    s.expect(". 3001:4001(1000) ack 1")
    s.inject(". 1:1(0) ack 4001 win 65535")  # the probe repaired it (no D-SACK)
    assert s.stack.counters["tlp_recoveries"] == 0  # (not known yet: Linux waits too)
    sock.send(b"y" * 1000, s.now)
    s.expect("P. 4001:5001(1000) ack 1")
    cwnd = sock.info()["snd_cwnd"]
    s.inject(". 1:1(0) ack 5001 win 65535")  # an ACK beyond the probe: it was a loss
    assert s.stack.counters["tlp_recoveries"] == 1
    # (slow start counts the ACK's 1000 bytes first, then CUBIC's 0.7)
    assert cwnd_ssthresh(sock) == (int((cwnd + 1000) * 0.7),) * 2
    s.inject(". 1:1(0) ack 5001 win 65535")
    assert s.stack.counters["tlp_recoveries"] == 1  # once


def test_no_probe_without_sack() -> None:
    s, sock, _ = flight(4, sack=False)
    wait = s.next_timer_in()
    assert wait == sock.rtt.current()
    s.advance(wait)
    s.expect(". 1:1001(1000) ack 1")
    assert s.stack.counters["tlp_probes"] == 0
