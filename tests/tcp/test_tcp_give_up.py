"""Waits that must end (issue #15 items 4 and 5): zero-window probes to a dead peer, and
TCP_USER_TIMEOUT firing when it elapses. Linux's rules: tcp_probe_timer counts unanswered
probes against tcp_retries2 (an orphan against tcp_orphan_retries, or until its backoff
reaches TCP_RTO_MAX), TCP_USER_TIMEOUT bounds the time the window stays shut, and both the
retransmission and the probe timer are clamped to the user timeout
(tcp_clamp_rto_to_user_timeout, tcp_clamp_probe0_to_user_timeout). The clock is fake."""

from __future__ import annotations

import errno

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpState

PROBE = ". 0:0(0) ack 1"  # seq one below snd_una: forces the peer to answer


def _zero_window(s: Script, **options: object):  # type: ignore[no-untyped-def]
    sock = s.active_open(**options)
    s.inject(". 1:1(0) ack 1 win 0")
    assert sock.send(b"z" * 100, s.now) == 100
    s.expect_none()
    return sock


def _next_expiry(s: Script) -> None:
    wait = s.next_timer_in()
    assert wait is not None, "no timer armed"
    s.advance(wait)


def test_zero_window_probes_to_a_dead_peer_end_with_etimedout() -> None:
    """Before: 56 probes over 6,000 s and counting, the sender blocked for ever."""
    s = Script()
    sock = _zero_window(s)
    s.advance(3 * 3600.0)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT
    assert s.stack.counters["window_probes"] == s.config.retries2
    probes = s.pending()
    assert len(probes) == s.config.retries2 and set(probes) == {probes[0]}
    s.host.sent.clear()
    s.advance(3600.0)
    s.expect_none()  # nothing left that fires
    assert s.next_timer_in() is None


def test_answered_probes_keep_the_connection_and_unanswered_ones_end_it() -> None:
    """RFC 1122 4.2.2.17: a receiver that keeps answering keeps the sender waiting; the
    count is of unanswered probes (any acceptable ACK resets it, as in Linux)."""
    s = Script(TcpConfig(quickack_segments=0, retries2=4))
    sock = _zero_window(s)
    for _ in range(10):  # more than retries2, each answered
        _next_expiry(s)
        s.expect(PROBE)
        s.inject(". 1:1(0) ack 1 win 0")
    assert sock.state is TcpState.ESTABLISHED
    for _ in range(4):  # the peer is gone
        _next_expiry(s)
        s.expect(PROBE)
        assert sock.state is TcpState.ESTABLISHED
    _next_expiry(s)
    s.expect_none()
    assert sock.state is TcpState.CLOSED
    with pytest.raises(TimeoutError):  # what a sender blocked in sendall() wakes up to
        sock.send(b"more", s.now)


def test_user_timeout_bounds_a_zero_window_even_when_the_peer_answers() -> None:
    """TCP_USER_TIMEOUT counts from the first probe; answers that leave the window shut do
    not restart it (Linux 5.12+), and the probe timer is clamped to fire when it elapses."""
    s = Script()
    sock = _zero_window(s, user_timeout=5000)
    _next_expiry(s)
    first = s.now
    assert first == pytest.approx(0.2)
    s.expect(PROBE)
    s.inject(". 1:1(0) ack 1 win 0")
    for _ in range(3):  # probes at 0.6, 1.4, 3.0 s: all answered
        _next_expiry(s)
        s.expect(PROBE)
        s.inject(". 1:1(0) ack 1 win 0")
    assert s.now == pytest.approx(3.0)
    assert s.next_timer_in() == pytest.approx(first + 5.0 - s.now)  # not the backoff's 3.2 s
    s.advance(first + 5.0 - s.now - 0.001)
    assert sock.state is TcpState.ESTABLISHED
    s.advance(0.002)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_a_window_that_opens_restarts_the_user_timeout() -> None:
    """The user timeout measures how long the window has stayed shut: a window that opened
    (even too little to send into, SWS avoidance) starts the count again."""
    s = Script()
    sock = _zero_window(s, user_timeout=2000)
    _next_expiry(s)
    s.expect(PROBE)  # at 0.2 s: the count starts
    s.advance(0.1)
    s.inject(". 1:1(0) ack 1 win 50")  # opens, too little for 100 bytes: nothing is sent
    s.inject(". 1:1(0) ack 1 win 0")  # and shuts again
    s.expect_none()
    s.advance(2.3 - s.now)  # 2.1 s after the first probe
    assert sock.state is TcpState.ESTABLISHED
    assert len(s.pending()) == 3  # probes at 0.5, 0.9 and 1.7 s
    s.advance(2.501 - s.now)  # 2 s after the first probe after the window shut again
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_an_orphan_behind_a_zero_window_gives_up_after_orphan_retries() -> None:
    """close() with data queued behind a zero window: Linux kills the orphan after
    tcp_orphan_retries probes (0 means 8 while its backoff is below TCP_RTO_MAX)."""
    s = Script()
    sock = _zero_window(s)
    sock.close(s.now)
    s.advance(3 * 3600.0)
    assert sock.state is TcpState.CLOSED
    assert s.stack.counters["window_probes"] == 8 < s.config.retries2


def test_an_orphan_whose_backoff_reached_the_maximum_gives_up_at_once() -> None:
    s = Script(TcpConfig(quickack_segments=0, rto_max=1.0))
    sock = _zero_window(s)
    sock.close(s.now)
    s.advance(3600.0)
    assert sock.state is TcpState.CLOSED
    # 0.2, 0.4, 0.8 s, then the backoff hits rto_max (1 s): no more probes
    assert s.stack.counters["window_probes"] == 3


def test_user_timeout_fires_when_it_elapses_not_at_the_next_backoff() -> None:
    """TCP_USER_TIMEOUT 5000 ms: the retransmissions come at 0.2, 0.6, 1.4 and 3.0 s; the
    next backed-off expiry would be 6.2 s. Linux aborts at 5.0 s after the unacknowledged
    segment left."""
    s = Script()
    sock = s.active_open(user_timeout=5000)
    s.advance(1.0)
    sent = s.now
    sock.send(b"x" * 100, s.now)
    s.expect("P. 1:101(100) ack 1")
    s.advance(5.0 - 0.001)
    assert sock.state is TcpState.ESTABLISHED
    assert len(s.pending()) == 4  # four retransmissions
    s.advance(0.002)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT
    assert s.now - sent == pytest.approx(5.001)


def test_user_timeout_shorter_than_the_rto_fires_at_the_first_expiry() -> None:
    s = Script()
    sock = s.active_open(user_timeout=100)
    sock.send(b"x", s.now)
    s.expect("P. 1:2(1) ack 1")
    s.advance(0.199)
    assert sock.state is TcpState.ESTABLISHED
    s.advance(0.002)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_user_timeout_of_data_does_not_count_the_handshakes_retransmissions() -> None:
    s = Script()
    sock = s.connect(user_timeout=5000)
    s.expect("S 0:0(0)")
    s.advance(1.0)
    s.expect("S 0:0(0)")  # the first SYN was lost
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s.expect(". 1:1(0) ack 1")
    sock.send(b"x", s.now)  # at 1 s; RTO 1 s (no sample from a retransmitted SYN)
    s.expect("P. 1:2(1) ack 1")
    s.advance(5.0 - 0.001)
    assert sock.state is TcpState.ESTABLISHED
    s.advance(0.002)
    assert sock.state is TcpState.CLOSED and sock.pending_error == errno.ETIMEDOUT


def test_a_sender_blocked_in_sendall_by_a_dead_zero_window_peer_gets_etimedout() -> None:
    """Through the socket API: the server never reads (zero window), then its link goes
    down. The clock is ours; each step moves it on and runs the due timers."""
    import socket
    import threading

    from multisock.net.network import Network

    clock = [100.0]
    net = Network(seed=3, clock=lambda: clock[0])
    try:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b)
        server = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        server.bind(("10.0.0.2", 80))
        server.listen(1)
        client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        client.connect(("10.0.0.2", 80))
        conn, _ = server.accept()
        outcome: list[BaseException | None] = []

        def sender() -> None:
            try:
                client.sendall(b"x" * (4 << 20))
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        tcp = a.ip.tcp
        for _ in range(1000):  # the window fills and shuts (no data moves while we wait)
            thread.join(0.01)
            if tcp.counters["window_probes"] or not thread.is_alive():
                break
            with net.driver.lock:
                clock[0] += 0.1
                net.driver.run_due()
        assert thread.is_alive(), outcome
        link.down()
        for _ in range(200):  # 200 steps of 60 s: longer than any backoff needs
            with net.driver.lock:
                clock[0] += 60.0
                net.driver.run_due()
            thread.join(0.01)
            if not thread.is_alive():
                break
        thread.join(5.0)
        assert not thread.is_alive(), "sendall is still blocked"
        assert isinstance(outcome[0], TimeoutError) and outcome[0].errno == errno.ETIMEDOUT
        assert tcp.counters["window_probes"] <= TcpConfig().retries2 + 1
        conn.close()
        server.close()
        client.close()
    finally:
        net.close()
