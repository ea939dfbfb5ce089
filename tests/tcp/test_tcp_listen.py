"""Listeners: bounded backlog, SYN cookies under a SYN flood, reuseport spreading."""

from __future__ import annotations

import socket

from tcpnet import A, B
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpState
from multisock.stack.tcp.isn import check_cookie, make_cookie
from multisock.wire import tcp as wire


def _syn(s: Script, port: int, isn: int = 5000, mss: int = 1460) -> None:
    seg = wire.build(port, s.local_port, isn, 0, wire.SYN, 65535, mss=mss, sack_permitted=True)
    s.stack.input(B, A, memoryview(seg), s.now)


def _ack(s: Script, port: int, seq: int, ack: int, data: bytes = b"") -> None:
    seg = wire.build(port, s.local_port, seq, ack, wire.ACK | (wire.PSH if data else 0), 65535)
    s.stack.input(B, A, memoryview(seg + data), s.now)


def test_syn_flood_switches_to_cookies_and_a_real_client_still_connects() -> None:
    s = Script(TcpConfig(quickack_segments=0, max_syn_backlog=8))
    lst = s.listen(backlog=8)
    for port in range(20000, 20100):  # spoofed SYNs that never complete
        _syn(s, port)
    assert lst.syn_count == 8
    assert s.stack.counters["syncookies_sent"] == 92
    s.host.sent.clear()
    # a legitimate client: its SYN-ACK is a cookie, its ACK creates the connection
    _syn(s, 30000, isn=777, mss=1200)
    src, dst, seg = s.host.sent.pop()
    hdr, _ = wire.parse(seg)
    assert hdr.flags == wire.SYN | wire.ACK and hdr.ack == 778
    assert hdr.wscale is None and not hdr.sack_permitted  # a cookie keeps only the MSS
    _ack(s, 30000, 778, hdr.seq + 1, b"GET /")
    child = lst.accept()
    assert child is not None and child.state is TcpState.ESTABLISHED
    assert child.readable_bytes == 5
    assert child.info()["snd_mss"] == 536  # the cookie table's largest MSS <= 1200
    assert s.stack.counters["syncookies_recv"] == 1


def test_forged_cookie_ack_gets_rst() -> None:
    s = Script()
    s.listen()
    _ack(s, 30001, 1000, 123456)
    src, dst, seg = s.host.sent.pop()
    hdr, _ = wire.parse(seg)
    assert hdr.flags == wire.RST and hdr.seq == 123456
    assert s.stack.counters["syncookies_failed"] == 1


def test_cookie_roundtrip_and_expiry() -> None:
    secret = b"s" * 32
    c = make_cookie(secret, A, 80, B, 4000, 99, 1460, 100.0)
    assert check_cookie(secret, A, 80, B, 4000, 99, c, 130.0) == 1460
    assert check_cookie(secret, A, 80, B, 4000, 98, c, 130.0) is None  # other ISN
    assert check_cookie(secret, A, 81, B, 4000, 99, c, 130.0) is None  # other port
    assert check_cookie(secret, A, 80, B, 4000, 99, c, 100.0 + 64 * 4) is None  # too old
    assert check_cookie(b"t" * 32, A, 80, B, 4000, 99, c, 130.0) is None


def test_full_accept_queue_drops_syns_and_final_acks() -> None:
    s = Script()
    lst = s.listen(backlog=1)
    _syn(s, 21000, isn=100)
    _, _, seg = s.host.sent.pop()
    h1, _ = wire.parse(seg)
    _ack(s, 21000, 101, h1.seq + 1)
    assert len(lst.accept_queue) == 1
    _syn(s, 21001, isn=200)  # accept queue full: dropped like Linux
    s.expect_none()
    assert s.stack.counters["listen_overflows"] == 1
    child = lst.accept()
    assert child is not None
    _syn(s, 21001, isn=200)
    assert s.host.sent  # room again: answered


def test_cookie_ack_meeting_a_full_accept_queue_is_dropped_not_reset() -> None:
    """Linux (tcp_abort_on_overflow=0): the completing ACK is dropped without RST, so the
    client's retransmission (here: its first data) opens the connection once there is room.
    A burst of connects larger than a small backlog (ThreadingHTTPServer's is 5) hit this."""
    s = Script(TcpConfig(quickack_segments=0, max_syn_backlog=1))
    lst = s.listen(backlog=1)
    _syn(s, 22000, isn=100)  # fills the SYN queue: the next SYN gets a cookie
    _, _, seg = s.host.sent.pop()
    first, _ = wire.parse(seg)
    _syn(s, 22001, isn=200)
    _, _, seg = s.host.sent.pop()
    cookie, _ = wire.parse(seg)
    assert s.stack.counters["syncookies_sent"] == 1
    _ack(s, 22000, 101, first.seq + 1)  # the accept queue is now full
    s.host.sent.clear()
    _ack(s, 22001, 201, cookie.seq + 1)
    assert not s.host.sent, "no RST for a valid cookie when the accept queue is full"
    assert s.stack.counters["listen_overflows"] == 1
    assert lst.accept() is not None
    _ack(s, 22001, 201, cookie.seq + 1, b"GET /")  # the retransmission finds room
    child = lst.accept()
    assert child is not None and child.state is TcpState.ESTABLISHED
    assert child.readable_bytes == 5


def test_backlog_zero_still_accepts_one() -> None:
    s = Script()
    lst = s.listen(backlog=0)
    _syn(s, 21000, isn=100)
    _, _, seg = s.host.sent.pop()
    h1, _ = wire.parse(seg)
    _ack(s, 21000, 101, h1.seq + 1)
    assert lst.accept() is not None


def test_reuseport_listeners_share_connections() -> None:
    s = Script()
    l1 = s.stack.socket(socket.AF_INET)
    l2 = s.stack.socket(socket.AF_INET)
    for sock in (l1, l2):
        sock.reuseport = True
        sock.bind(A, 8080)
        sock.listen(64, s.now)
    s.local_port = 8080
    for port in range(22000, 22040):
        _syn(s, port, isn=port)
        _, _, seg = s.host.sent.pop()
        hdr, _ = wire.parse(seg)
        _ack(s, port, port + 1, hdr.seq + 1)
    assert len(l1.accept_queue) + len(l2.accept_queue) == 40
    assert l1.accept_queue and l2.accept_queue


def test_connection_table_lists_listeners_and_connections() -> None:
    s = Script()
    sock = s.passive_open()
    rows = s.stack.connections()
    states = sorted(r["state"] for r in rows)
    assert states == ["ESTABLISHED", "LISTEN"]
    est = next(r for r in rows if r["state"] == "ESTABLISHED")
    assert est["local"] == "10.0.0.1:8080" and est["remote"] == f"10.0.0.2:{s.peer_port}"
    assert est["info"]["snd_mss"] == sock.info()["snd_mss"]
    from multisock.stack.tcp.info import format_table

    text = format_table(s.stack)
    assert "LISTEN" in text and "ESTABLISHED" in text and "rto:" in text
