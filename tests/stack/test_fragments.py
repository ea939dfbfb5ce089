"""Reassembly: order independence, overlaps (RFC 5722), bounds, timeouts."""

from __future__ import annotations

import os
import random

from multisock.stack.fragments import MAX_DATAGRAM, Reassembler, fragment_sizes


def split(data: bytes, mtu: int = 1500, header: int = 20) -> list[tuple[int, bool, bytes]]:
    pieces = fragment_sizes(len(data), mtu, header)
    return [(off, i < len(pieces) - 1, data[off : off + size]) for i, (off, size) in enumerate(pieces)]


def test_fragment_sizes_are_multiples_of_eight_and_fit() -> None:
    for length in (1, 7, 8, 1480, 1481, 5000, 65507):
        pieces = fragment_sizes(length, 1500, 20)
        assert sum(size for _, size in pieces) == length
        assert all(size % 8 == 0 for _, size in pieces[:-1])
        assert all(20 + size <= 1500 for _, size in pieces)


def test_any_order_reassembles() -> None:
    rng = random.Random(5)
    for _ in range(50):
        data = os.urandom(rng.randrange(1, 20000))
        frags = split(data)
        rng.shuffle(frags)
        r = Reassembler(timeout=30)
        results = [r.add(("k",), off, more, chunk, 0.0) for off, more, chunk in frags]
        assert results[-1] == data
        assert all(x is None for x in results[:-1])
        assert len(r) == 0 and r.held_bytes == 0


def test_exact_duplicates_are_ignored_but_overlaps_discard_the_datagram() -> None:
    data = os.urandom(4000)
    frags = split(data)
    r = Reassembler(timeout=30)
    assert r.add(("k",), *frags[0], now=0.0) is None
    assert r.add(("k",), *frags[0], now=0.0) is None
    assert r.counters["duplicates"] == 1
    off, more, chunk = frags[1]
    assert r.add(("k",), off - 8, more, b"x" * len(chunk), 0.0) is None  # overlaps fragment 0
    assert r.counters["overlaps"] == 1
    assert len(r) == 0
    # the rest of the original can no longer complete a datagram: it was discarded
    results = [r.add(("k",), o, m, c, 0.0) for o, m, c in frags[1:]]
    assert all(x is None for x in results)


def test_oversize_and_bad_lengths_are_rejected() -> None:
    r = Reassembler(timeout=30)
    assert r.add(("k",), MAX_DATAGRAM - 8, True, b"x" * 16, 0.0) is None
    assert r.counters["oversize"] == 1
    assert r.add(("k",), 0, True, b"x" * 7, 0.0) is None  # non-final not a multiple of 8
    assert r.counters["bad_length"] == 1
    r.add(("j",), 0, True, b"x" * 16, 0.0)
    assert r.add(("j",), 8, False, b"x" * 4, 0.0) is None  # last fragment ends inside held data
    assert r.counters["bad_length"] == 2


def test_timeout_expires_and_reports_first_fragment() -> None:
    r = Reassembler(timeout=30)
    r.add(("a",), 0, True, b"x" * 8, 0.0, header=b"HDR")
    r.add(("b",), 8, False, b"y" * 8, 10.0)
    assert r.next_deadline() == 30.0
    assert r.expire(29.9) == []
    assert r.expire(30.0) == [(("a",), b"HDR")]
    assert r.expire(41.0) == []  # b had no first fragment: dropped silently
    assert r.counters["timeouts"] == 2
    assert len(r) == 0


def test_memory_bound_evicts_oldest() -> None:
    r = Reassembler(timeout=30, max_bytes=10_000)
    for i in range(100):
        r.add((i,), 0, True, b"z" * 1000, float(i))
        assert r.held_bytes <= 10_000
    assert r.counters["evicted"] >= 90
    assert len(r) <= 10
