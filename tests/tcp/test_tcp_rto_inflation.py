"""The retransmission timeout on a fast path stays small after a handshake that lost a
segment. A repeated SYN-ACK (or SYN) is answered with the first copy's TSval echoed (the
peer's TS.Recent does not move for an out-of-window duplicate, RFC 7323 §4.3), and taking
"now minus that" as a round trip made srtt 1 s on a 1 ms path; RFC 6298's variance then
grew as the real samples fell, to an RTO of 3.4 s, and a 10%-loss transfer stalled for
seconds in recovery waiting for it. Fake clocks only."""

from __future__ import annotations

import sys

import pytest
from tcpnet import Wire
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpSocket
from multisock.stack.tcp.rtt import RttEstimator


def test_repeated_synack_answered_with_the_first_copys_echo_is_no_rtt_sample() -> None:
    s = Script()
    s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>")
    first, _ = s.pop()  # the SYN-ACK; its completing ACK is lost
    assert first.ts_val is not None
    s.advance(1.0)  # the SYN-ACK timer fires: the copy
    s.expect("S. 0:0(0) ack 1")
    s.advance(0.002)
    # an established peer answers the duplicate SYN-ACK echoing TS.Recent: the first copy
    s.inject(f". 1:1(0) ack 1 win 512 <TS val 1102 ecr {first.ts_val}>")
    sock = s.accept()
    assert sock.rtt.srtt is None  # not 1.002 s: that was the outage, not a round trip
    assert sock.rtt.backoff == 0
    sock.send(b"x" * 100, s.now)
    data, _ = s.expect("P. 1:101(100) ack 1")
    s.advance(0.002)
    s.inject(f". 1:1(0) ack 101 win 512 <TS val 1104 ecr {data.ts_val}>")
    assert sock.rtt.srtt == pytest.approx(0.002)
    assert sock.info()["rto"] == pytest.approx(0.2)  # rto_min, not 3.4 s


def test_repeated_synack_answered_with_its_own_echo_is_a_sample() -> None:
    s = Script()
    s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>")
    s.pop()
    s.advance(1.0)
    again, _ = s.expect("S. 0:0(0) ack 1")
    s.advance(0.003)
    s.inject(f". 1:1(0) ack 1 win 512 <TS val 1103 ecr {again.ts_val}>")
    assert s.accept().rtt.srtt == pytest.approx(0.003, abs=0.0015)  # (ms ticks)


def test_repeated_syn_answered_with_the_first_copys_echo_is_no_rtt_sample() -> None:
    s = Script()
    sock = s.connect()
    first, _ = s.pop()
    assert first.ts_val is not None
    s.advance(1.0)
    s.expect("S 0:0(0)")
    s.advance(0.002)
    # the peer's SYN-ACK to the first SYN was lost; it repeats it, echoing that SYN
    s.inject(f"S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 500 ecr {first.ts_val}>")
    assert sock.state.name == "ESTABLISHED"
    assert sock.rtt.srtt is None and sock.rtt.backoff == 0


def test_a_falling_rtt_never_raises_the_rto() -> None:
    """Linux's estimator damps the variance when samples fall below srtt; RFC 6298's
    plain gain took a 1 s first sample followed by 2 ms ones from an RTO of 3 s to 3.5 s."""
    est = RttEstimator(1.0, 0.2, 120.0)
    est.sample(1.0)
    first = est.rto
    seen = []
    for _ in range(40):
        est.sample(0.002)
        seen.append(est.rto)
    assert max(seen) <= first
    assert seen == sorted(seen, reverse=True)
    assert est.rto == pytest.approx(0.2)
    est.sample(0.5)  # a rising RTT still moves the variance at the full gain
    assert est.rttvar > 0.1


@pytest.mark.parametrize("seed", [1000, 1001, 1006, 1009])
def test_lossy_transfer_keeps_the_rto_near_the_path(seed: int) -> None:
    """10% loss, 1 ms each way, 1 MiB both ways (the seeds whose handshake lost a
    segment): once sampled, the base RTO never exceeds the initial 1 s (it was 3.4-3.5 s).
    Before the first sample it may be RFC 6298 §5.7's 3 s fallback (test_tcp_syn_rto_fallback),
    never more."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from test_tcp_transfer import transfer

    w = Wire(TcpConfig(), mtu=1500, delay=0.001, loss=0.1, seed=seed)
    worst = [0.0]
    step = w.step

    def watched() -> bool:
        more = step()
        for stack in (w.a, w.b):
            for sock in stack.conns.values():
                if not isinstance(sock, TcpSocket):
                    continue
                if sock.rtt.srtt is None:
                    assert sock.rtt.rto <= 3.0
                elif sock.rtt.rto > worst[0]:
                    worst[0] = sock.rtt.rto
        return more

    w.step = watched  # type: ignore[method-assign]
    transfer(w, 1 << 20, both_ways=True)
    assert worst[0] <= 1.0
