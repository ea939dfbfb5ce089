"""Loss recovery: what an acknowledgment tells the sender. New data acknowledged (the
send buffer consumed, the RTT sample - timestamps, or one timed segment under Karn -,
congestion control, recovery exit or a NewReno partial ACK, RFC 6582), SACK blocks onto the
scoreboard (RFC 2018, RFC 6675's IsLost), duplicate ACKs and limited transmit's count,
fast retransmit and the entry into recovery (RFC 5681 §3.2). RACK-TLP and PRR belong here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.stack.tcp.output import Output
from multisock.stack.tcp.seq import MASK, ts_before, unwrap
from multisock.wire.tcp import ACK, FIN, TCPHeader

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket


class Recovery(Output):
    """ACK processing on the sender's side: SACK/NewReno loss recovery."""

    __slots__ = ()

    def _input_sack(  # type: ignore[misc]
        self: TcpSocket, blocks: list[tuple[int, int]], ack: int
    ) -> int:
        una = self.snd_una
        new = 0
        for left, right in blocks:
            start = unwrap(left, una)
            end = unwrap(right, una)
            if end <= ack or end <= start:
                continue  # D-SACK or junk
            if end > self.snd_max or end - start > self.snd_max - una:
                continue
            new += self.board.add(start, end, max(ack, una), self.snd_max)
        return new

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
        # RTT sample: timestamps (RFC 7323 §4) or one timed segment (Karn)
        sample: float | None = None
        if self.ts_ok and hdr.ts_ecr:
            delta = (self._ts_now(now) - hdr.ts_ecr) & MASK
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
            else:
                cc.on_recovery_ack(acked, self._pipe(), now)
                if not self.sack_ok or not self.board.starts:
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
        self._write_space()

    def _dupack(self: TcpSocket, newly_sacked: int, now: float) -> None:  # type: ignore[misc]
        self.dupacks += 1
        if self.in_recovery:
            self.ndup += 1
            if self.board.high > self.lost_end:
                self.lost_end = self.board.high
            return
        if self.snd_nxt < self.snd_max:
            return  # still resending after a timeout
        lost = self.dupacks >= 3
        if not lost and self.sack_ok and self.board.sacked >= 3 * self.mss:
            lost = True  # RFC 6675 IsLost(): DupThresh segments sacked above snd_una
        if not lost or self.snd_una < self.recover:
            return
        self._enter_recovery(now)

    def _enter_recovery(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        cc = self.cc
        assert cc is not None
        self.stack.counters["fast_retransmits"] += 1
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
