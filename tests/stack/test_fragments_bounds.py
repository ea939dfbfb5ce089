"""Reassembly holds bounded memory and does bounded work per fragment (issue #15, item 3).

Work is counted in Python-level trace events (``sys.settrace``), not timed.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable
from types import FrameType
from typing import Any

from multisock.stack.fragments import DATAGRAM_OVERHEAD, FRAGMENT_OVERHEAD, Reassembler

SRC, DST = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])


def _events(work: Callable[[], object]) -> int:
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


def test_zero_length_fragments_are_refused_and_counted() -> None:
    r = Reassembler(timeout=30)
    for ident in range(200_000):  # a last fragment (MF clear) of no data, each a new datagram
        assert r.add((SRC, DST, 17, ident), 8, False, b"", 0.0) is None
    assert len(r) == 0 and r.held_bytes == 0
    assert r.counters["bad_length"] == 200_000 and r.started == 0
    # as Linux does, one also discards the datagram it names
    r.add((SRC, DST, 17, 1), 0, True, b"x" * 8, 0.0)
    assert r.add((SRC, DST, 17, 1), 16, False, b"", 0.0) is None
    assert len(r) == 0 and r.held_bytes == 0


def test_tiny_fragments_are_charged_what_they_cost() -> None:
    limit = 1 << 20
    r = Reassembler(timeout=30, max_bytes=limit)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for ident in range(20_000):  # one 8-byte first fragment per datagram, as a flood sends them
            src = bytes([10, 0, ident >> 8 & 0xFF, ident & 0xFF])  # fresh objects, as parsing makes
            header = bytes(20) + src + bytes(4)
            r.add((src, bytes(DST), 17, ident), 0, True, memoryview(b"y" * 8), 0.0, header=header)
            assert r.held_bytes <= limit
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(r) <= limit // (DATAGRAM_OVERHEAD + FRAGMENT_OVERHEAD)
    assert r.counters["evicted"] == 20_000 - len(r)
    assert used <= limit, used  # the charge covers the real memory, not only the 8 bytes
    # fragments of one datagram are charged too: at most limit / (8 + overhead) of them
    r = Reassembler(timeout=30, max_bytes=limit // 16)
    for i in range(8000):
        r.add((SRC, DST, 17, 7), 8 * i, True, b"z" * 8, 0.0)
        assert r.held_bytes <= limit // 16
    assert len(r) <= 1 and r.counters["evicted"] >= 1  # the datagram itself, when it outgrew it


def test_next_deadline_and_expire_do_not_scan_the_table() -> None:
    r = Reassembler(timeout=30, max_bytes=1 << 30)
    r.add((SRC, DST, 17, 0), 8, True, b"x" * 8, 0.0)
    few = _events(r.next_deadline), _events(lambda: r.expire(1.0))
    for ident in range(1, 10_000):
        r.add((SRC, DST, 17, ident), 8, True, b"x" * 8, ident / 1000)
    many = _events(r.next_deadline), _events(lambda: r.expire(1.0))
    assert many == few, (few, many)
    assert r.next_deadline() == 30.0
    # expiry takes what is due from the front, in deadline order
    r.expire(30.0 + 4.9995)
    assert r.counters["timeouts"] == 5000 and len(r) == 5000 and r.next_deadline() == 30.0 + 5.0


def test_each_fragment_costs_the_same_however_many_the_datagram_holds() -> None:
    r = Reassembler(timeout=30, max_bytes=1 << 30)
    key = (SRC, DST, 17, 9)

    def fragments(first: int, n: int) -> None:
        for i in range(first, first + n):  # every other 8-byte slot: no overlap, no completion
            r.add(key, 16 * i, True, b"f" * 8, 0.0)

    fragments(0, 100)
    early = _events(lambda: fragments(100, 100))
    fragments(200, 3700)
    late = _events(lambda: fragments(3900, 100))
    assert late == early, (early, late)
    assert len(r) == 1 and r.counters["overlaps"] == 0
    r.add(key, 16 * 3999 - 8, True, b"o" * 16, 0.0)  # overlaps the last one: the datagram goes
    assert len(r) == 0 and r.counters["overlaps"] == 1 and r.held_bytes == 0
