"""IP fragmentation (IPv4 output) and reassembly (IPv4 and IPv6 input).

Reassembly is the classic memory-exhaustion target, so it is bounded three ways:
per-datagram size (65535 for IPv4, 65535 + headers for IPv6 without jumbograms),
total cost held across all incomplete datagrams (oldest evicted first), and a
timeout per datagram (30 s IPv4 like Linux ``ipfrag_time``, 60 s IPv6 per RFC 8200).
The total is charged by what a fragment really costs, not by its payload (Linux
charges the skb's truesize): an 8-byte fragment holds ~500 bytes of Python objects,
and a zero-length one would hold them for nothing, so it is refused outright (as
Linux's ``ip_frag_queue``/``ip6_frag_queue`` do, discarding the datagram it names).
With every fragment and datagram charged, the number of pending datagrams and of
fragments in each follows from the byte bound.

Every step costs O(log n) or O(1): a datagram's fragments are kept sorted by offset
(an overlap is found by bisection, with the two neighbours only), and datagrams are
kept in creation order, which is deadline order since they all get the same timeout,
so the earliest deadline and the expired datagrams are at the front.

Overlapping fragments are treated as an attack: the whole datagram is discarded
(RFC 5722 requires it for IPv6; Linux does the same for IPv4). An exact duplicate
of a fragment already held (a retransmission or a duplicating link) is ignored.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict

MAX_DATAGRAM = 65535
# What holding one fragment / one incomplete datagram costs beyond its payload, charged
# against ``max_bytes``. Measured with tracemalloc (CPython 3.11): ~50 bytes per fragment
# in a datagram (its bytes object and list slots), ~600-700 per datagram (its entry,
# key, quoted header and lists). Rounded up, like Linux's truesize, so that the bound
# is on real memory.
FRAGMENT_OVERHEAD = 256
DATAGRAM_OVERHEAD = 768


class _Pending:
    __slots__ = ("offsets", "pieces", "total", "held", "charge", "deadline", "first_header")

    def __init__(self, deadline: float) -> None:
        self.offsets: list[int] = []  # sorted; the held fragments are disjoint
        self.pieces: list[bytes] = []  # the data at each offset
        self.total = -1  # known once the last fragment (MF clear) arrives
        self.held = 0  # payload bytes
        self.charge = DATAGRAM_OVERHEAD  # what this datagram counts against the bound
        self.deadline = deadline
        self.first_header: bytes | None = None  # quoted in ICMP time-exceeded


class Reassembler:
    """Collects fragments keyed by an opaque tuple (src, dst, proto/next, ident).

    ``now`` must not go backwards between calls (the driver's monotonic clock): the
    creation order of datagrams is then their deadline order.
    """

    __slots__ = ("timeout", "max_bytes", "_pending", "_held", "counters", "started")

    def __init__(self, timeout: float, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        # creation (= deadline) order; an OrderedDict because its front stays O(1) to
        # reach after many deletions there, where a dict's iteration skips the holes
        self._pending: OrderedDict[tuple[object, ...], _Pending] = OrderedDict()
        self._held = 0  # charged cost of everything pending
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
        counters = self.counters
        counters["fragments"] += 1
        size = len(data)
        end = offset + size
        if end > MAX_DATAGRAM or size == 0 or (more and size % 8 != 0):
            counters["oversize" if end > MAX_DATAGRAM else "bad_length"] += 1
            self._drop(key)
            return None
        if offset == 0 and not more:
            # an IPv6 atomic fragment: a whole datagram, processed on its own (RFC 6946)
            counters["reassembled"] += 1
            return bytes(data)
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(now + self.timeout)
            self._pending[key] = pending
            self._held += pending.charge
            self.started += 1
        offsets, pieces = pending.offsets, pending.pieces
        if not more:
            if pending.total not in (-1, end) or (offsets and offsets[-1] + len(pieces[-1]) > end):
                counters["bad_length"] += 1
                self._drop(key)
                return None
            pending.total = end
        elif pending.total != -1 and end > pending.total:
            counters["bad_length"] += 1
            self._drop(key)
            return None
        i = bisect_right(offsets, offset)  # offsets[:i] <= offset < offsets[i:]
        if i and offsets[i - 1] == offset and pieces[i - 1] == bytes(data):
            counters["duplicates"] += 1
            return None
        if (i and offsets[i - 1] + len(pieces[i - 1]) > offset) or (i < len(offsets) and offsets[i] < end):
            counters["overlaps"] += 1
            self._drop(key)
            return None
        offsets.insert(i, offset)
        pieces.insert(i, bytes(data))
        if offset == 0 and header is not None:
            pending.first_header = header
        cost = size + FRAGMENT_OVERHEAD
        pending.held += size
        pending.charge += cost
        self._held += cost
        if pending.total >= 0 and pending.held == pending.total:
            del self._pending[key]
            self._held -= pending.charge
            counters["reassembled"] += 1
            return b"".join(pieces)
        self._evict(keep=key)
        return None

    def _drop(self, key: tuple[object, ...]) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._held -= pending.charge

    def _evict(self, keep: tuple[object, ...]) -> None:
        """Over the bound: drop the oldest datagrams, ``keep`` (the one just added to) last."""
        pending = self._pending
        while self._held > self.max_bytes and pending:
            keys = iter(pending)
            key = next(keys)
            if key == keep:
                key = next(keys, keep)
            self._drop(key)
            self.counters["evicted"] += 1

    def expire(self, now: float) -> list[tuple[tuple[object, ...], bytes | None]]:
        """Drop timed-out datagrams; returns (key, first-fragment header) for each with its first fragment."""
        expired = []
        pending = self._pending
        while pending:
            key, oldest = next(iter(pending.items()))
            if oldest.deadline > now:
                break
            self._drop(key)
            self.counters["timeouts"] += 1
            if oldest.offsets and oldest.offsets[0] == 0:
                expired.append((key, oldest.first_header))
        return expired

    def next_deadline(self) -> float | None:
        """The oldest datagram's deadline: O(1), the table is in deadline order."""
        if not self._pending:
            return None
        return next(iter(self._pending.values())).deadline

    @property
    def held_bytes(self) -> int:
        """What everything pending is charged (payload and overhead), bounded by ``max_bytes``."""
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
