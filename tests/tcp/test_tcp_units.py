"""Unit tests of the engine's parts: buffers, scoreboard, RTT estimator, timer heap, seq."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.stack.tcp.buffers import OutOfOrder, ReceiveQueue, SendBuffer
from multisock.stack.tcp.rtt import RttEstimator
from multisock.stack.tcp.sack import Scoreboard
from multisock.stack.tcp.seq import ts_before, unwrap
from multisock.stack.tcp.timers import TimerHeap


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=40), st.integers(0, 2**32))
def test_send_buffer_matches_a_flat_model(sizes: list[int], seed: int) -> None:
    rng = random.Random(seed)
    buf = SendBuffer()
    model = bytearray()
    for n in sizes:
        data = rng.randbytes(n)
        buf.append(data)
        model += data
        # read a few segments from random offsets, then acknowledge some bytes
        for _ in range(3):
            off = rng.randrange(len(model) + 1)
            length = rng.randrange(1, 3000)
            assert bytes(buf.peek(off, length)) == bytes(model[off : off + length])
        ack = rng.randrange(len(model) + 1) if rng.random() < 0.5 else 0
        buf.consume(ack)
        del model[:ack]
        assert buf.size == len(model)
    off = 0
    while off < len(model):  # sequential segments: the cursor path
        assert bytes(buf.peek(off, 1448)) == bytes(model[off : off + 1448])
        off += 1448


def test_send_buffer_segment_inside_a_chunk_is_a_view() -> None:
    buf = SendBuffer()
    buf.append(b"x" * 100_000)
    assert isinstance(buf.peek(1000, 1448), memoryview)


def test_tiny_writes_are_merged() -> None:
    buf = SendBuffer()
    for _ in range(10_000):
        buf.append(b"ab")
    assert len(buf.chunks) <= 10
    assert bytes(buf.peek(19_990, 100)) == b"ab" * 5


def test_receive_queue_reads_across_chunks_and_peeks() -> None:
    q = ReceiveQueue()
    q.append(memoryview(b"hello "))
    q.append(b"world")
    out = bytearray(4)
    assert q.read_into(memoryview(out), peek=True) == 4 and out == b"hell"
    assert q.size == 11
    big = bytearray(20)
    assert q.read_into(memoryview(big)) == 11 and big[:11] == b"hello world"
    assert q.size == 0


def test_out_of_order_merges_and_bounds() -> None:
    ooo = OutOfOrder(limit=250)
    assert ooo.add(100, b"b" * 100)
    assert ooo.add(150, b"c" * 100)  # overlaps: only 50 new bytes kept
    assert ooo.size == 150
    assert not ooo.add(400, b"d" * 200)  # over the bound
    assert ooo.sack_blocks() == [(100, 250)]
    assert ooo.pop_ready(50) == []
    ready = ooo.pop_ready(120)
    assert b"".join(ready) == b"b" * 80 + b"c" * 50 and ooo.size == 0


def test_scoreboard_merges_and_advances() -> None:
    sb = Scoreboard()
    assert sb.add(200, 300, 100, 1000) == 100
    assert sb.add(400, 500, 100, 1000) == 100
    assert sb.add(250, 450, 100, 1000) == 100  # bridges the two
    assert (sb.starts, sb.ends) == ([200], [500]) and sb.high == 500
    assert sb.add(50, 120, 100, 1000) == 20  # clipped at snd_una
    assert sb.next_hole(100, 1000) == (120, 200)
    assert sb.skip_sacked(300) == 500
    sb.advance(300)
    assert (sb.starts, sb.ends) == ([300], [500]) and sb.sacked == 200
    assert sb.add(600, 2000, 100, 1000) == 400  # clipped at snd_max


def test_rtt_estimator_rfc6298() -> None:
    est = RttEstimator(1.0, 0.2, 120.0)
    assert est.current() == 1.0
    est.sample(0.5)
    assert est.srtt == 0.5 and est.rttvar == 0.25 and est.rto == pytest.approx(1.5)
    est.sample(0.5)
    assert est.rttvar == pytest.approx(0.1875) and est.rto == pytest.approx(1.25)
    est.back_off()
    est.back_off()
    assert est.current() == pytest.approx(5.0)
    for _ in range(20):
        est.back_off()
    assert est.current() == 120.0
    est.sample(0.001)
    assert est.backoff == 0 and est.current() >= 0.2


def test_timer_heap_lazy_invalidation() -> None:
    class Owner:
        def __init__(self) -> None:
            self.armed_at: float | None = None
            self.fired: list[float] = []

        def on_timer(self, now: float) -> None:
            self.fired.append(now)

    heap = TimerHeap()
    a, b = Owner(), Owner()
    heap.arm(a, 5.0)
    heap.arm(a, 3.0)  # earlier: a new live entry
    heap.arm(a, 4.0)  # later than the live one: nothing to do
    heap.arm(b, 4.5)
    assert heap.next_deadline() == 3.0
    assert heap.pop_due(3.5) == [a]
    assert heap.next_deadline() == 4.5  # a's stale 5.0 entry no longer counts
    assert heap.pop_due(10.0) == [b]
    assert heap.next_deadline() is None


def test_timer_heap_sweeps_stale_entries_and_keeps_live_ones() -> None:
    """Disarmed owners (a finished connection) must not stay pinned by the heap."""

    class Owner:
        def __init__(self) -> None:
            self.armed_at: float | None = None

        def on_timer(self, now: float) -> None:
            pass

    heap = TimerHeap()
    live = [Owner() for _ in range(10)]
    for i, owner in enumerate(live):
        heap.arm(owner, 100.0 + i)
    dead = []
    for i in range(1000):
        owner = Owner()
        heap.arm(owner, 50.0 + i)
        owner.armed_at = None  # what TcpSocket._finish does
        dead.append(owner)
    assert len(heap) < 200  # swept, not 1010 entries
    assert heap.pop_due(1000.0) == live  # every live entry survived, in deadline order


@given(st.integers(0, 2**40), st.integers(-(2**30), 2**30))
def test_unwrap_recovers_nearby_values(reference: int, delta: int) -> None:
    value = reference + delta
    assert unwrap(value & 0xFFFFFFFF, reference) == value


def test_timestamp_comparison_wraps() -> None:
    assert ts_before(1, 2)
    assert not ts_before(2, 1)
    assert ts_before(0xFFFFFFF0, 5)
    assert not ts_before(7, 7)
