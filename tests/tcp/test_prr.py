"""Proportional Rate Reduction (RFC 6937) during SACK recovery: cwnd is set on each ACK
to pipe + sndcnt, where sndcnt is the proportional share of what was delivered while
the pipe is above ssthresh, and PRR-SSRB's bound (delivered + 1 MSS) below it."""

from __future__ import annotations

from rackflight import RTT, cwnd_ssthresh, flight, sacked

from multisock.stack.tcp.prr import Prr


def test_recovery_sends_in_proportion_to_what_is_delivered() -> None:
    """Reno (ssthresh = FlightSize/2), ten segments out, segment 1 lost, ten more queued.
    Each ACK SACKs one more segment. Per ACK: what goes out, then cwnd."""
    s, sock, _ = flight(10, queued=10, congestion="reno")
    s.advance(RTT)
    sacked(s, 2001)  # limited transmit (RFC 3042) on the first two duplicates
    sacked(s, 3001)
    assert len(s.pending()) == 4
    s.host.sent.clear()
    # three segments SACKed: RACK says segment 1 is lost. FlightSize (RecoverFS) is
    # 14 segments, ssthresh 7. pipe = 14 - 3 SACKed - 1 lost = 10 > 7: the share is
    # CEIL(1000 * 7/14) = 500 bytes, less than a segment, but the fast retransmit goes
    sacked(s, 4001)
    s.expect(". 1:1001(1000) ack 1")
    s.expect_none()
    assert cwnd_ssthresh(sock) == (11000, 7000)
    expected = [
        # (SACKed up to, sent, cwnd) - prr_delivered grows 1000 per ACK
        (5001, [], 10000),  # CEIL(2000/2) - prr_out 1000 = 0
        (6001, [], 9500),  # 1500 - 1000 = 500: below a segment, nothing goes (SWS)
        (7001, ["14001:15001"], 9000),  # 2000 - 1000 = 1000: one new segment
        (8001, [], 8500),  # 2500 - 2000
        # pipe has come down to ssthresh: PRR-SSRB, min(ssthresh - pipe, ...)
        (9001, [], 7000),  # pipe 7000 = ssthresh: nothing more
        (10001, ["15001:16001"], 7000),  # pipe 6000: one segment brings it to ssthresh
    ]
    for high, sent, cwnd in expected:
        sacked(s, high)
        got = [p.split()[1].split("(")[0] for p in s.pending()]
        s.host.sent.clear()
        assert (high, got, sock.info()["snd_cwnd"]) == (high, sent, cwnd)
    assert sock.prr is not None
    assert (sock.prr.delivered, sock.prr.out) == (7000, 3000)
    # the hole is filled: recovery ends (everything up to `recover` acknowledged) and
    # cwnd is ssthresh
    s.advance(RTT)
    s.inject(". 1:1(0) ack 16001 win 65535")
    info = sock.info()
    assert info["ca_state"] == "open" and cwnd_ssthresh(sock) == (7000, 7000)


def test_ssrb_catches_up_by_at_most_delivered_plus_one_segment() -> None:
    prr = Prr()
    prr.start(10_000)
    prr.out = 1000  # the fast retransmit went
    # pipe far below ssthresh (5000): the bound is what this ACK delivered + 1 MSS...
    assert prr.sndcnt(1000, pipe=1000, ssthresh=5000, mss=1000) == 2000
    # ...or what was delivered and not yet sent, if larger
    prr.out = 1000
    assert prr.sndcnt(500, pipe=1000, ssthresh=5000, mss=1000) == 1500
    # never beyond ssthresh
    assert prr.sndcnt(4000, pipe=4500, ssthresh=5000, mss=1000) == 500


def test_proportional_part_rounds_up_and_never_goes_negative() -> None:
    prr = Prr()
    prr.start(3000)
    prr.out = 1000
    assert prr.sndcnt(1000, pipe=3000, ssthresh=2000, mss=1000) == 0  # CEIL(666.7) - 1000
    assert prr.sndcnt(1, pipe=3000, ssthresh=2000, mss=1000) == 0  # CEIL(667.3) = 668
    assert prr.delivered == 1001
    assert prr.sndcnt(1000, pipe=2500, ssthresh=2000, mss=1000) == 334  # 2001*2/3 - 1000


def test_first_ack_of_recovery_always_allows_the_fast_retransmit() -> None:
    prr = Prr()
    prr.start(100_000)
    assert prr.sndcnt(0, pipe=90_000, ssthresh=50_000, mss=1460) == 1460
    prr.out = 1460
    assert prr.sndcnt(0, pipe=90_000, ssthresh=50_000, mss=1460) == 0
