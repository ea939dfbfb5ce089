"""Send and receive buffers: chunk lists, so bytes are copied once on the way in and once out.

The send buffer keeps the user's data as ``bytes`` chunks from ``snd_una`` onwards;
a segment is a memoryview slice when it falls inside one chunk (the common case
for bulk writes), so building it costs no copy here. The receive queue keeps the
payload memoryviews of arrived packets and copies only in ``read_into``.
"""

from __future__ import annotations


def _keep(data: bytes | memoryview) -> bytes | memoryview:
    """What the send buffer stores for ``data``: a copy, unless the bytes cannot change.

    A large view into an immutable ``bytes`` object is kept as it is (the caller can
    never modify it, so the kernel's copy-on-send buys nothing): one copy per byte less
    for bulk senders. Small or partial views are copied so that a few bytes never pin a
    big object.
    """
    if type(data) is bytes:
        return data
    if (
        isinstance(data, memoryview)
        and type(data.obj) is bytes
        and len(data) >= 65536
        and 2 * len(data) >= len(data.obj)
        and data.c_contiguous
        and data.format == "B"
    ):
        return data
    return bytes(data)


class SendBuffer:
    """Unacknowledged and unsent bytes as a list of immutable chunks.

    ``peek`` is called once per segment, usually just past the previous call, so a
    cursor remembers where the last one ended: finding the chunk is O(1) amortised
    instead of a walk from the front. Small writes are merged into the last chunk so
    that a stream of tiny ``send`` calls cannot make the list long.
    """

    __slots__ = ("chunks", "first", "head", "size", "cur_index", "cur_start")

    MERGE_BELOW = 4096

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
            return memoryview(chunk)[pos : pos + length]
        parts = [memoryview(chunk)[pos:]]
        got = len(chunk) - pos
        while got < length and index + 1 < len(chunks):
            index += 1
            nxt = chunks[index]
            take = min(len(nxt), length - got)
            parts.append(memoryview(nxt)[:take])
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
            while got < want:
                chunk = chunks[index]
                take = len(chunk) - head
                if take > want - got:
                    take = want - got
                buf[got : got + take] = chunk[head : head + take]
                got += take
                head += take
                if head == len(chunk):
                    index += 1
                    head = 0
        if not peek:
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
        return got

    def clear(self) -> None:
        self.chunks.clear()
        self.first = 0
        self.head = 0
        self.size = 0


class OutOfOrder:
    """Segments beyond rcv_nxt, merged into disjoint ranges, bounded in bytes."""

    __slots__ = ("ranges", "size", "limit", "dropped")

    def __init__(self, limit: int) -> None:
        self.ranges: list[tuple[int, int, bytes]] = []  # (start, end, data), sorted, disjoint
        self.size = 0
        self.limit = limit
        self.dropped = 0

    def add(self, start: int, data: bytes | memoryview) -> bool:
        """Keep what is new of [start, start+len); False when over the bound (dropped)."""
        end = start + len(data)
        new: list[tuple[int, int, bytes]] = []
        pieces: list[tuple[int, int, bytes]] = []
        cursor = start
        payload = bytes(data)
        for r_start, r_end, r_data in self.ranges:
            if r_end <= start or r_start >= end:
                new.append((r_start, r_end, r_data))
                continue
            if r_start > cursor:
                pieces.append((cursor, r_start, payload[cursor - start : r_start - start]))
            cursor = max(cursor, r_end)
            new.append((r_start, r_end, r_data))
        if cursor < end:
            pieces.append((cursor, end, payload[cursor - start :]))
        added = sum(e - s for s, e, _ in pieces)
        if added == 0:
            return True
        if self.size + added > self.limit:
            self.dropped += 1
            return False
        new.extend(pieces)
        new.sort(key=lambda r: r[0])
        self.ranges = new
        self.size += added
        return True

    def pop_ready(self, rcv_nxt: int) -> list[bytes]:
        """Data that now continues the in-order stream at ``rcv_nxt`` (in order)."""
        out: list[bytes] = []
        ranges = self.ranges
        while ranges and ranges[0][0] <= rcv_nxt:
            start, end, data = ranges.pop(0)
            self.size -= end - start
            if end > rcv_nxt:
                out.append(data[rcv_nxt - start :])
                rcv_nxt = end
        return out

    def sack_blocks(self, limit: int = 4, recent: int | None = None) -> list[tuple[int, int]]:
        """Merged ranges for the SACK option: the one holding ``recent`` (the latest arrival)
        first, as RFC 2018 §4 requires, then the others from the highest down."""
        merged: list[list[int]] = []
        for start, end, _ in self.ranges:
            if merged and merged[-1][1] == start:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        blocks = [(s, e) for s, e in reversed(merged)]
        if recent is not None:
            for i, (s, e) in enumerate(blocks):
                if s <= recent < e:
                    if i:
                        blocks.insert(0, blocks.pop(i))
                    break
        return blocks[:limit]

    def clear(self) -> None:
        self.ranges = []
        self.size = 0
