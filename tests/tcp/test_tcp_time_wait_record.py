"""TIME-WAIT after the application closed: the compact record (stack/tcp/timewait.py).

The record must behave as the full control block did in TIME-WAIT: answer a retransmitted
FIN, hold the 4-tuple and the port, expire after 2*MSL, and let a newer SYN reopen it.
"""

from __future__ import annotations

import errno
import gc
import socket
from typing import Any

import pytest
from tcpnet import A
from tcpscript import Script, assert_time_wait_over, freed_later

from multisock.stack.tcp import TcpConfig, TcpState
from multisock.stack.tcp.timewait import TimeWait


def _closed_into_time_wait(s: Script, syn_opts: str = "<mss 1460>") -> object:
    """A passive open whose application closes first; the peer's FIN ends in TIME-WAIT."""
    sock = s.passive_open(syn_opts=syn_opts)
    sock.close(s.now)
    s.pop()  # our FIN
    ts = " <TS val 200 ecr *>" if "TS" in syn_opts else ""
    s.inject(f"F. 1:1(0) ack 2 win 65535{ts}")
    s.pop()  # our ACK of their FIN
    assert sock.state is TcpState.TIME_WAIT
    return sock


def _record(s: Script) -> TimeWait:
    (conn,) = s.stack.conns.values()
    assert isinstance(conn, TimeWait)
    return conn


def test_a_closed_connection_in_time_wait_becomes_a_record() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    sock = _closed_into_time_wait(s)
    record = _record(s)
    assert record.state is TcpState.TIME_WAIT
    assert record.local == sock.local and record.remote == sock.remote  # type: ignore[attr-defined]
    # the port table holds the record, not the block
    assert record in s.stack.ports.by_port[8080] and sock not in s.stack.ports.by_port[8080]
    # the stack no longer keeps the block alive (the record points back weakly); the
    # block's last timer entry (its FIN's retransmission) is stale and goes at its time
    freed = freed_later(sock)
    del sock
    s.sock = None
    s.advance(1.5)
    gc.collect()
    assert freed()
    # the ss-like table shows the record, without TCP_INFO (like ss for TIME-WAIT sockets)
    (row,) = s.stack.connections()[1:]  # the listener comes first
    assert row["state"] == "TIME_WAIT" and row["info"] is None
    assert row["local"] == "10.0.0.1:8080"
    # the block's final row went to the history when the record replaced it
    (final,) = list(s.stack.history)
    assert final["state"] == "TIME_WAIT" and final["info"]["segs_out"] >= 2


def test_record_acks_a_retransmitted_fin_and_restarts_two_msl() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    sock = _closed_into_time_wait(s)
    s.advance(1.9)
    assert sock.state is TcpState.TIME_WAIT  # type: ignore[attr-defined]
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.expect(". 2:2(0) ack 2")
    s.advance(1.9)  # 3.8 s after entering: alive only because the FIN restarted the wait
    assert isinstance(_record(s), TimeWait)
    s.advance(0.2)
    assert not s.stack.conns
    assert_time_wait_over(s.stack, sock)
    s.expect_none()


def test_record_ignores_a_pure_ack_and_acks_stray_data() -> None:
    s = Script()
    _closed_into_time_wait(s)
    s.inject(". 1:1(0) ack 2 win 65535")
    s.expect_none()
    s.inject("P. 1:4(3) ack 2 win 65535", b"abc")
    s.expect(". 2:2(0) ack 2")


def test_record_holds_the_port_until_it_expires() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    _closed_into_time_wait(s)
    assert s.listener is not None
    s.listener.close(s.now)
    other = s.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        other.bind(A, 8080)
    assert info.value.errno == errno.EADDRINUSE
    reuse = s.stack.socket(socket.AF_INET)
    reuse.reuseaddr = True
    reuse.bind(A, 8080)  # SO_REUSEADDR may rebind over TIME-WAIT, as on Linux
    reuse.close(s.now)
    s.advance(2.1)
    assert not s.stack.conns
    other.bind(A, 8080)


def test_record_blocks_the_four_tuple_for_an_active_opener() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    sock = s.active_open()
    port = sock.local_port
    sock.close(s.now)
    s.expect("F. 1:1(0) ack 1")
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.expect(". 2:2(0) ack 2")
    assert isinstance(_record(s), TimeWait)
    again = s.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        again.bind(A, port)
    assert info.value.errno == errno.EADDRINUSE
    # the peer's retransmitted FIN still reaches the record through the 4-tuple
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.expect(". 2:2(0) ack 2")


def test_newer_syn_reopens_through_the_listener() -> None:
    s = Script()
    sock = _closed_into_time_wait(s)
    s.inject("S 100000:100000(0) win 65535 <mss 1460>")
    hdr, _ = s.pop()
    assert hdr.flags == 0x12  # SYN-ACK from the listener: a new incarnation
    assert s.stack.counters["time_wait_recycled"] == 1
    assert_time_wait_over(s.stack, sock)
    (child,) = s.stack.conns.values()
    assert not isinstance(child, TimeWait) and child.state is TcpState.SYN_RECEIVED


def test_old_syn_gets_a_challenge_ack() -> None:
    s = Script()
    _closed_into_time_wait(s)
    s.inject("S 0:0(0) win 65535 <mss 1460>")  # the old incarnation's ISN: not newer
    s.expect(". 2:2(0) ack 2")
    assert s.stack.counters["challenge_acks"] == 1
    assert isinstance(_record(s), TimeWait)


def test_resets_exact_ends_in_window_is_challenged_other_ignored() -> None:
    s = Script()
    _closed_into_time_wait(s)
    s.inject("R 5:5(0) win 0")  # in the window, not exact
    s.expect(". 2:2(0) ack 2")
    s.inject("R 900000:900000(0) win 0")  # far outside
    s.expect_none()
    assert s.stack.counters["rst_ignored"] == 1
    assert isinstance(_record(s), TimeWait)
    s.inject("R 2:2(0) win 0")  # exactly rcv_nxt
    assert not s.stack.conns
    assert s.stack.counters["resets_received"] == 1


def test_old_timestamp_is_answered_and_dropped() -> None:
    s = Script()
    _closed_into_time_wait(s, syn_opts="<mss 1460,TS val 100 ecr 0>")
    record = _record(s)
    assert record.ts_ok and record.ts_recent == 200
    s.inject("F. 1:1(0) ack 2 win 65535 <TS val 150 ecr *>")  # older than 200: PAWS
    hdr, _ = s.expect(". 2:2(0) ack 2")
    assert hdr.ts_ecr == 200
    assert s.stack.counters["paws_dropped"] == 1


def test_block_still_open_keeps_its_time_wait_until_closed() -> None:
    s = Script()
    sock = s.passive_open()
    sock.shutdown(socket.SHUT_WR, s.now)
    s.pop()
    s.inject("F. 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    (conn,) = s.stack.conns.values()
    assert conn is sock  # the application may still read: the full block stays
    sock.close(s.now)
    assert isinstance(_record(s), TimeWait)


def _another_connection(s: Script) -> Any:
    """A further connection to the script's listener, from the next peer port."""
    s.peer_port += 1
    s.local_isn = None  # learnt again from this connection's SYN-ACK
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.pop()
    s.inject(". 1:1(0) ack 1 win 65535")
    return s.accept()


def _close_it(s: Script, sock: Any) -> None:
    sock.close(s.now)
    s.pop()  # our FIN
    s.inject("F. 1:1(0) ack 2 win 65535")
    s.pop()  # our ACK


def test_records_expire_in_order_behind_one_timer_entry() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    first = _closed_into_time_wait(s)
    s.advance(0.5)
    second = _another_connection(s)
    _close_it(s, second)
    assert len(s.stack.time_wait) == 2
    s.advance(1.6)  # 2.1 s after the first entered, 1.6 s after the second
    assert_time_wait_over(s.stack, first)
    assert second.state is TcpState.TIME_WAIT and len(s.stack.conns) == 1
    s.advance(0.5)
    assert_time_wait_over(s.stack, second)
    assert not s.stack.conns and len(s.stack.time_wait) == 0
    # the records were never timer-heap entries of their own: one entry served both
    assert all(not isinstance(entry[2], TimeWait) for entry in s.stack.timers._heap)


def test_block_closed_late_in_time_wait_still_expires_on_time() -> None:
    s = Script(TcpConfig(quickack_segments=0, msl=1.0))
    held = s.passive_open()
    held.shutdown(socket.SHUT_WR, s.now)
    s.pop()
    s.inject("F. 1:1(0) ack 2 win 65535")  # TIME-WAIT at t=0, the application still holds it
    s.pop()
    s.advance(0.1)
    other = _another_connection(s)
    _close_it(s, other)  # a record queued at t=0.1
    s.advance(0.5)
    held.close(s.now)  # a record too now, but its wait started at t=0: it goes first
    assert len(s.stack.time_wait) == 2
    s.advance(1.45)  # t=2.05
    assert_time_wait_over(s.stack, held)
    assert other.state is TcpState.TIME_WAIT and len(s.stack.conns) == 1
    s.advance(0.1)
    assert_time_wait_over(s.stack, other)


def test_history_keeps_the_final_row_of_a_finished_connection() -> None:
    s = Script()
    sock = s.passive_open()
    assert sock.send(b"hello", s.now) == 5
    s.pop()
    s.inject(". 1:1(0) ack 6 win 65535")
    s.inject("F. 1:1(0) ack 6 win 65535")  # the peer closes first: we go to LAST-ACK
    s.pop()
    sock.close(s.now)
    s.pop()
    before = sock.info()
    s.inject(". 2:2(0) ack 7 win 65535")
    assert sock.state is TcpState.CLOSED
    (row,) = list(s.stack.history)
    assert row["state"] == "CLOSED"
    assert row["local"] == "10.0.0.1:8080" and row["remote"] == f"10.0.0.2:{s.peer_port}"
    info = row["info"]
    assert info["bytes_sent"] == 5 and info["bytes_acked"] == 5
    assert info["rto"] == before["rto"] and info["snd_mss"] == before["snd_mss"]
    assert info["segs_out"] == before["segs_out"] and info["segs_in"] == before["segs_in"] + 1
    assert s.stack.history[0] == row and len(s.stack.history) == 1
