"""Send and receive buffers: chunk lists, so bytes are copied once on the way in and once out.

The send buffer keeps the user's data as ``bytes`` chunks from ``snd_una`` onwards;
a segment is a memoryview slice when it falls inside one chunk (the common case
for bulk writes), so building it costs no copy here. The receive queue keeps the
payload memoryviews of arrived packets and copies only in ``read_into``.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

# (Final: compiled code keeps the type in a C static; a builtin's name is otherwise looked up
# in the builtins module at each use)
_memoryview: Final = memoryview


def _keep(data: bytes | memoryview) -> bytes | memoryview:
    """What the send buffer stores for ``data``: a copy, unless the bytes cannot change.

    A large view into an immutable ``bytes`` object is kept without a copy (the caller
    can never modify it, so the kernel's copy-on-send buys nothing): one copy per byte
    less for bulk senders. Small or partial views are copied so that a few bytes never
    pin a big object.

    The caller's view itself is never kept: once ``send()`` returns the caller may
    release it (trio's ``send_all`` does, ``with view[sent:] as remaining``), and every
    later retransmission would then raise. A slice of it is a view of our own over
    the same ``bytes``, which the caller's ``release()`` does not end; a view over
    the whole object is the object itself.
    """
    if type(data) is bytes:
        return data
    if (
        isinstance(data, memoryview)
        and type(data.obj) is bytes
        and len(data) >= 65536
        and 2 * len(data) >= len(data.obj)
        and data.ndim == 1
        and data.c_contiguous
        and data.format == "B"
    ):
        whole: bytes = data.obj
        return whole if len(data) == len(whole) else data[:]
    return bytes(data)


class SendBuffer:
    """Unacknowledged and unsent bytes as a list of immutable chunks.

    ``peek`` is called once per segment, usually just past the previous call, so a
    cursor remembers where the last one ended: finding the chunk is O(1) amortised
    instead of a walk from the front. Small writes are merged into the last chunk so
    that a stream of tiny ``send`` calls cannot make the list long.
    """

    __slots__ = ("chunks", "first", "head", "size", "cur_index", "cur_start")

    MERGE_BELOW: Final = 4096  # (Final: a class constant, also when compiled by mypyc)

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.first = 0  # index of the chunk holding snd_una (chunks before it are dead)
        self.head = 0  # offset of snd_una inside chunks[first]
        self.size = 0  # bytes from snd_una to the end of the buffer
        self.cur_index = 0  # cursor: a chunk index ...
        self.cur_start = 0  # ... and its offset from snd_una (may be negative: head)

    def append(self, data: bytes | memoryview) -> None:
        n = len(data)
        if not n:
            return
        chunks = self.chunks
        if n < self.MERGE_BELOW and len(chunks) > self.first:
            last = chunks[-1]
            if len(last) < self.MERGE_BELOW and (len(chunks) - 1 > self.first or self.head == 0):
                chunks[-1] = bytes(last) + bytes(data)
                self.size += n
                return
        chunks.append(_keep(data))
        self.size += n

    def peek(self, offset: int, length: int) -> bytes | memoryview:
        """``length`` bytes starting ``offset`` bytes after snd_una (one view when possible)."""
        if offset >= self.size or length <= 0:
            return b""
        chunks = self.chunks
        index, start = self.cur_index, self.cur_start
        if index < self.first or offset < start:
            index, start = self.first, -self.head
        while start + len(chunks[index]) <= offset:
            start += len(chunks[index])
            index += 1
        self.cur_index, self.cur_start = index, start
        chunk = chunks[index]
        pos = offset - start
        if pos + length <= len(chunk):
            return _memoryview(chunk)[pos : pos + length]
        parts = [_memoryview(chunk)[pos:]]
        got = len(chunk) - pos
        while got < length and index + 1 < len(chunks):
            index += 1
            nxt = chunks[index]
            take = min(len(nxt), length - got)
            parts.append(_memoryview(nxt)[:take])
            got += take
        return b"".join(parts)

    def consume(self, n: int) -> None:
        """Drop ``n`` acknowledged bytes from the front."""
        if n <= 0:
            return
        if n >= self.size:
            # everything acknowledged (request/response traffic, every time): start empty
            self.clear()
            return
        self.size -= n
        chunks = self.chunks
        head = self.head + n
        first = self.first
        while first < len(chunks) and head >= len(chunks[first]):
            head -= len(chunks[first])
            first += 1
        self.cur_start -= n
        if first >= len(chunks):
            chunks.clear()
            first = head = 0
            self.cur_index = self.cur_start = 0
        elif first > 64 and first * 2 > len(chunks):
            del chunks[:first]  # compact now and then: O(1) amortised
            self.cur_index -= first
            first = 0
        self.first = first
        self.head = head
        if self.cur_index < first:
            self.cur_index, self.cur_start = first, -head

    def clear(self) -> None:
        self.chunks.clear()
        self.first = self.head = self.size = 0
        self.cur_index = self.cur_start = 0


class ReceiveQueue:
    """Arrived in-order payloads, copied out only by ``read_into``.

    A list consumed from ``first`` (compacted when emptied) instead of a deque: an idle
    connection's empty list is 56 bytes where an empty deque is ~0.7 KiB.
    """

    __slots__ = ("chunks", "first", "head", "size")

    def __init__(self) -> None:
        self.chunks: list[memoryview | bytes] = []
        self.first = 0  # chunks before this index are consumed
        self.head = 0  # offset inside chunks[first]
        self.size = 0

    def append(self, data: memoryview | bytes) -> None:
        n = len(data)
        if n:
            self.chunks.append(data)
            self.size += n

    def read_into(self, buf: memoryview, peek: bool = False) -> int:
        want = len(buf)
        if want > self.size:
            want = self.size
        head = self.head
        index = self.first
        chunks = self.chunks
        if want and len(chunks[index]) - head == want:
            # the usual small read: exactly the rest of the first chunk (no loop)
            buf[:want] = chunks[index][head:]
            got = want
            index += 1
            head = 0
        else:
            got = 0
            parts, index, head = self._pieces(want)
            for part in parts:
                buf[got : got + len(part)] = part
                got += len(part)
        if not peek:
            self._consumed(index, head, got)
        return got

    def read_bytes(self, limit: int) -> bytes:
        """Take up to ``limit`` bytes as one ``bytes`` object: ``recv``'s result made with
        one copy, without the scratch buffer ``read_into`` would need (``limit`` > 0)."""
        size = self.size
        head = self.head
        index = self.first
        chunks = self.chunks
        chunk = chunks[index]
        if limit >= size and len(chunk) - head == size:
            # the usual small read: all that is queued, the rest of one chunk
            data = bytes(chunk[head:] if head else chunk)
            chunks.clear()
            self.first = self.head = self.size = 0
            return data
        want = limit if limit < size else size
        if len(chunk) - head >= want:
            data = bytes(chunk[head : head + want])
            head += want
            if head == len(chunk):
                index += 1
                head = 0
        else:
            parts, index, head = self._pieces(want)
            data = b"".join(parts)
        self._consumed(index, head, want)
        return data

    def _pieces(self, want: int) -> tuple[list[bytes | memoryview], int, int]:
        """The next ``want`` bytes (at most what is queued) as slices of the chunks, and the
        read point just past them (index, head)."""
        chunks = self.chunks
        index = self.first
        head = self.head
        parts: list[bytes | memoryview] = []
        got = 0
        while got < want:
            chunk = chunks[index]
            take = len(chunk) - head
            if take > want - got:
                take = want - got
            parts.append(chunk[head : head + take])
            got += take
            head += take
            if head == len(chunk):
                index += 1
                head = 0
        return parts, index, head

    def _consumed(self, index: int, head: int, got: int) -> None:
        """The read point moved to ``chunks[index][head:]``, ``got`` bytes on."""
        chunks = self.chunks
        self.head = head
        self.size -= got
        if index >= len(chunks):
            chunks.clear()
            index = 0
        elif index > 32 and index * 2 > len(chunks):
            del chunks[:index]  # compact now and then: O(1) amortised
            index = 0
        else:
            for i in range(self.first, index):
                chunks[i] = b""  # release consumed payloads (they pin packets)
        self.first = index

    def byte_at(self, offset: int) -> int:
        """The queued byte ``offset`` bytes from the read point (the peer's urgent byte)."""
        offset += self.head
        for index in range(self.first, len(self.chunks)):
            chunk = self.chunks[index]
            if offset < len(chunk):
                return int(chunk[offset])
            offset -= len(chunk)
        raise IndexError(offset)

    def clear(self) -> None:
        self.chunks.clear()
        self.first = 0
        self.head = 0
        self.size = 0


class OutOfOrder:
    """Segments beyond rcv_nxt: bounded, with O(log n) insertion and SACK reporting.

    Two sorted views of the same bytes. ``starts``/``ends``/``datas`` are the stored
    segments (disjoint, sorted by start; found by bisection, so an arrival costs a
    bisection plus a list insertion, whatever the queue holds). ``ranges`` is their
    union as merged ``(start, end)`` blocks, what the SACK option reports; kept up to
    date on every change instead of being rebuilt from all segments per ACK.

    Bounded two ways (a queue must be charged by what it costs, not by its payload):
    payload bytes (``limit``, what the advertised window promised) and segments
    (``limit // SEGMENT_CHARGE``: each stored segment costs ~200 bytes of Python
    objects beyond its payload, so 1-byte segments could otherwise hold 2 million
    ranges). Over either bound, segments above the arrival are pruned from the highest
    sequence down, as Linux's ``tcp_prune_ofo_queue`` does (data nearest ``rcv_nxt``
    is worth most); an arrival above everything held is dropped instead.
    """

    __slots__ = (
        "starts", "ends", "datas", "ranges", "recent", "size", "limit", "max_segments",
        "dropped", "pruned",
    )

    SEGMENT_CHARGE: Final = 512  # bytes of limit per stored segment (>= its real overhead, 2x)
    MIN_SEGMENTS: Final = 64  # so that tiny limits (tests, small rcvbuf) still hold a few holes
    MERGE_BELOW: Final = 2048  # adjacent pieces smaller than this are joined (bounded copy)
    RECENT: Final = 4  # blocks remembered for the SACK option (it carries at most 4)

    def __init__(self, limit: int) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.datas: list[bytes] = []
        self.ranges: list[tuple[int, int]] = []  # merged blocks, sorted, never adjacent
        self.recent: list[int] = []  # a sequence number in each recently changed block, newest first
        self.size = 0  # payload bytes held
        self.limit = limit
        self.max_segments = max(limit // self.SEGMENT_CHARGE, self.MIN_SEGMENTS)
        self.dropped = 0  # arrivals refused (over the bounds)
        self.pruned = 0  # segments given up to make room for a lower arrival

    def __len__(self) -> int:
        return len(self.starts)

    def add(self, start: int, data: bytes | memoryview) -> bool:
        """Keep what is new of [start, start+len); False when it does not fit (dropped).

        Segments the arrival covers entirely are replaced by it, so that a repeated
        large segment over many small ones costs their removal once, not every time.
        """
        end = start + len(data)
        if end <= start:
            return True
        starts, ends = self.starts, self.ends
        i = bisect_right(starts, start)
        lo = start
        if i and ends[i - 1] > lo:
            if ends[i - 1] >= end:
                self._touch(start)
                return True  # a duplicate of what is held
            lo = ends[i - 1]
        j = i
        count = len(starts)
        while j < count and ends[j] <= end:
            j += 1
        hi = starts[j] if j < count and starts[j] < end else end
        covered = 0
        for k in range(i, j):
            covered += ends[k] - starts[k]
        added = hi - lo - covered
        if added == 0 and j == i:
            return True
        # make room by pruning from the top (only segments above this arrival)
        while (self.size + added > self.limit or count - (j - i) + 1 > self.max_segments) and count > j:
            self._pop_last()
            count -= 1
        if self.size + added > self.limit or count - (j - i) + 1 > self.max_segments:
            self.dropped += 1
            return False
        offset = lo - start
        piece = bytes(data[offset : offset + hi - lo])
        datas = self.datas
        # join a small piece to a small neighbour: many tiny in-order pieces after a hole
        # (interactive traffic) then cost one segment, and the copy stays bounded
        if j == i and i and ends[i - 1] == lo and len(datas[i - 1]) + len(piece) <= self.MERGE_BELOW:
            datas[i - 1] += piece
            ends[i - 1] = hi
        elif j == i and i < count and starts[i] == hi and len(datas[i]) + len(piece) <= self.MERGE_BELOW:
            datas[i] = piece + datas[i]
            starts[i] = lo
        else:
            starts[i:j] = [lo]
            ends[i:j] = [hi]
            datas[i:j] = [piece]
        self.size += added
        self._cover(lo, hi)
        self._touch(start)
        return True

    def _cover(self, lo: int, hi: int) -> None:
        """Merge [lo, hi) into the SACK blocks."""
        ranges = self.ranges
        k = bisect_right(ranges, lo, key=_first)
        if k and ranges[k - 1][1] >= lo:
            k -= 1
            lo = ranges[k][0]
            if ranges[k][1] > hi:
                hi = ranges[k][1]
        m = k
        while m < len(ranges) and ranges[m][0] <= hi:
            if ranges[m][1] > hi:
                hi = ranges[m][1]
            m += 1
        ranges[k:m] = [(lo, hi)]

    def _block_of(self, seq: int) -> tuple[int, int] | None:
        ranges = self.ranges
        k = bisect_right(ranges, seq, key=_first) - 1
        if k >= 0 and ranges[k][1] > seq:
            return ranges[k]
        return None

    def _touch(self, seq: int) -> None:
        """Remember that the block holding ``seq`` changed last (RFC 2018 §4 order)."""
        block = self._block_of(seq)
        recent = [seq]
        for other in self.recent:
            if len(recent) >= self.RECENT:
                break
            b = self._block_of(other)
            if b is not None and b != block:
                recent.append(other)
        self.recent = recent

    def _pop_last(self) -> None:
        """Prune the highest segment (``tcp_prune_ofo_queue``)."""
        lo = self.starts.pop()
        hi = self.ends.pop()
        self.datas.pop()
        self.size -= hi - lo
        self.pruned += 1
        ranges = self.ranges
        if ranges[-1][0] >= lo:
            ranges.pop()
        else:
            ranges[-1] = (ranges[-1][0], lo)

    def pop_ready(self, rcv_nxt: int) -> list[bytes]:
        """Data that now continues the in-order stream at ``rcv_nxt`` (in order)."""
        out: list[bytes] = []
        starts, ends, datas = self.starts, self.ends, self.datas
        n = 0
        count = len(starts)
        while n < count and starts[n] <= rcv_nxt:
            start, end = starts[n], ends[n]
            self.size -= end - start
            if end > rcv_nxt:
                out.append(datas[n] if start == rcv_nxt else datas[n][rcv_nxt - start :])
                rcv_nxt = end
            n += 1
        if n:
            del starts[:n], ends[:n], datas[:n]
            ranges = self.ranges
            k = 0
            while k < len(ranges) and ranges[k][0] <= rcv_nxt:
                k += 1
            del ranges[:k]
        return out

    def sack_blocks(self, limit: int = 4, recent: int | None = None) -> list[tuple[int, int]]:
        """Blocks for the SACK option: the one holding ``recent`` (the latest arrival)
        first, as RFC 2018 §4 requires, then the other recently changed ones, newest
        first (as Linux does), then the rest from the highest down. O(limit log n)."""
        blocks: list[tuple[int, int]] = []
        seqs = self.recent if recent is None else [recent, *self.recent]
        for seq in seqs:
            if len(blocks) >= limit:
                return blocks
            block = self._block_of(seq)
            if block is not None and block not in blocks:
                blocks.append(block)
        ranges = self.ranges
        k = len(ranges) - 1
        while len(blocks) < limit and k >= 0:
            if ranges[k] not in blocks:
                blocks.append(ranges[k])
            k -= 1
        return blocks

    def clear(self) -> None:
        self.starts = []
        self.ends = []
        self.datas = []
        self.ranges = []
        self.recent = []
        self.size = 0


def _first(block: tuple[int, int]) -> int:
    return block[0]
