"""The sender's SACK scoreboard (RFC 2018 / RFC 6675): what the peer holds above snd_una.

Ranges are unwrapped sequence numbers, sorted and disjoint. A connection has few
of them (one per hole the network made), so lists beat anything cleverer here.
"""

from __future__ import annotations


class Scoreboard:
    __slots__ = ("ranges", "sacked", "high")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.sacked = 0  # bytes covered by ranges
        self.high = 0  # highest sacked sequence number (end of the last range)

    def add(self, start: int, end: int, snd_una: int, snd_max: int) -> int:
        """Record one block; returns how many bytes are newly sacked (0 for junk blocks)."""
        if start < snd_una:
            start = snd_una
        if end > snd_max:
            end = snd_max
        if end <= start:
            return 0
        ranges = self.ranges
        before = self.sacked
        merged: list[list[int]] = []
        placed = False
        for r in ranges:
            if r[1] < start:
                merged.append(r)
            elif r[0] > end:
                if not placed:
                    merged.append([start, end])
                    placed = True
                merged.append(r)
            else:
                start = min(start, r[0])
                end = max(end, r[1])
        if not placed:
            merged.append([start, end])
            merged.sort()
        self.ranges = merged
        self.sacked = sum(e - s for s, e in merged)
        self.high = merged[-1][1]
        return self.sacked - before

    def advance(self, snd_una: int) -> None:
        """Forget everything the cumulative ACK now covers."""
        ranges = self.ranges
        if not ranges or ranges[0][0] >= snd_una:
            return
        while ranges and ranges[0][1] <= snd_una:
            ranges.pop(0)
        if ranges and ranges[0][0] < snd_una:
            ranges[0][0] = snd_una
        self.sacked = sum(e - s for s, e in ranges)
        self.high = ranges[-1][1] if ranges else 0

    def next_hole(self, seq: int, limit: int) -> tuple[int, int] | None:
        """The first un-sacked span at or after ``seq`` and below ``limit``."""
        for s, e in self.ranges:
            if seq < s:
                return (seq, min(s, limit)) if seq < limit else None
            if seq < e:
                seq = e
        return (seq, limit) if seq < limit else None

    def skip_sacked(self, seq: int) -> int:
        """``seq`` moved past a sacked range it falls in (retransmitting after an RTO)."""
        for s, e in self.ranges:
            if s <= seq < e:
                return e
            if s > seq:
                break
        return seq

    def sacked_between(self, start: int, end: int) -> int:
        total = 0
        for s, e in self.ranges:
            lo, hi = max(s, start), min(e, end)
            if hi > lo:
                total += hi - lo
        return total

    def clear(self) -> None:
        self.ranges = []
        self.sacked = 0
        self.high = 0
