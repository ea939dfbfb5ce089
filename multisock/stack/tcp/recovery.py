"""Loss recovery: what an acknowledgment tells the sender. New data acknowledged (the
send buffer consumed, the RTT sample - timestamps, or one timed segment under Karn -,
congestion control, recovery exit or a NewReno partial ACK, RFC 6582), SACK blocks onto the
scoreboard (RFC 2018, RFC 6675's IsLost), duplicate ACKs and limited transmit's count,
fast retransmit and the entry into recovery (RFC 5681 §3.2).

With SACK, loss is RACK's to tell (RFC 8985, rack.py: a segment is lost once one sent
``reo_wnd`` later was delivered) and the tail loss probe's ACK feeds it; the window during
recovery follows PRR (RFC 6937, prr.py); D-SACKs (RFC 2883) and timestamps (Eifel, RFC
3522) tell a spurious episode, whose window reduction is undone (undo.py). Without SACK,
duplicate ACKs and NewReno as before."""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.stack.tcp.block import _SENDING
from multisock.stack.tcp.output import Output
from multisock.stack.tcp.prr import Prr
from multisock.stack.tcp.seq import MASK, ts_before, unwrap
from multisock.wire.tcp import ACK, FIN, TCPHeader

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket


class Recovery(Output):
    """ACK processing on the sender's side: SACK/NewReno loss recovery."""

    __slots__ = ()

    def _input_sack(  # type: ignore[misc]
        self: TcpSocket, blocks: list[tuple[int, int]], ack: int, now: float
    ) -> int:
        una = self.snd_una
        rack = self.rack
        pieces: list[tuple[int, int, int, int]] | None = [] if rack is not None else None
        new = 0
        first = True
        for left, right in blocks:
            start = unwrap(left, una)
            end = unwrap(right, una)
            if first:
                first = False
                if rack is not None and self._is_dsack(blocks, start, end, ack):
                    self._input_dsack(start, end, now)
                    continue
            if end <= ack or end <= start:
                continue  # D-SACK or junk
            if end > self.snd_max or end - start > self.snd_max - una:
                continue
            new += self.board.add(start, end, max(ack, una), self.snd_max, pieces)
        if pieces:
            assert rack is not None
            min_rtt = self.rtt.min_rtt or 0.0
            for start, end, lo, hi in pieces:
                rack.on_sacked(start, end, lo, hi, now, min_rtt)
        return new

    def _is_dsack(  # type: ignore[misc]
        self: TcpSocket, blocks: list[tuple[int, int]], start: int, end: int, ack: int
    ) -> bool:
        """RFC 2883 §4: the first block reports a duplicate if it lies below the
        cumulative ACK or inside the second block; only plausible ranges count."""
        if end <= start or end > self.snd_max or start < self.snd_una - self.max_sndwnd:
            return False
        if end <= ack:
            return True
        if len(blocks) > 1:
            una = self.snd_una
            start2 = unwrap(blocks[1][0], una)
            end2 = unwrap(blocks[1][1], una)
            return start2 <= start and end <= end2
        return False

    def _input_dsack(self: TcpSocket, start: int, end: int, now: float) -> None:  # type: ignore[misc]
        """A duplicate was received: the reordering window widens (RFC 8985 §6.2 step 4),
        a probe reported duplicate repaired nothing, and if every retransmission of the
        episode is now a known duplicate, the window reduction is undone."""
        rack = self.rack
        assert rack is not None
        self.stack.counters["dsack_received"] += 1
        mss = self.mss
        rack.dsack_dups += max((end - start) // mss, 1)  # (Linux counts segments)
        rack.on_dsack(self.snd_una, self.snd_nxt)
        if rack.tlp_end is not None and rack.tlp_rtx and end == rack.tlp_end:
            rack.tlp_end = None
        undo = self.undo
        if undo is not None and undo.on_dsack(start, end):
            self._undo(now, "undo_dsack")

    def _undo(self: TcpSocket, now: float, counter: str) -> None:  # type: ignore[misc]
        """The episode was spurious: cwnd and ssthresh as they were before it (Linux's
        tcp_undo_cwnd_reduction); a recovery ends, a timeout's go-back-N stops (RFC
        4015: snd_nxt back to snd_max, what is out there was delivered)."""
        undo = self.undo
        cc = self.cc
        assert undo is not None and cc is not None
        undo.active = False
        undo.events += 1
        self.stack.counters[counter] += 1
        if cc.cwnd < undo.cwnd:
            cc.cwnd = undo.cwnd
        if cc.ssthresh < undo.ssthresh:
            cc.ssthresh = undo.ssthresh
        if self.in_recovery:
            self.in_recovery = False
            self.ndup = 0
            self.lost_end = self.rxt_next = self.snd_una
            rack = self.rack
            if rack is not None:
                rack.on_recovery_exit()
        if self.snd_nxt < self.snd_max and self.retries:
            self.snd_nxt = self.snd_max
            self.rtt.backoff = 0

    def _ack_new_data(  # type: ignore[misc]
        self: TcpSocket, ack: int, acked: int, hdr: TCPHeader, now: float
    ) -> None:
        una = self.snd_una
        fin_seq = self.fin_seq
        data_end = una + self.sndq.size
        if una == self.iss:
            una += 1  # the SYN
        top = ack if fin_seq is None or ack <= fin_seq else fin_seq
        if top > data_end:
            top = data_end
        if top > una:
            self.sndq.consume(top - una)
            self.bytes_acked += top - una
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self.board.starts:
            self.board.advance(ack)
        rack = self.rack
        if rack is not None:
            rack.on_cum_ack(ack, now, self.rtt.min_rtt or 0.0)
            undo = self.undo
            if (
                undo is not None
                and undo.active
                and self.ts_ok
                and hdr.ts_ecr
                and undo.eifel(ack, hdr.ts_ecr)
            ):
                self._undo(now, "undo_eifel")
        # RTT sample: timestamps (RFC 7323 §4) or one timed segment (Karn)
        sample: float | None = None
        if self.ts_ok and hdr.ts_ecr:
            delta = (((int(now * 1000) + self.ts_offset) & MASK) - hdr.ts_ecr) & MASK  # _ts_now
            if self.karn_until is not None:
                # Karn for timestamps: an echo older than our timeout retransmission is the
                # original's, and its ACK may have been lost for as long as the outage
                if ts_before(hdr.ts_ecr, self.karn_ts):
                    delta = MASK
                if ack >= self.karn_until:
                    self.karn_until = None
            if delta < 0x7FFFFFFF:
                sample = delta / 1000.0
        elif self.rtt_seq is not None and ack >= self.rtt_seq:
            sample = now - self.rtt_time
            self.rtt_seq = None
        if sample is not None:
            self.rtt.sample(sample)
        else:
            self.rtt.backoff = 0
        self.retries = 0
        self.rexmit_start = None
        cc = self.cc
        assert cc is not None
        if self.in_recovery:
            if ack >= self.recover:
                self.in_recovery = False
                self.ndup = 0
                cc.on_recovery_exit(now)
                if rack is not None:
                    rack.on_recovery_exit()
            else:
                cc.on_recovery_ack(acked, self._pipe(), now)
                if rack is not None and rack.driving:
                    pass  # RACK tells what is lost and PRR how much goes (_rack_ack)
                elif not self.sack_ok or not self.board.starts:
                    # NewReno partial ACK (RFC 6582 §3.2): resend the next hole at once
                    self.ndup = max(self.ndup - acked // self.mss, 0)
                    self.rxt_next = ack
                    self.lost_end = ack + self.mss
                    self._retransmit_head(now)
                else:
                    if self.rxt_next < ack:
                        self.rxt_next = ack
                    if self.board.high > self.lost_end:
                        self.lost_end = self.board.high
        else:
            cc.on_ack(acked, sample, self.snd_max - una, now)
        self.dupacks = 0
        if self.snd_una >= self.snd_max:
            self.t_rexmit = None
            self.persist = False
        elif not self.persist:
            self._arm_rexmit(now)
        if self.nospace:  # (_write_space's own first test: most ACKs stop here)
            self._write_space()

    def _dupack(self: TcpSocket, newly_sacked: int, now: float) -> None:  # type: ignore[misc]
        self.dupacks += 1
        rack = self.rack
        if self.in_recovery:
            self.ndup += 1
            if self.board.high > self.lost_end and (rack is None or not rack.driving):
                self.lost_end = self.board.high
            return
        if rack is not None:
            # with SACK, loss is RACK's to tell (_rack_ack): duplicate ACKs carrying no
            # SACK block are the network's duplicates or a window's, not losses
            return
        if self.snd_nxt < self.snd_max:
            return  # still resending after a timeout
        lost = self.dupacks >= 3
        if not lost and self.sack_ok and self.board.sacked >= 3 * self.mss:
            lost = True  # RFC 6675 IsLost(): DupThresh segments sacked above snd_una
        if not lost or self.snd_una < self.recover:
            return
        self._enter_recovery(now)

    def _rack_ack(  # type: ignore[misc]
        self: TcpSocket, acked: int, delivered: int, now: float
    ) -> None:
        """After an ACK's SACK blocks and cumulative ACK are in: the probe's outcome,
        RACK's loss detection, and PRR's share for this ACK."""
        rack = self.rack
        assert rack is not None
        end = rack.tlp_end
        if end is not None and self.snd_una >= end:
            # RFC 8985 §7.4, as Linux's tcp_process_tlp_ack
            if not rack.tlp_rtx:
                rack.tlp_end = None  # a probe of new data, acknowledged
            elif self.snd_una > end:
                # the ACK goes past a probe that resent the last segment and no D-SACK
                # came for it: the original was lost and the probe repaired it
                rack.tlp_end = None
                rack.tlp_recoveries += 1
                self.stack.counters["tlp_recoveries"] += 1
                cc = self.cc
                if cc is not None and not self.in_recovery:
                    cc.on_congestion_event(self.snd_max - self.snd_una, now)
            elif acked <= 0 and delivered <= 0:
                rack.tlp_end = None  # a pure duplicate: the original and the probe arrived
        self._rack_detect(delivered if delivered > 0 else 0, now)

    def _rack_detect(self: TcpSocket, delivered: int, now: float) -> None:  # type: ignore[misc]
        """RACK_detect_loss and its consequences: recovery begins at the first loss;
        during it, cwnd is what PRR allows on top of the pipe (Linux's
        tcp_cwnd_reduction). Not while a timeout's go-back-N resends everything."""
        rack = self.rack
        assert rack is not None
        if self.snd_nxt < self.snd_max or self.state not in _SENDING:
            rack.reo_at = None
            return
        if not rack.tq:
            rack.reo_at = None  # nothing in flight that could be found lost
        elif rack.order >= 0:
            rtt = self.rtt
            min_rtt = rtt.min_rtt or 0.0
            wnd = rack.reo_wnd(
                self.in_recovery, self.board.sacked >= 3 * self.mss, min_rtt, rtt.srtt or 0.0
            )
            marked = rack.detect_loss(now, wnd)
            if marked:
                self.stack.counters["rack_lost"] += marked
                if not self.in_recovery:
                    self._rack_enter_recovery(now)
        if self.in_recovery and rack.driving:
            prr = self.prr
            cc = self.cc
            assert prr is not None and cc is not None
            pipe = self._pipe()
            cc.cwnd = pipe + prr.sndcnt(delivered, pipe, cc.ssthresh, self.mss)

    def _rack_enter_recovery(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """Fast recovery entered on RACK's word: RFC 6675's bookkeeping stays idle
        (nothing is lost in its sense), RACK's lost queue and PRR drive it."""
        cc = self.cc
        rack = self.rack
        prr = self.prr
        if prr is None:
            prr = self.prr = Prr()
        undo = self._undo_state()
        assert cc is not None and rack is not None and undo is not None
        self.stack.counters["fast_retransmits"] += 1
        una = self.snd_una
        flight = self.snd_max - una
        undo.start(cc.cwnd, cc.ssthresh, una, self.snd_max)
        cc.on_congestion_event(flight, now)
        self.in_recovery = True
        self.recover = self.snd_max
        self.ndup = self.dupacks
        self.rxt_next = una
        self.lost_end = una
        rack.driving = True
        prr.start(flight)

    def _enter_recovery(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        cc = self.cc
        assert cc is not None
        self.stack.counters["fast_retransmits"] += 1
        undo = self._undo_state()
        if undo is not None:
            undo.start(cc.cwnd, cc.ssthresh, self.snd_una, self.snd_max)
        cc.on_congestion_event(self.snd_max - self.snd_una, now)
        self.in_recovery = True
        self.recover = self.snd_max
        self.ndup = self.dupacks
        self.rxt_next = self.snd_una
        self.lost_end = max(self.board.high, self.snd_una + self.mss)
        self._retransmit_head(now)

    def _retransmit_head(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """Resend the first unacknowledged segment regardless of the window (fast retransmit)."""
        una = self.snd_una
        hole = self.board.next_hole(una, self.snd_max)
        if hole is None:
            return
        start, end = hole
        n = min(end - start, self.mss)
        fin_seq = self.fin_seq
        flags = ACK
        if fin_seq is not None and start + n >= fin_seq:
            n = fin_seq - start
            flags |= FIN
        self._send_data(start, n, now, flags)
        if start + n > self.rxt_next:
            self.rxt_next = start + n
