"""Connection tracking on a fake clock: states, TCP timeouts, RELATED errors, the bound."""

from __future__ import annotations

import struct

import pytest

from multisock.security import conntrack as C
from multisock.security.flow import ACK, FIN, RST, SYN, Flow, quoted

A, B, X = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 9])


def tcp(src: bytes, dst: bytes, sport: int, dport: int, flags: int) -> Flow:
    flow = Flow(6, src, dst, memoryview(b""), 40, "eth0")
    flow.sport, flow.dport, flow.flags = sport, dport, flags
    return flow


def udp(src: bytes, dst: bytes, sport: int, dport: int) -> Flow:
    flow = Flow(17, src, dst, memoryview(b""), 28, "eth0")
    flow.sport, flow.dport = sport, dport
    return flow


def test_tcp_handshake_data_and_close_move_through_the_states() -> None:
    ct = C.ConnTrack()
    info, conn, d = ct.track(tcp(A, B, 1000, 80, SYN), 0.0)
    assert (info, d) == (C.NEW, 0) and conn is not None and conn.tcp == C.SYN_SENT
    assert conn.expires == 120.0  # Linux's SYN_SENT timeout
    assert ct.track(tcp(A, B, 1000, 80, SYN), 1.0)[0] == C.NEW  # a retransmitted SYN
    info, _, d = ct.track(tcp(B, A, 80, 1000, SYN | ACK), 1.0)
    assert (info, d, conn.tcp) == (C.ESTABLISHED, 1, C.SYN_RECV)
    assert ct.track(tcp(A, B, 1000, 80, ACK), 1.0)[0] == C.ESTABLISHED
    assert conn.tcp == C.ESTABLISHED_TCP and conn.assured
    assert conn.expires == 1.0 + 432000.0
    ct.track(tcp(A, B, 1000, 80, FIN | ACK), 2.0)
    assert conn.tcp == C.FIN_WAIT and conn.expires == 2.0 + 120.0
    ct.track(tcp(B, A, 80, 1000, FIN | ACK), 2.0)
    assert conn.tcp == C.LAST_ACK and conn.expires == 2.0 + 30.0
    ct.track(tcp(A, B, 1000, 80, ACK), 2.0)
    assert conn.tcp == C.TIME_WAIT and conn.expires == 2.0 + 120.0
    # after TIME_WAIT's timeout the entry is gone: a bare ACK then is picked up anew (loose)
    info, again, _ = ct.track(tcp(A, B, 1000, 80, ACK), 200.0)
    assert again is not conn and ct.counters["expired"] == 1 and info == C.NEW


def test_a_new_syn_reopens_a_closed_tuple_and_rst_closes() -> None:
    ct = C.ConnTrack()
    _, conn, _ = ct.track(tcp(A, B, 1, 2, SYN), 0.0)
    assert conn is not None
    ct.track(tcp(B, A, 2, 1, RST | ACK), 0.1)
    assert conn.tcp == C.CLOSE and conn.expires == pytest.approx(10.1)
    info, same, _ = ct.track(tcp(A, B, 1, 2, SYN), 0.2)
    assert info == C.NEW and same is conn and conn.tcp == C.SYN_SENT


def test_invalid_segments() -> None:
    ct = C.ConnTrack(loose=False)
    assert ct.track(tcp(A, B, 1, 2, ACK), 0.0)[0] == C.INVALID  # not picked up mid-stream
    assert ct.track(tcp(A, B, 1, 2, RST), 0.0)[0] == C.INVALID
    assert ct.track(tcp(A, B, 1, 2, SYN | FIN), 0.0)[0] == C.INVALID  # never valid
    ct.track(tcp(A, B, 1, 2, SYN), 0.0)
    assert ct.track(tcp(A, B, 1, 2, SYN | RST), 0.0)[0] == C.INVALID
    assert ct.track(tcp(A, B, 1, 2, 0), 0.0)[0] == C.INVALID  # a NULL segment
    assert ct.track(tcp(A, B, 1, 2, ACK), 0.0)[0] == C.INVALID  # ACK before the SYN-ACK
    assert ct.count == 1 and ct.counters["invalid"] == 6
    loose = C.ConnTrack()
    assert loose.track(tcp(A, B, 1, 2, ACK), 0.0)[0] == C.NEW  # Linux's tcp_loose=1


def test_udp_is_new_until_replied_then_established_with_the_stream_timeout() -> None:
    ct = C.ConnTrack()
    info, conn, _ = ct.track(udp(A, B, 5000, 53), 0.0)
    assert info == C.NEW and conn is not None and conn.expires == 30.0
    assert ct.track(udp(A, B, 5000, 53), 1.0)[0] == C.NEW
    assert ct.track(udp(B, A, 53, 5000), 2.0)[:3:2] == (C.ESTABLISHED, 1)
    assert conn.expires == 32.0
    ct.track(udp(B, A, 53, 5000), 3.0)  # traffic after the reply: assured, the longer timeout
    assert conn.assured and conn.expires == 3.0 + 120.0
    assert ct.track(udp(B, A, 53, 5000), 200.0)[0] == C.NEW  # expired: a new flow the other way


def _icmp_error_about(inner_src: bytes, inner_dst: bytes, sport: int, dport: int) -> Flow:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, inner_src, inner_dst)
    body = memoryview(ip + struct.pack("!HHHH", sport, dport, 8, 0))
    flow = Flow(1, X, inner_src, memoryview(b""), 56, "eth0")
    flow.itype, flow.icode = 3, 3
    flow.inner = quoted(body, False)
    return flow


def test_icmp_errors_about_a_tracked_flow_are_related_others_invalid() -> None:
    ct = C.ConnTrack()
    ct.track(udp(A, B, 5000, 53), 0.0)
    assert ct.track(_icmp_error_about(A, B, 5000, 53), 0.5)[0] == C.RELATED
    assert ct.track(_icmp_error_about(A, B, 5000, 54), 0.5)[0] == C.INVALID
    assert ct.counters["related"] == 1


def test_echo_reply_without_request_is_invalid() -> None:
    ct = C.ConnTrack()
    reply = Flow(1, B, A, memoryview(b""), 84, "eth0")
    reply.itype, reply.sport, reply.dport = 0, 7, 7
    assert ct.track(reply, 0.0)[0] == C.INVALID
    request = Flow(1, A, B, memoryview(b""), 84, "eth0")
    request.itype, request.sport, request.dport = 8, 7, 7
    assert ct.track(request, 0.0)[0] == C.NEW
    assert ct.track(reply, 0.0)[0] == C.ESTABLISHED


def test_the_table_is_bounded_early_drop_then_refusal_counted() -> None:
    ct = C.ConnTrack(max_entries=4)
    for port in range(4):
        ct.track(udp(A, B, 1000 + port, 53), 0.0)
    assert ct.count == 4
    # full: the oldest unreplied entry makes room (early drop)
    info, _, d = ct.track(udp(A, B, 2000, 53), 1.0)
    assert info == C.NEW and d == 0 and ct.count == 4 and ct.counters["early_drop"] == 1
    # make every entry assured (replied both ways more than once): nothing may be dropped
    for conn in list(ct._order):
        conn.assured = True
    info, conn, d = ct.track(udp(A, B, 3000, 53), 2.0)
    assert (info, conn, d) == (C.INVALID, None, -1) and ct.counters["table_full"] == 1
    # once they expire, room appears again
    assert ct.track(udp(A, B, 3000, 53), 500.0)[0] == C.NEW
    assert ct.count <= 4


def test_memory_follows_live_connections_without_lookups() -> None:
    """Expired entries are swept as new ones arrive, not kept until looked up."""
    ct = C.ConnTrack()
    for port in range(1000):
        ct.track(udp(A, B, port, 53), float(port))  # each lives 30 s
    assert ct.count < 100
    assert len(ct._order) < 200
