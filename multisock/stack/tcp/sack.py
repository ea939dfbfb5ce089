"""The sender's SACK scoreboard (RFC 2018 / RFC 6675): what the peer holds above snd_una.

Ranges are unwrapped sequence numbers, sorted and disjoint, kept as two parallel lists
(``starts`` and ``ends``) searched by bisection. The peer chooses the blocks, so the
scoreboard must not trust it to send few: a receiver reporting 1-byte blocks across a
large flight would otherwise build millions of ranges that every ACK scans (Linux's
CVE-2019-11478 was this shape). So every operation is a bisection plus work on the
ranges it touches, and at most ``MAX_RANGES`` ranges are kept: past that, the block
is ignored. Forgetting SACK information is always safe (RFC 2018 §8: a sender may not
rely on it and retransmits what it does not know to be held), it only costs spurious
retransmissions to a peer that fragments its reports so finely.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

# a real path makes one range per hole: 1024 holes is a loss pattern no congestion
# control survives; a peer reporting more is describing something else
MAX_RANGES: Final = 1024


class Scoreboard:
    __slots__ = ("starts", "ends", "sacked", "high", "ignored")

    def __init__(self) -> None:
        self.starts: list[int] = []  # truthy when anything is sacked
        self.ends: list[int] = []
        self.sacked = 0  # bytes covered by ranges
        self.high = 0  # highest sacked sequence number (end of the last range)
        self.ignored = 0  # blocks dropped because the scoreboard was full

    def add(
        self,
        start: int,
        end: int,
        snd_una: int,
        snd_max: int,
        pieces: list[tuple[int, int, int, int]] | None = None,
    ) -> int:
        """Record one block; returns how many bytes are newly sacked (0 for junk blocks).
        With ``pieces``, appends each newly sacked span with the range now holding it,
        (start, end, range start, range end), for RACK's records (rack.py)."""
        if start < snd_una:
            start = snd_una
        if end > snd_max:
            end = snd_max
        if end <= start:
            return 0
        starts, ends = self.starts, self.ends
        # ranges [lo, hi) touch the block (an adjacent range merges too)
        lo = bisect_left(ends, start)
        hi = bisect_right(starts, end)
        if lo == hi and len(starts) >= MAX_RANGES:
            self.ignored += 1
            return 0
        if pieces is not None:
            merged_start = starts[lo] if lo < hi and starts[lo] < start else start
            merged_end = ends[hi - 1] if lo < hi and ends[hi - 1] > end else end
            pos = start
            for i in range(lo, hi):  # the gaps between the ranges the block touches
                if starts[i] > pos:
                    pieces.append((pos, starts[i], merged_start, merged_end))
                if ends[i] > pos:
                    pos = ends[i]
            if pos < end:
                pieces.append((pos, end, merged_start, merged_end))
        covered = 0
        if lo < hi:
            if starts[lo] < start:
                start = starts[lo]
            if ends[hi - 1] > end:
                end = ends[hi - 1]
            for i in range(lo, hi):
                covered += ends[i] - starts[i]
        starts[lo:hi] = (start,)
        ends[lo:hi] = (end,)
        new = (end - start) - covered
        self.sacked += new
        self.high = ends[-1]
        return new

    def advance(self, snd_una: int) -> None:
        """Forget everything the cumulative ACK now covers."""
        starts, ends = self.starts, self.ends
        if not starts or starts[0] >= snd_una:
            return
        gone = bisect_right(ends, snd_una)
        if gone:
            self.sacked -= sum(ends[:gone]) - sum(starts[:gone])
            del starts[:gone], ends[:gone]
        if starts and starts[0] < snd_una:
            self.sacked -= snd_una - starts[0]
            starts[0] = snd_una
        self.high = ends[-1] if ends else 0

    def next_hole(self, seq: int, limit: int) -> tuple[int, int] | None:
        """The first un-sacked span at or after ``seq`` and below ``limit``."""
        seq = self.skip_sacked(seq)
        if seq >= limit:
            return None
        i = bisect_right(self.starts, seq)
        nxt = self.starts[i] if i < len(self.starts) else limit
        return (seq, min(nxt, limit))

    def skip_sacked(self, seq: int) -> int:
        """``seq`` moved past a sacked range it falls in (retransmitting after an RTO)."""
        i = bisect_right(self.starts, seq) - 1
        if i >= 0 and seq < self.ends[i]:
            return self.ends[i]
        return seq

    def sacked_between(self, start: int, end: int) -> int:
        starts, ends = self.starts, self.ends
        if not starts:
            return 0
        if start <= starts[0] and end >= ends[-1]:
            return self.sacked
        lo = bisect_right(ends, start)
        hi = bisect_left(starts, end)
        total = 0
        for i in range(lo, hi):
            s, e = starts[i], ends[i]
            total += (e if e < end else end) - (s if s > start else start)
        return total

    def clear(self) -> None:
        self.starts = []
        self.ends = []
        self.sacked = 0
        self.high = 0
