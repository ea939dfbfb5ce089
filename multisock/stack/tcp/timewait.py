"""TIME-WAIT without the control block: what a closed connection keeps for its 2*MSL.

Once the application has closed a connection and it reaches TIME-WAIT, nothing of the
full ``TcpSocket`` is needed any more (buffers, scoreboard, RTT and congestion state,
options, statistics): only enough to answer the peer and to hold the 4-tuple, as
Linux's ``inet_timewait_sock`` does. ``enter`` puts a ``TimeWait`` record in the
control block's place in the stack's tables (connections, ports, timers), so the
block itself can be freed at once. In a connect/accept/close loop that turns thousands
of live blocks of ~15 garbage-collected objects each into small records the collector
hardly has to visit (docs/performance.md, "Connections").

The record behaves as the block did in TIME-WAIT (``TcpSocket._input_time_wait`` and the
checks before it): a retransmitted FIN (or stray data) is ACKed again and a FIN restarts
the 2*MSL wait; a pure ACK is not answered; a SYN gets a challenge ACK unless
``TcpStack._time_wait_reuse`` lets it open a new incarnation; an old timestamp (PAWS)
is answered with an ACK; an exact RST ends it, an in-window one is challenged. The port
stays taken (``ports`` treats the record like any TIME-WAIT socket) until it expires, or
until ``connect()`` takes its 4-tuple over under ``TcpConfig.tw_reuse`` (``reusable``).

Whoever still holds the old control block (a test, or a socket object not yet garbage)
keeps seeing TIME_WAIT there; a weak reference lets the record move it to CLOSED when
TIME-WAIT ends, without keeping it alive. In the compiled build the block's class is a mypyc
native class, which cannot be weakly referenced: there the record keeps no link and a block
still held stays in TIME_WAIT (it is no longer driven by the stack in either build).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from multisock.stack.addresses import is_loopback
from multisock.stack.tcp.config import TcpState
from multisock.stack.tcp.seq import MASK, ts_before, unwrap
from multisock.wire import tcp as wire
from multisock.wire.tcp import ACK, FIN, RST, SYN, TCPHeader

if TYPE_CHECKING:
    import weakref

    from multisock.stack.tcp.connection import TcpSocket
    from multisock.stack.tcp.stack import TcpStack

TIME_WAIT, CLOSED = TcpState.TIME_WAIT, TcpState.CLOSED


class TimeWait:
    """A connection in TIME-WAIT after its application closed it (see the module text)."""

    __slots__ = (
        "stack",
        "family",
        "state",
        "local",
        "remote",
        "snd_max",
        "rcv_nxt",
        "window",
        "rwnd",
        "ts_ok",
        "ts_recent",
        "entered",
        "ts_offset",
        "ttl",
        "tos",
        "reuseaddr",
        "reuseport",
        "v6only",
        "expires",
        "queued",
        "block",
        "last_oow_ack",
    )

    # what the tables' other users read from any connection (constant here)
    closed = True
    bound = True
    parent = None
    fin_received = True

    def __init__(self, sock: TcpSocket, now: float) -> None:
        assert sock.local is not None and sock.remote is not None
        self.stack = sock.stack
        self.family = sock.family
        self.state = TIME_WAIT
        self.local = sock.local
        self.remote = sock.remote
        self.snd_max = sock.snd_max
        self.rcv_nxt = sock.rcv_nxt
        self.window = sock._window()  # what the block's next ACK would have carried
        self.rwnd = max(sock.rcv_adv - sock.rcv_nxt, 0)
        self.ts_ok = sock.ts_ok
        self.ts_recent = sock.ts_recent
        # when TIME-WAIT began (Linux's tw_entry_stamp), for tw_reuse: now in the usual case,
        # where the block is replaced as it enters TIME-WAIT; for a block closed later it
        # is later than the true moment, so reuse is never allowed too soon
        self.entered = now
        self.ts_offset = sock.ts_offset
        self.ttl = sock.ttl
        self.tos = sock.tos
        self.reuseaddr = sock.reuseaddr
        self.reuseport = sock.reuseport
        self.v6only = sock.v6only
        self.expires = sock.t_misc if sock.t_misc is not None else now + 2 * sock.stack.config.msl
        self.queued = self.expires  # the expiry its place in the stack's queue stands for
        self.block: weakref.ref[TcpSocket] | None = None
        if type(sock).__weakrefoffset__:  # (module docstring)
            import weakref  # here: the footprint row has no TIME-WAIT (docs/performance.md)

            self.block = weakref.ref(sock)
        self.last_oow_ack = sock.last_oow_ack  # the rate limit goes on (stack.oow_ack_allowed)

    @property
    def snd_una(self) -> int:
        """Everything we sent (our FIN included) was acknowledged."""
        return self.snd_max

    # ------------------------------------------------------------------ input

    def segment(self, hdr: TCPHeader, payload: memoryview, now: float) -> None:
        """One segment for this 4-tuple (a SYN that may reopen it was handled before)."""
        flags = hdr.flags
        stack = self.stack
        if self.ts_ok and hdr.ts_val is not None and not flags & RST and ts_before(
            hdr.ts_val, self.ts_recent
        ):
            stack.counters["paws_dropped"] += 1
            if (len(payload) or flags & FIN) and not flags & SYN or stack.oow_ack_allowed(
                self, now, "acks_skipped_time_wait"
            ):
                self._send_ack(now)
            return
        if flags & RST:
            rcv_nxt = self.rcv_nxt
            seq = unwrap(hdr.seq, rcv_nxt)
            if seq == rcv_nxt:
                stack.counters["resets_received"] += 1
                self._finish(now, 0)
            elif rcv_nxt < seq < rcv_nxt + max(self.rwnd, 1):
                self._challenge_ack(now)
            else:
                stack.counters["rst_ignored"] += 1
            return
        if flags & SYN:
            self._challenge_ack(now)
        elif flags & FIN:
            # the peer did not hear our ACK of its FIN: ACK again, restart 2*MSL (the queue
            # moves the record to its tail when its old expiry comes); its timestamp (not
            # older: PAWS above) is the newest we have seen, as Linux's TIME-WAIT keeps it
            # (for a connection that may take this 4-tuple over: ``successor``)
            self.expires = now + 2 * stack.config.msl
            if self.ts_ok and hdr.ts_val is not None:
                self.ts_recent = hdr.ts_val
            self._send_ack(now)
        elif len(payload):
            self._send_ack(now)

    def _challenge_ack(self, now: float) -> None:
        if self.stack.challenge_ack_allowed(self, now):
            self._send_ack(now)

    def _send_ack(self, now: float) -> None:
        local, remote = self.local, self.remote
        if self.ts_ok:
            hdr = wire.pack_header_ts(
                local[1], remote[1], self.snd_max & MASK, self.rcv_nxt & MASK, 0x80, ACK,
                self.window, 0, 0, 1, 1, 8, 10,
                (int(now * 1000) + self.ts_offset) & MASK, self.ts_recent,
            )
        else:
            hdr = wire.pack_header(
                local[1], remote[1], self.snd_max & MASK, self.rcv_nxt & MASK, 0x50, ACK,
                self.window, 0, 0,
            )
        self.stack.emit(local[0], remote[0], hdr, self.ttl, self.tos)

    # ------------------------------------------------------------------ reuse

    def reusable(self, now: float, mode: int) -> bool:
        """May a new outgoing connection take this 4-tuple over now (``TcpConfig.tw_reuse``)?

        Linux's rule (``tcp_twsk_unique``, as of commit 19ce8cd30465): only with timestamps in use on the
        old connection, and only once more than a second has passed since it entered
        TIME-WAIT (older kernels waited for the seconds clock to pass the second of the
        peer's last timestamp, which could be a millisecond later). The new connection then
        starts its sequence space beyond ours and keeps the peer's last timestamp
        (``successor``), so PAWS tells its segments from old duplicates at both ends.
        ``mode`` 2 allows it for loopback traffic only: Linux checks that either address
        is a loopback one (here both are, in practice: 127/8 or ::1 route through ``lo``)."""
        if mode == 0 or self.state is not TIME_WAIT or not self.ts_ok:
            return False
        if mode == 2 and not (is_loopback(self.local[0]) or is_loopback(self.remote[0])):
            return False
        return now - self.entered > 1.0

    def take_over(self, now: float) -> None:
        """Retire this record, as its expiry would, for a new connection on its 4-tuple
        (which then starts from ``successor``)."""
        self.stack.counters["time_wait_reused"] += 1
        self._finish(now, 0)

    def successor(self) -> tuple[int, int]:
        """(ISN, ts_recent) for the connection that took this 4-tuple over: an ISN a
        maximal window beyond everything we sent, as Linux does; the peer's last timestamp,
        to reject old duplicates of its SYN-ACK. (Timestamps need nothing more: their clock
        offset is one per address pair, isn.ts_offset, so the new ones are newer.)"""
        return (self.snd_max + 0xFFFF + 2) & MASK or 1, self.ts_recent

    # ------------------------------------------------------------------ life

    def close(self, now: float) -> None:
        """Already closed by its application: nothing to do (as for the block)."""

    def _finish(self, now: float, err: int) -> None:
        """TIME-WAIT is over (expired, reset, or recycled by a new SYN): free the 4-tuple."""
        if self.state is CLOSED:
            return
        self.state = CLOSED  # (its queue entry is dropped when it reaches the head)
        stack = self.stack
        local, remote = self.local, self.remote
        key = (local[0], local[1], remote[0], remote[1])
        if stack.conns.get(key) is self:
            del stack.conns[key]
        stack.ports.release(self)
        block = self.block() if self.block is not None else None
        self.block = None
        if block is not None and block.state is TIME_WAIT:
            block._set_state(CLOSED, now)  # logs the transition and tells its owner
        else:
            stack.transition(self, TIME_WAIT, CLOSED, now)


class TimeWaitQueue:
    """A stack's TIME-WAIT records, oldest first, behind one timer-heap entry.

    Every record lives 2*MSL from the moment it was queued, so the queue is in expiry
    order and only its head needs a timer (Linux keeps its TIME-WAIT sockets on a similar
    "death row"). This keeps thousands of records out of the heap, whose pushes and pops
    would otherwise grow with them. A record whose wait a retransmitted FIN restarted is
    moved to the tail when its old expiry comes; one that ended early (RST, recycled by a
    SYN) is dropped when it reaches the head."""

    __slots__ = ("stack", "records", "armed_at")

    def __init__(self, stack: TcpStack) -> None:
        self.stack = stack
        self.records: deque[TimeWait] = deque()
        self.armed_at: float | None = None  # (the timer heap's bookkeeping)

    def add(self, record: TimeWait) -> None:
        records = self.records
        if records and record.queued < records[-1].queued:
            # a block closed by its application some time after it entered TIME-WAIT: its
            # wait started earlier than the tail's (rare; found from the tail)
            i = len(records)
            while i and records[i - 1].queued > record.queued:
                i -= 1
            records.insert(i, record)
        else:
            records.append(record)
        self.stack.timers.arm(self, record.queued)  # (nothing new unless it is the head)

    def on_timer(self, now: float) -> None:
        records = self.records
        while records:
            head = records[0]
            if head.state is CLOSED:
                records.popleft()
            elif head.expires <= now:
                records.popleft()
                head._finish(now, 0)
            elif head.expires != head.queued:
                records.popleft()  # restarted by a FIN: its place is at the tail now
                head.queued = head.expires
                records.append(head)
            else:
                self.stack.timers.arm(self, head.queued)
                return

    def __len__(self) -> int:
        return len(self.records)


def enter(sock: TcpSocket, now: float) -> TimeWait:
    """Replace ``sock`` (closed by its application, now in TIME-WAIT) by a record in the
    stack's connection, port and timer tables; ``sock`` keeps its fields (and TIME_WAIT)
    for whoever still holds it, and is no longer driven by the stack."""
    stack: TcpStack = sock.stack
    record = TimeWait(sock, now)
    stack.unregister(sock, replacement=record)
    stack.ports.replace(sock, record)
    # the block's own timer entry goes stale (compaction drops it), the record's is live
    sock.t_rexmit = sock.t_dack = sock.t_keep = sock.t_misc = None
    sock.armed_at = None
    sock.persist = False
    stack.time_wait.add(record)
    return record
