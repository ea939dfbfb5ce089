"""RACK-TLP (RFC 8985): time-based loss detection and the tail loss probe's clock.

A segment is lost when a segment sent sufficiently later - by more than the reordering
window ``reo_wnd`` - has been delivered (cumulatively acknowledged or SACKed): loss is
told by *when* things were sent, not by how many duplicate ACKs came back. That needs
the time of every transmission, so the sender keeps one record (``Sent``) per segment
it transmits (new data appends one; a retransmission refreshes the record it covers).

Two orders, two structures, bounded work:

* ``recs`` - the records in sequence order (a list with a moving head, ``first``):
  the cumulative ACK pops them from the head, a SACK block finds its records by
  bisection. New data only ever appends. A retransmission replaces the records it
  overlaps by one record of its own (cut where its edges fall inside a record: the MSS
  shrank, or SACK options took room): a record is always exactly one transmission, so a
  record found lost is resent as one segment, never as a stretch of the window.
* ``tq`` - the records in time order (a deque): RACK's scan. Records replaced by a
  retransmission, and records already delivered, are dropped when they reach the head;
  a record found lost leaves ``tq`` for ``lostq`` (its retransmission is a new record). So every entry is
  looked at once by the scan, however large the window: the scan stops at the first
  live transmission that is not lost yet (everything behind it was sent later, so it
  is not lost either: its own timeout comes later) and at most ``SCAN_LIMIT`` entries
  go per call - past that, the caller arms the reordering timer for now and goes on
  at the next turn of the driver. That is the bound on the per-ACK work (design.md,
  "Bounded work per packet"), amortised O(1) per segment sent.

The records know nothing of the connection: the engine (recovery.py, output.py,
timeouts.py) feeds them sends, acknowledgements and SACKed ranges, and asks for losses.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from operator import attrgetter
from typing import Final

#: transmissions examined per scan before the rest is left to the reordering timer
SCAN_LIMIT: Final = 256
#: reo_wnd's floor, and its step's: RTT samples tick in milliseconds with timestamps, so
#: min_rtt can be 0 (also on a simulated link whose reordered packets skip the delay), and
#: a fake clock's are exact - a window of 0 would call every reordering a loss, and
#: D-SACK's multiplier (RFC 8985 §6.2 step 4) would have nothing to multiply
REO_WND_MIN: Final = 0.001
#: RFC 8985 §7.2: the worst-case delayed ACK added to the PTO when one segment is in flight
WC_DEL_ACK: Final = 0.2
#: RFC 8985 §7.2 has no floor; Linux keeps the probe timeout at 10 ms at least
PTO_MIN: Final = 0.01
#: the PTO before any RTT sample (RFC 8985 §7.2)
PTO_NO_RTT: Final = 1.0
#: recoveries without a D-SACK before the window multiplier resets (RFC 8985 §6.2 step 4)
REO_WND_PERSIST: Final = 16

TIMER_NONE: Final = 0
TIMER_REO: Final = 1  # the RACK reordering timer
TIMER_PTO: Final = 2  # the tail loss probe

_start: Final = attrgetter("start")


class Sent:
    """One segment as last transmitted: its range, when, and what became of it."""

    __slots__ = ("start", "end", "xmit", "order", "rtx", "sacked", "lost", "done")

    def __init__(self, start: int, end: int, xmit: float, order: int) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.order = order  # the connection's transmission count when sent
        self.rtx = False
        self.sacked = False
        self.lost = False  # marked lost and not retransmitted since
        self.done = False  # cumulatively acknowledged, or merged into another record


class Rack:
    """Per-connection RACK-TLP state (created once SACK is in use)."""

    __slots__ = (
        "recs", "first", "tq", "lostq", "lost_out",
        # RFC 8985 §6.1's RACK.*: the most recently sent delivered segment, its RTT
        "xmit", "order", "sent", "rtt", "fack", "fack_before", "reordering_seen", "reord_ack",
        "reo_wnd_mult", "reo_wnd_persist", "dsack_round", "reo_at",
        # the one timer slot shared with the RTO (output.py's _arm_loss_timer)
        "timer", "timer_at", "rto_at",
        # TLP (RFC 8985 §7): the probe in flight (None: none), whether it was a resend
        "tlp_end", "tlp_rtx", "driving",
        # counters (per connection; TCP_INFO-like info)
        "probes", "lost_segs", "reord_seen", "dsack_dups", "tlp_recoveries",
    )

    def __init__(self) -> None:
        self.recs: list[Sent] = []
        self.first = 0
        self.tq: deque[Sent] = deque()
        self.lostq: deque[Sent] = deque()
        self.lost_out = 0  # bytes marked lost and neither delivered nor resent since
        self.xmit = -1.0
        # RFC 8985's RACK_sent_after breaks ties in time by sequence number; a count of
        # transmissions orders them exactly (a retransmission sent in the same clock tick
        # as later originals is still after them)
        self.order = -1
        self.sent = 0
        self.rtt = 0.0
        self.fack = 0  # the highest end delivered
        self.fack_before = 0  # ... before the ACK being processed
        self.reordering_seen = False
        self.reord_ack = False  # this ACK already counted as a reordering event
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round: int | None = None
        self.reo_at: float | None = None
        self.timer = TIMER_NONE
        self.timer_at = 0.0
        self.rto_at: float | None = None
        self.tlp_end: int | None = None
        self.tlp_rtx = False
        self.driving = False  # the current recovery was entered by RACK (lostq drives it)
        self.probes = 0
        self.lost_segs = 0
        self.reord_seen = 0
        self.dsack_dups = 0
        self.tlp_recoveries = 0

    # ------------------------------------------------------------------ transmissions

    def on_send(self, start: int, end: int, now: float, snd_max: int) -> None:
        """A segment [start, end) went out now (``snd_max`` as it was before)."""
        recs = self.recs
        self.sent += 1
        first = self.first
        n = len(recs)
        if start >= snd_max or n == first:
            rec = Sent(start, end, now, self.sent)
            recs.append(rec)
            self.tq.append(rec)
            return
        # a retransmission: the records it overlaps, [i, j)
        i = bisect_right(recs, start, first, n, key=_start) - 1
        if i < first:
            i = first
        elif recs[i].end <= start:
            i += 1
        j = bisect_left(recs, end, i, n, key=_start)
        if j <= i:
            return  # (below what is still recorded: already acknowledged)
        new = Sent(start, end, now, self.sent)
        new.rtx = True
        lo = recs[i]
        hi = recs[j - 1]
        # the parts outside [start, end) keep their own transmission's state: the record
        # below keeps its object (and its place in ``tq``), the one above too, or a copy
        # when one record holds both sides; what is inside becomes the new record (so a
        # record never spans more than one transmission, whatever the MSS did)
        repl: list[Sent] = []
        keep_lo = lo.start < start
        keep_hi = hi.end > end
        lost_inside = 0
        for k in range(i, j):
            rec = recs[k]
            if rec.lost:
                lost_inside += (rec.end if rec.end < end else end) - (
                    rec.start if rec.start > start else start
                )
            if not ((rec is lo and keep_lo) or (rec is hi and keep_hi)):
                rec.done = True
        self.lost_out -= lost_inside
        if keep_lo:
            repl.append(lo)
        repl.append(new)
        if keep_hi:
            if hi is lo and keep_lo:
                right = Sent(end, hi.end, hi.xmit, hi.order)
                right.rtx = hi.rtx
                right.sacked = hi.sacked
                right.lost = hi.lost
                if right.lost:
                    self.lostq.append(right)
                elif not right.sacked:
                    self.tq.append(right)  # (out of time order: found late, never early)
            else:
                right = hi
                right.start = end
            repl.append(right)
        if keep_lo:
            lo.end = start
        recs[i:j] = repl
        self.tq.append(new)

    def last_segment(self) -> Sent | None:
        """The highest record not yet acknowledged (what a retransmitting probe resends)."""
        recs = self.recs
        return recs[-1] if len(recs) > self.first else None

    # ------------------------------------------------------------------ deliveries

    def on_cum_ack(self, ack: int, now: float, min_rtt: float) -> None:
        """The cumulative ACK moved to ``ack``: its records are delivered.

        An original delivered in order, not below what was delivered before this ACK, only
        matters to RACK through the latest such one (its RTT, its send time; originals are
        sent in sequence order): those are handed to ``_delivered`` as one, the last of a
        run, so an ACK of many segments costs one call; any other record goes on its own,
        in order, after the run before it."""
        recs = self.recs
        i = self.first
        n = len(recs)
        fack_before = self.fack_before
        last: Sent | None = None  # the run of plain originals not yet handed over
        while i < n:
            rec = recs[i]
            if rec.end > ack:
                break
            rec.done = True
            if rec.lost:
                rec.lost = False
                self.lost_out -= rec.end - rec.start
            if not rec.sacked:
                if rec.rtx or rec.end < fack_before:
                    if last is not None:
                        self._delivered(last, now, min_rtt)
                        last = None
                    self._delivered(rec, now, min_rtt)
                else:
                    last = rec
            i += 1
        if last is not None:
            self._delivered(last, now, min_rtt)
        if i == n:
            # every record is delivered, so is everything in ``tq`` (each entry is a
            # record of ``recs`` or one already marked done): nothing for the scan
            recs.clear()
            self.first = 0
            self.tq.clear()
            return
        if i > 64 and i > (n >> 1):
            del recs[:i]  # amortised: at most once per half of the list consumed
            self.first = 0
        else:
            self.first = i
        tq = self.tq
        while tq and tq[0].done:
            tq.popleft()  # (the scan's own first step: what the ACK took leaves the head)

    def on_sacked(
        self, start: int, end: int, lo: int, hi: int, now: float, min_rtt: float
    ) -> None:
        """[start, end) was newly SACKed, inside the scoreboard's range [lo, hi): the
        records it touches that the range now covers whole are delivered."""
        recs = self.recs
        i = bisect_right(recs, start, self.first, len(recs), key=_start) - 1
        if i < self.first:
            i = self.first
        n = len(recs)
        while i < n:
            rec = recs[i]
            if rec.start >= end:
                break
            i += 1
            if rec.sacked or rec.end > hi or rec.start < lo or rec.end <= start:
                continue
            rec.sacked = True
            if rec.lost:
                rec.lost = False
                self.lost_out -= rec.end - rec.start
            self._delivered(rec, now, min_rtt)

    def _delivered(self, rec: Sent, now: float, min_rtt: float) -> None:
        """RFC 8985 §6.2 steps 2 and 3 for one newly delivered segment."""
        if rec.end > self.fack:
            self.fack = rec.end
        if rec.end < self.fack_before and not rec.rtx:
            # an original delivered after a segment sent later was: reordering
            self.reordering_seen = True
            if not self.reord_ack:
                self.reord_ack = True
                self.reord_seen += 1
        rtt = now - rec.xmit
        if rec.rtx and rtt < min_rtt:
            return  # this ACK is probably the original's: no RTT, no RACK.xmit_ts
        self.rtt = rtt
        if rec.order > self.order:
            self.xmit = rec.xmit
            self.order = rec.order

    # ------------------------------------------------------------------ the window

    def on_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """RFC 8985 §6.2 step 4: a round that saw a D-SACK widens the window a step."""
        if self.dsack_round is not None and snd_una >= self.dsack_round:
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def on_recovery_exit(self) -> None:
        self.driving = False
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1

    def reo_wnd(
        self, in_recovery: bool, dupthresh_sacked: bool, min_rtt: float, srtt: float
    ) -> float:
        """RACK_update_reo_wnd's value: 0 once loss is evident and no reordering was seen
        (RFC 6675's DupThresh in time form), else min_rtt/4 per step, at most SRTT."""
        if not self.reordering_seen and (in_recovery or dupthresh_sacked):
            return 0.0
        step = min_rtt / 4
        if step < REO_WND_MIN:
            step = REO_WND_MIN  # (so that D-SACK's steps still widen it when min_rtt is 0)
        wnd = self.reo_wnd_mult * step
        if wnd > srtt:
            wnd = srtt
        return wnd if wnd > REO_WND_MIN else REO_WND_MIN

    # ------------------------------------------------------------------ detection

    def detect_loss(self, now: float, reo_wnd: float) -> int:
        """RFC 8985 RACK_detect_loss, in time order. Marks lost segments (onto
        ``lostq``), sets ``reo_at`` (when the next one would be lost: the reordering
        timer, or now when the scan budget ran out); returns how many were marked."""
        self.reo_at = None
        tq = self.tq
        lostq = self.lostq
        rack_order = self.order
        deadline_base = self.rtt + reo_wnd
        marked = 0
        budget = SCAN_LIMIT
        while tq:
            rec = tq[0]
            if rec.done or rec.sacked or rec.lost:
                tq.popleft()
                continue
            if rec.order > rack_order:
                break  # sent after the newest delivered segment: nothing to say yet
            remaining = rec.xmit + deadline_base - now
            if remaining > 0:
                self.reo_at = now + remaining
                break
            tq.popleft()
            rec.lost = True
            self.lost_out += rec.end - rec.start
            lostq.append(rec)
            marked += 1
            budget -= 1
            if not budget:
                self.reo_at = now  # more to look at: go on at the driver's next turn
                break
        self.lost_segs += marked
        return marked

    def next_lost(self) -> Sent | None:
        """The next segment to retransmit (``lostq`` in marking order)."""
        lostq = self.lostq
        while lostq:
            rec = lostq.popleft()
            if rec.lost and not rec.done:
                return rec
        if self.lost_out:
            self.lost_out = 0  # (nothing left to resend: the count is stale)
        return None

    def drop_lost(self, rec: Sent) -> None:
        """A lost record with nothing left to resend (acknowledged or SACKed in parts)."""
        if rec.lost:
            rec.lost = False
            self.lost_out -= rec.end - rec.start

    def forget_losses(self) -> None:
        """A timeout resends everything from snd_una (go-back-N): no separate queue."""
        for rec in self.lostq:
            rec.lost = False
        self.lostq.clear()
        self.lost_out = 0
        self.reo_at = None
        self.driving = False
        self.tlp_end = None

