"""Write readiness as Linux's tcp_poll computes it (``__sk_stream_is_writeable``): writable
only while the free send-buffer space is at least half of what is queued (at most 2/3 of the
buffer full), while ``send`` still takes whatever fits; and one wakeup when an ACK makes the
socket writable, not one per ACK. Before, any free byte made it writable and every ACK
called the socket's change callback. Scripted segments, fake clock."""

from __future__ import annotations

from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpSocket

SNDBUF = 3000


def _full() -> tuple[Script, TcpSocket, list[int]]:
    """An established socket whose 3000-byte send buffer is all in flight, unacknowledged;
    a counter of its change callbacks."""
    s = Script(TcpConfig(quickack_segments=0, timestamps=False, sack=False))
    sock = s.active_open(sndbuf=SNDBUF, nodelay=True)
    calls: list[int] = []
    sock.on_change = lambda: calls.append(1)
    assert sock.send(b"a" * 5000, s.now) == SNDBUF
    assert sum(len(s.pop()[1]) for _ in range(3)) == SNDBUF
    s.expect_none()
    return s, sock, calls


def test_writable_only_once_two_thirds_or_less_is_queued_with_one_wakeup() -> None:
    s, sock, calls = _full()
    assert not sock.writable
    seen = []
    for acked in range(100, 1100, 100):
        s.inject(f". 1:1(0) ack {acked + 1} win 65535")
        seen.append((sock.sndq.size, sock.writable))
    # free >= queued / 2 first at 1000 bytes acknowledged: 2000 queued, 1000 free
    assert seen == [(SNDBUF - a, a == 1000) for a in range(100, 1100, 100)]
    assert len(calls) == 1  # (before: one per ACK, 10)


def test_send_takes_what_fits_while_poll_says_not_writable() -> None:
    s, sock, _ = _full()
    s.inject(". 1:1(0) ack 301 win 65535")
    assert not sock.writable and sock.can_queue
    assert sock.send(b"b" * 1000, s.now) == 300  # Linux's tcp_sendmsg: any free space
    assert not sock.can_queue and sock.send(b"c", s.now) == 0


def test_no_wakeup_while_nobody_found_the_buffer_full() -> None:
    s = Script(TcpConfig(quickack_segments=0, timestamps=False, sack=False))
    sock = s.active_open(sndbuf=SNDBUF)
    calls: list[int] = []
    sock.on_change = lambda: calls.append(1)
    sock.send(b"a" * 1000, s.now)
    s.pop()
    s.inject(". 1:1(0) ack 1001 win 65535")
    assert calls == []  # room all along: the ACK changes no one's readiness


def test_a_send_that_fills_the_buffer_asks_for_the_wakeup() -> None:
    """A relay that reads the free space itself (the gateway) and never asks ``writable``:
    the send that filled the buffer is what asks for the wakeup."""
    s = Script(TcpConfig(quickack_segments=0, timestamps=False, sack=False))
    sock = s.active_open(sndbuf=SNDBUF)
    calls: list[int] = []
    sock.on_change = lambda: calls.append(1)
    assert sock.send(b"a" * SNDBUF, s.now) == SNDBUF
    s.inject(". 1:1(0) ack 1001 win 65535")
    assert len(calls) == 1
