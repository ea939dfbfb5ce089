"""The out-of-order queue does bounded work and holds bounded memory per segment (issue #15, item 2).

Work is measured by counting the Python-level events (lines and calls) that
``sys.settrace`` reports, not by a clock: an insert that walks or sorts every held
range shows up as events proportional to the queue, whatever the machine's speed.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from tcpscript import A, B, Script

from multisock.stack.tcp import TcpConfig
from multisock.stack.tcp.buffers import OutOfOrder


def _events(work: Callable[[], object]) -> int:
    """How many line and call events ``work`` runs (its own code and what it calls)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += 1
        return tracer

    sys.settrace(tracer)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def _sparse(ooo: OutOfOrder, first: int, n: int) -> None:
    """``n`` 1-byte segments one byte apart, from index ``first``, each followed by a SACK report."""
    for i in range(first, first + n):
        assert ooo.add(2 + 2 * i, b"x")
        ooo.sack_blocks(4, 2 + 2 * i)


def test_insert_and_sack_work_does_not_grow_with_the_queue() -> None:
    ooo = OutOfOrder(limit=4 * 1024 * 1024)
    _sparse(ooo, 0, 500)
    small = _events(lambda: _sparse(ooo, 500, 100))  # 500 ranges held
    _sparse(ooo, 600, 7000)
    large = _events(lambda: _sparse(ooo, 7600, 100))  # 7,600 ranges held (15x as many)
    assert len(ooo.ranges) == 7700
    assert large <= small * 1.5, (small, large)


def test_range_count_is_bounded_and_the_lowest_are_kept() -> None:
    ooo = OutOfOrder(limit=64 * 1024)  # 64 KiB of payload, but each segment costs more than 1 byte
    bound = ooo.max_segments
    assert bound == 64 * 1024 // OutOfOrder.SEGMENT_CHARGE
    # arriving from the top down: each lower arrival prunes the highest segment held
    # (tcp_prune_ofo_queue), so what stays is what rcv_nxt reaches first
    for i in reversed(range(5000)):
        assert ooo.add(2 + 2 * i, b"x")
    assert len(ooo) == bound and ooo.pruned == 5000 - bound
    assert ooo.ranges[0] == (2, 3) and ooo.ranges[-1] == (2 * bound, 2 * bound + 1)
    # arriving bottom up: an arrival above everything held is refused instead
    ooo = OutOfOrder(limit=64 * 1024)
    for i in range(5000):
        ooo.add(2 + 2 * i, b"x")
    assert len(ooo) == len(ooo.ranges) == bound and ooo.dropped == 5000 - bound


def test_small_adjacent_pieces_share_one_segment() -> None:
    ooo = OutOfOrder(limit=64 * 1024)
    for i in range(1000):  # 1-byte segments in order, after a hole
        assert ooo.add(100 + i, bytes([i & 0xFF]))
    assert len(ooo) == 1 and ooo.ranges == [(100, 1100)]
    assert b"".join(ooo.pop_ready(100)) == bytes(i & 0xFF for i in range(1000))


def _union(starts: list[int], ends: list[int]) -> list[tuple[int, int]]:
    """The merged blocks of disjoint sorted segments (asserting that they are)."""
    blocks: list[tuple[int, int]] = []
    for lo, hi in zip(starts, ends, strict=True):
        assert lo < hi and (not blocks or blocks[-1][1] <= lo)
        if blocks and blocks[-1][1] == lo:
            blocks[-1] = (blocks[-1][0], hi)
        else:
            blocks.append((lo, hi))
    return blocks


def test_random_arrivals_reassemble_exactly_with_right_sack_blocks() -> None:
    rng = random.Random(15)
    stream = bytes(rng.randrange(256) for _ in range(20000))
    for limit in (1 << 22, 6000):
        ooo = OutOfOrder(limit)
        rcv_nxt = 0
        out = bytearray()
        for _ in range(3000):
            start = rng.randrange(rcv_nxt, rcv_nxt + 3000)
            size = rng.choice((1, 2, 7, 100, 536, 1460, 4000))
            end = min(start + size, len(stream))
            if end <= start:
                continue
            if start == rcv_nxt and rng.random() < 0.1:  # the hole is filled now and then
                out += stream[start:end]
                rcv_nxt = end
                for chunk in ooo.pop_ready(rcv_nxt):
                    out += chunk
                    rcv_nxt += len(chunk)
                continue
            kept = ooo.add(start, memoryview(stream)[start:end])
            assert ooo.ranges == _union(ooo.starts, ooo.ends)
            assert ooo.size == sum(hi - lo for lo, hi in ooo.ranges) <= limit
            assert len(ooo) <= ooo.max_segments
            for lo, hi, data in zip(ooo.starts, ooo.ends, ooo.datas, strict=True):
                assert data == stream[lo:hi]
            blocks = ooo.sack_blocks(4, start)
            assert len(set(blocks)) == len(blocks) <= 4
            assert all(b in ooo.ranges for b in blocks)
            if kept:
                assert blocks[0][0] <= start < blocks[0][1]  # RFC 2018: the latest arrival first
        out += stream[rcv_nxt:]
        rcv_nxt = len(stream)
        for chunk in ooo.pop_ready(rcv_nxt):
            rcv_nxt += len(chunk)
        assert bytes(out) == stream and ooo.size == 0 and not ooo.ranges


def test_ten_thousand_sparse_segments_through_a_connection() -> None:
    s = Script(TcpConfig(quickack_segments=0))
    sock = s.passive_open(syn_opts="<mss 1460,sackOK,nop,wscale 7>")
    segments = [s.build(f"P. {2 + 2 * i}:{3 + 2 * i}(1) ack 1 win 65535") for i in range(10000)]
    work = _events(lambda: [s.stack.input(B, A, memoryview(seg), s.now) for seg in segments[:100]])
    for seg in segments[100:9900]:
        s.stack.input(B, A, memoryview(seg), s.now)
    s.host.sent.clear()
    later = _events(lambda: [s.stack.input(B, A, memoryview(seg), s.now) for seg in segments[9900:]])
    assert later <= work * 1.5, (work, later)
    bound = sock.ooo.max_segments
    assert len(sock.ooo) == bound and sock.info()["ooo_dropped"] == 10000 - bound
    # the ACK of the last held arrival reports it first; a refused one is not reported
    s.host.sent.clear()
    s.inject(f"P. {2 * bound}:{2 * bound + 1}(1) ack 1 win 65535")
    s.expect(f". 1:1(0) ack 1 <sack {2 * bound}:{2 * bound + 1} {2 * bound - 2}:{2 * bound - 1} "
             f"{2 * bound - 4}:{2 * bound - 3} {2 * bound - 6}:{2 * bound - 5}>")
    # filling the holes one by one delivers exactly the bytes of both
    for i in range(bound):
        s.inject(f"P. {1 + 2 * i}:{2 + 2 * i}(1) ack 1 win 65535", b"h")
    assert sock.readable_bytes == 2 * bound and len(sock.ooo) == 0 and not sock.ooo.ranges
    buf = bytearray(2 * bound)
    assert sock.recv_into(memoryview(buf), s.now) == 2 * bound
    # build() fills each segment with its own sequence number's low byte
    expected = b"".join(b"h" + bytes([(s.peer_isn + 2 + 2 * i) & 0xFF]) for i in range(bound))
    assert bytes(buf) == expected
