"""One timer heap for a whole stack, with lazy invalidation.

A connection has several logical timers (retransmission, delayed ACK, keepalive,
TIME-WAIT) but holds at most one live heap entry: the earliest of them. Moving a
deadline later leaves the old entry in place; when it fires early the connection
finds nothing due and re-arms. That keeps restarting the RTO on every ACK at O(1).
"""

from __future__ import annotations

import heapq
from typing import Final, Protocol

# Final: compiled code calls them from C statics (``heapq.heappush`` is a module attribute
# lookup at each call)
_heappush: Final = heapq.heappush
_heappop: Final = heapq.heappop


class TimerOwner(Protocol):
    armed_at: float | None

    def on_timer(self, now: float) -> None: ...


class TimerHeap:
    __slots__ = ("_heap", "pushes", "_compact_at")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerOwner]] = []
        # entries ever pushed: while it stands still no deadline can have moved earlier
        # (a later one is left lazily in place), so the host need not look again; also each
        # entry's tie-breaker (equal deadlines fire in the order they were armed)
        self.pushes = 0
        # heap size at which stale entries are swept out (doubles with the live count, so
        # sweeping costs O(1) amortised per push); a stale entry pins a dead connection
        self._compact_at = 64

    def arm(self, owner: TimerOwner, when: float) -> None:
        """Make sure ``owner.on_timer`` runs no later than ``when``."""
        armed = owner.armed_at
        if armed is not None and armed <= when:
            return
        owner.armed_at = when
        self.pushes += 1
        _heappush(self._heap, (when, self.pushes, owner))
        if len(self._heap) >= self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Drop entries that no longer match their owner's deadline (never fire anyway)."""
        live = [entry for entry in self._heap if entry[2].armed_at == entry[0]]
        heapq.heapify(live)
        self._heap = live
        self._compact_at = max(64, 2 * len(live))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, _, owner = heap[0]
            if owner.armed_at == when:
                return when
            _heappop(heap)
        return None

    def pop_due(self, now: float) -> list[TimerOwner]:
        """Owners whose live entry is due; each is disarmed before being returned."""
        heap = self._heap
        due: list[TimerOwner] = []
        while heap and heap[0][0] <= now:
            when, _, owner = _heappop(heap)
            if owner.armed_at == when:
                owner.armed_at = None
                due.append(owner)
        return due

    def __len__(self) -> int:
        return len(self._heap)
