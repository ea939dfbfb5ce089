"""IP fragmentation (IPv4 output) and reassembly (IPv4 and IPv6 input).

Reassembly is the classic memory-exhaustion target, so it is bounded three ways:
per-datagram size (65535 for IPv4, 65535 + headers for IPv6 without jumbograms),
total bytes held across all incomplete datagrams (oldest evicted first), and a
timeout per datagram (30 s IPv4 like Linux ``ipfrag_time``, 60 s IPv6 per RFC 8200).

Overlapping fragments are treated as an attack: the whole datagram is discarded
(RFC 5722 requires it for IPv6; Linux does the same for IPv4). An exact duplicate
of a fragment already held (a retransmission or a duplicating link) is ignored.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_DATAGRAM = 65535


class _Pending:
    __slots__ = ("pieces", "total", "held", "deadline", "first_header")

    def __init__(self, deadline: float) -> None:
        self.pieces: dict[int, bytes] = {}  # offset -> data
        self.total = -1  # known once the last fragment (MF clear) arrives
        self.held = 0
        self.deadline = deadline
        self.first_header: bytes | None = None  # quoted in ICMP time-exceeded


class Reassembler:
    """Collects fragments keyed by an opaque tuple (src, dst, proto/next, ident)."""

    __slots__ = ("timeout", "max_bytes", "_pending", "_held", "counters", "started")

    def __init__(self, timeout: float, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pending: OrderedDict[tuple[object, ...], _Pending] = OrderedDict()
        self._held = 0
        self.counters = {
            "fragments": 0,
            "reassembled": 0,
            "overlaps": 0,
            "duplicates": 0,
            "timeouts": 0,
            "evicted": 0,
            "oversize": 0,
            "bad_length": 0,
        }
        # datagrams ever started: a new deadline can only come from a new one (the host
        # compares this, not the whole table, after every operation)
        self.started = 0

    def add(
        self,
        key: tuple[object, ...],
        offset: int,
        more: bool,
        data: bytes | memoryview,
        now: float,
        header: bytes | None = None,
    ) -> bytes | None:
        """Add one fragment; returns the reassembled payload when complete, else None."""
        self.counters["fragments"] += 1
        size = len(data)
        end = offset + size
        if end > MAX_DATAGRAM or (more and size % 8 != 0) or (more and size == 0):
            self.counters["oversize" if end > MAX_DATAGRAM else "bad_length"] += 1
            self._drop(key)
            return None
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(now + self.timeout)
            self._pending[key] = pending
            self.started += 1
        if offset == 0 and header is not None:
            pending.first_header = header
        if not more:
            if pending.total not in (-1, end) or any(o + len(d) > end for o, d in pending.pieces.items()):
                self.counters["bad_length"] += 1
                self._drop(key)
                return None
            pending.total = end
        elif pending.total != -1 and end > pending.total:
            self.counters["bad_length"] += 1
            self._drop(key)
            return None
        existing = pending.pieces.get(offset)
        if existing is not None and bytes(existing) == bytes(data):
            self.counters["duplicates"] += 1
            return None
        for other_offset, other in pending.pieces.items():
            if other_offset < end and offset < other_offset + len(other):
                self.counters["overlaps"] += 1
                self._drop(key)
                return None
        pending.pieces[offset] = bytes(data)
        pending.held += size
        self._held += size
        self._evict(keep=key)
        if key not in self._pending:
            return None
        if pending.total >= 0 and pending.held == pending.total:
            del self._pending[key]
            self._held -= pending.held
            self.counters["reassembled"] += 1
            return b"".join(pending.pieces[o] for o in sorted(pending.pieces))
        return None

    def _drop(self, key: tuple[object, ...]) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._held -= pending.held

    def _evict(self, keep: tuple[object, ...]) -> None:
        while self._held > self.max_bytes and self._pending:
            key, pending = next(iter(self._pending.items()))
            if key == keep and len(self._pending) == 1:
                self._drop(key)
                self.counters["evicted"] += 1
                return
            if key == keep:
                self._pending.move_to_end(key)
                continue
            self._drop(key)
            self.counters["evicted"] += 1

    def expire(self, now: float) -> list[tuple[tuple[object, ...], bytes | None]]:
        """Drop timed-out datagrams; returns (key, first-fragment header) for each with its first fragment."""
        expired = []
        for key, pending in list(self._pending.items()):
            if pending.deadline <= now:
                self._drop(key)
                self.counters["timeouts"] += 1
                if 0 in pending.pieces:
                    expired.append((key, pending.first_header))
        return expired

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.deadline for p in self._pending.values())

    @property
    def held_bytes(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._pending)


def fragment_sizes(payload_len: int, mtu: int, header_len: int) -> list[tuple[int, int]]:
    """(offset, length) of each fragment so that header + data fits ``mtu``; data in 8-byte units."""
    per_fragment = (mtu - header_len) // 8 * 8
    if per_fragment <= 0:
        raise ValueError("MTU too small to fragment")
    out = []
    offset = 0
    while offset < payload_len:
        size = min(per_fragment, payload_len - offset)
        out.append((offset, size))
        offset += size
    return out
