"""The sender's SACK scoreboard: exact against a byte-set model, and bounded whatever the
peer reports (a receiver sending 1-byte blocks across a big flight must not make each ACK
cost more as the flight grows)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.stack.tcp.sack import MAX_RANGES, Scoreboard

UNA, MAX = 1000, 1400


def _model_ranges(held: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for seq in sorted(held):
        if out and out[-1][1] == seq:
            out[-1] = (out[-1][0], seq + 1)
        else:
            out.append((seq, seq + 1))
    return out


blocks = st.lists(st.tuples(st.integers(900, 1500), st.integers(0, 60)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(blocks, st.integers(UNA, MAX), st.integers(UNA, MAX), st.integers(UNA, MAX))
def test_scoreboard_matches_a_byte_set(adds: list[tuple[int, int]], probe: int, lo: int,
                                       una2: int) -> None:
    board, held = Scoreboard(), set[int]()
    for start, length in adds:
        before = len(held)
        new = board.add(start, start + length, UNA, MAX)
        held |= set(range(max(start, UNA), min(start + length, MAX)))
        assert new == len(held) - before
        assert list(zip(board.starts, board.ends, strict=True)) == _model_ranges(held)
        assert board.sacked == len(held)
        assert board.high == (max(held) + 1 if held else 0)
    hi = max(lo, probe)
    assert board.sacked_between(lo, hi) == len([s for s in held if lo <= s < hi])
    skipped = board.skip_sacked(probe)
    expect = probe
    while expect in held:
        expect += 1
    assert skipped == expect
    hole = board.next_hole(probe, MAX)
    if expect >= MAX:
        assert hole is None
    else:
        end = expect
        while end < MAX and end not in held:
            end += 1
        assert hole == (expect, end)
    board.advance(una2)
    rest = {s for s in held if s >= una2}
    assert list(zip(board.starts, board.ends, strict=True)) == _model_ranges(rest)
    assert board.sacked == len(rest)


def _events(call: Callable[[], object]) -> int:
    count = 0

    def tracer(frame: object, event: str, arg: object) -> object:
        nonlocal count
        count += 1
        return tracer

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def _fragmented(n: int) -> Scoreboard:
    """A scoreboard after a peer reported every other byte of a 2*n-byte flight."""
    board = Scoreboard()
    for i in range(n):
        board.add(UNA + 2 * i + 1, UNA + 2 * i + 2, UNA, UNA + 4 * n)
    return board


def _one_ack(board: Scoreboard) -> None:
    una, top = board.starts[0] - 1, board.high
    board.add(top - 3, top - 2, una, top)
    board.sacked_between(una + 10, top - 10)
    board.next_hole(una + 5, top)
    board.skip_sacked(una + 7)


def test_scoreboard_is_bounded_in_ranges() -> None:
    board = _fragmented(3 * MAX_RANGES)
    assert len(board.starts) == MAX_RANGES
    assert board.ignored == 2 * MAX_RANGES
    # what it kept is still exact
    assert board.sacked == MAX_RANGES
    # a block touching a kept range still merges
    assert board.add(UNA + 2, UNA + 3, UNA, UNA + 10 * MAX_RANGES) == 1


def test_one_ack_costs_no_more_with_a_bigger_fragmented_flight() -> None:
    # before: every add rebuilt the whole list and every query scanned every range, so a
    # flight reported in 4x more pieces made each ACK cost ~4x more, without end
    mid, big = _fragmented(2 * MAX_RANGES), _fragmented(8 * MAX_RANGES)
    assert _events(lambda: _one_ack(big)) <= 1.1 * _events(lambda: _one_ack(mid)) + 20
