"""A segment arriving at its connection, in RFC 9293 §3.10.7's order: SYN-SENT first; then
the sequence check with PAWS (RFC 7323 §5), RST, SYN, ACK, data, FIN - with RFC 5961's
stricter RST/SYN/ACK rules (challenge ACKs) and the rate limit on ACKs that answer segments
which did not advance the connection. Also the handshake's completion (SYN-SENT and
SYN-RECEIVED to ESTABLISHED, a listener's accept queue), in-order and out-of-order data, the
FIN and the entry into TIME-WAIT. What the ACK field does to the send side is recovery.py's."""

from __future__ import annotations

import errno as E
from typing import TYPE_CHECKING

from multisock.stack.tcp import timewait
from multisock.stack.tcp.block import (
    _RECEIVING,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    URG_NONE,
    URG_NOTYET,
    URG_VALID,
)
from multisock.stack.tcp.seq import HALF, MASK, ts_before, unwrap
from multisock.stack.tcp.timeouts import Timeouts
from multisock.wire.tcp import ACK, FIN, RST, SYN, URG, TCPHeader

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket


class Arrival(Timeouts):
    """Segment arrival, RFC 9293 §3.10.7 order."""

    __slots__ = ()

    def segment(  # type: ignore[misc]
        self: TcpSocket, hdr: TCPHeader, payload: memoryview, now: float
    ) -> None:
        """One segment for this connection (4-tuple matched)."""
        self.segs_in += 1
        state = self.state
        if state is SYN_SENT:
            self._input_syn_sent(hdr, payload, now)
            return
        if state is CLOSED or state is LISTEN:
            return
        flags = hdr.flags
        rcv_nxt = self.rcv_nxt
        # seq.unwrap and seq.ts_before, inline here and in _input_ack: every segment
        seq = rcv_nxt + ((hdr.seq - rcv_nxt + HALF) & MASK) - HALF
        seglen = len(payload)
        # PAWS (RFC 7323 §5): an old timestamp marks an old duplicate
        ts_val = hdr.ts_val
        if (
            self.ts_ok
            and ts_val is not None
            and not flags & RST
            and ((ts_val - self.ts_recent) & MASK) >= HALF
        ):
            self.stack.counters["paws_dropped"] += 1
            self._oow_ack(flags, seglen, now, "acks_skipped_paws")
            return
        rwnd = self.rcv_adv - rcv_nxt
        if rwnd < 0:
            rwnd = 0
        if flags & RST:
            self._input_rst(seq, rwnd, now)
            return
        if state is TIME_WAIT:
            self._input_time_wait(hdr, seq, seglen, now)
            return
        if flags & SYN and state is SYN_RECEIVED and seq == self.irs:
            if not flags & ACK:
                self._send_syn(now)  # our SYN-ACK was lost: repeat it
                return
            if self.parent is None and unwrap(hdr.ack, self.snd_una) == self.iss + 1 and not seglen:
                # simultaneous open: the peer's SYN-ACK completes it (as Linux accepts it)
                flags &= ~SYN
                seq = self.rcv_nxt
        occupied = seglen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if occupied == 0:
            ok = seq == rcv_nxt if rwnd == 0 else rcv_nxt <= seq < rcv_nxt + rwnd
        elif rwnd == 0:
            ok = False
        else:
            last = seq + occupied - 1
            ok = rcv_nxt <= seq < rcv_nxt + rwnd or rcv_nxt <= last < rcv_nxt + rwnd
        if not ok:
            if seglen and seq + seglen <= rcv_nxt and self.sack_ok:
                self.dsack = (seq, seq + seglen)  # RFC 2883 duplicate report
            if flags & SYN and state is not SYN_RECEIVED:
                self._challenge_ack(now)
                return
            if rwnd == 0 and seq == rcv_nxt and flags & ACK:
                # a zero window still lets ACKs in (RFC 9293 §3.10.7.4)
                payload = payload[:0]
                flags &= ~FIN
                seglen = 0
                self.ack_now = True
            else:
                self.stack.counters["out_of_window"] += 1
                self._oow_ack(flags, seglen, now, "acks_skipped_seq")
                return
        if flags & SYN:
            # RFC 5961 §4: any SYN in a synchronized state gets a challenge ACK
            self._challenge_ack(now)
            return
        if not flags & ACK:
            return
        self.last_rcv = now
        self.probes = 0
        if self._keepalive:
            self.t_keep = now + self.keepidle
        if self.ts_ok and ts_val is not None and seq <= self.rcv_acked:
            self.ts_recent = ts_val
        if not self._input_ack(hdr, seq, seglen, now):
            return
        state = self.state
        if state is CLOSED:
            return
        if flags & URG and state in _RECEIVING:
            self._input_urgent(seq, hdr.urgent)
        # trim what is already received or beyond the window
        fin = bool(flags & FIN)
        if seq < self.rcv_nxt:
            cut = self.rcv_nxt - seq
            if cut >= seglen:
                if seglen and self.sack_ok:
                    self.dsack = (seq, seq + seglen)
                payload = payload[:0]
                if seglen or fin:
                    self.ack_now = True
                if fin and seq + seglen < self.rcv_nxt:
                    fin = False
                seq = self.rcv_nxt if seglen else seq
            else:
                payload = payload[cut:]
                seq = self.rcv_nxt
            seglen = len(payload)
        edge = self.rcv_adv if self.rcv_adv > self.rcv_nxt else self.rcv_nxt
        if seq + seglen > edge:
            payload = payload[: max(edge - seq, 0)]
            seglen = len(payload)
            fin = False
            self.ack_now = True
        if seglen:
            if state in _RECEIVING:
                if self.closed:
                    # data for a socket the application closed: Linux answers RST
                    self.stack.counters["rst_data_after_close"] += 1
                    self._send_rst_to_peer(now)
                    self._finish(now, 0)
                    return
                self._input_data(seq, payload, fin, now)
            else:
                self.ack_now = True
        elif fin:
            self._input_fin(seq, now)
        if self.urg_state == URG_NOTYET and self.urg_seq < self.rcv_nxt:
            self.urg_byte = self.recvq.byte_at(self.urg_seq - self._read_seq())
            self.urg_state = URG_VALID
            self.stack.touch(self)  # select's exceptional condition
        self._output(now)
        rack = self.rack
        if rack is not None and (
            rack.timer or rack.reo_at is not None or self.snd_max != self.snd_una
        ):
            self._arm_loss_timer(now)  # (not when nothing is in flight and no timer is ours)
        if self.t_dack is not None:
            self._rearm()

    def _read_seq(self: TcpSocket) -> int:  # type: ignore[misc]
        """The sequence number of the next byte the application reads (Linux's copied_seq)."""
        return self.rcv_nxt - self.recvq.size - (1 if self.fin_received else 0)

    def _input_urgent(self: TcpSocket, seq: int, pointer: int) -> None:  # type: ignore[misc]
        """A segment with URG (Linux's tcp_check_urg): the pointer is past the urgent byte
        (BSD's reading, tcp_stdurg off). A pointer already read past, behind what we have
        received, or not beyond the one we know is ignored; an earlier urgent byte not yet
        read and sitting at the read point is dropped, as Linux drops it."""
        ptr = seq + pointer - 1 if pointer else seq
        recvq = self.recvq
        copied = self._read_seq()
        if copied > ptr or ptr < self.rcv_nxt:
            return
        if self.urg_state != URG_NONE:
            if ptr <= self.urg_seq:
                return
            if not self.oobinline and self.urg_seq == copied and recvq.size:
                recvq.read_into(memoryview(bytearray(1)))
        self.urg_state = URG_NOTYET
        self.urg_seq = ptr

    def _challenge_ack(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        if self.stack.challenge_ack_allowed(self, now):
            self._send_ack(now)

    def _oow_ack(  # type: ignore[misc]
        self: TcpSocket, flags: int, seglen: int, now: float, counter: str
    ) -> None:
        """ACK a segment that did not advance the connection, within the per-connection
        rate limit (``TcpStack.oow_ack_allowed``). A segment occupying sequence space
        without SYN (data or FIN) is answered at once, as Linux does: it is no part of an
        ACK loop, and its sender is waiting for that (D)SACK or ACK of its FIN."""
        exempt = (seglen or flags & FIN) and not flags & SYN
        if exempt or self.stack.oow_ack_allowed(self, now, counter):
            self._send_ack(now)

    def _input_rst(self: TcpSocket, seq: int, rwnd: int, now: float) -> None:  # type: ignore[misc]
        """RFC 5961 §3: only an exact RST resets; an in-window one gets a challenge ACK."""
        if seq == self.rcv_nxt or (self.state is SYN_RECEIVED and seq == self.irs + 1):
            self.stack.counters["resets_received"] += 1
            state = self.state
            if state is SYN_RECEIVED:
                err = E.ECONNREFUSED if self.parent is None else 0
            elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
                err = E.ECONNRESET
            elif state is CLOSE_WAIT:
                err = E.EPIPE
            else:
                err = 0
            if self.closed:
                err = 0
            self._finish(now, err)
        elif self.rcv_nxt < seq < self.rcv_nxt + max(rwnd, 1):
            self._challenge_ack(now)
        else:
            self.stack.counters["rst_ignored"] += 1

    def _input_time_wait(  # type: ignore[misc]
        self: TcpSocket, hdr: TCPHeader, seq: int, seglen: int, now: float
    ) -> None:
        """Only a retransmitted FIN (or stray data) is answered: a pure ACK is not, or two
        sockets that closed simultaneously would ACK each other's ACKs for ever."""
        if hdr.flags & SYN:
            self._challenge_ack(now)
            return
        if hdr.flags & FIN:
            # the peer did not hear our ACK of its FIN: ACK again, restart 2*MSL
            self.t_misc = now + 2 * self.stack.config.msl
            self._rearm()
            self._send_ack(now)
        elif seglen:
            self._send_ack(now)

    def _input_ack(  # type: ignore[misc]
        self: TcpSocket, hdr: TCPHeader, seq: int, seglen: int, now: float
    ) -> bool:
        """RFC 9293 §3.10.7.4 fifth check; False when the segment is to be dropped."""
        una = self.snd_una
        ack = una + ((hdr.ack - una + HALF) & MASK) - HALF  # (seq.unwrap)
        state = self.state
        if state is SYN_RECEIVED:
            if not self.snd_una < ack <= self.snd_max:
                self._send_rst(ack, now)
                return False
            if not self._established_from_syn_received(hdr, seq, now):
                return False
            state = self.state
        una = self.snd_una
        if ack > self.snd_max:
            # an ACK of data never sent: answered at most once per rate-limit interval
            # whatever it carries (the other end of a desynchronised pair answers that ACK
            # as out of window: without the limit, the two never stop)
            self.stack.counters["ack_too_new"] += 1
            if self.stack.oow_ack_allowed(self, now, "acks_skipped_unsent"):
                self._send_ack(now)
            return False
        if ack < una - self.max_sndwnd:
            self.stack.counters["ack_too_old"] += 1
            self._challenge_ack(now)
            return False
        window = hdr.window << self.snd_wscale
        newly_sacked = 0
        sacked_before = self.board.sacked
        rack = self.rack
        if rack is not None:
            # an ACK arrives: its SACK blocks and cumulative ACK are compared with what was
            # delivered before it, in whatever order they are walked
            rack.fack_before = rack.fack
            rack.reord_ack = False
        if self.sack_ok and hdr.sack_blocks:
            newly_sacked = self._input_sack(hdr.sack_blocks, ack, now)
        acked = ack - una
        if acked > 0:
            self._ack_new_data(ack, acked, hdr, now)
        elif (
            ack == una
            and self.snd_max > una
            and not seglen
            and not hdr.flags & (SYN | FIN)
            and (newly_sacked or window == self.snd_wnd)
        ):
            self._dupack(newly_sacked, now)
        if rack is not None:
            tq = rack.tq
            head = tq[0] if tq else None
            if (
                head is None
                or (head.order > rack.order and not (head.done or head.sacked or head.lost))
            ) and rack.tlp_end is None and not self.in_recovery:
                # nothing in flight, or the oldest transmission still out was sent after the
                # newest delivered one: nothing can be lost yet (_rack_ack's answer, whose
                # scan would stop at that head, without its calls: the ACK of a clean path)
                rack.reo_at = None
            else:
                # RFC 6937's DeliveredData: what the cumulative ACK and the SACKs moved
                self._rack_ack(acked, acked + self.board.sacked - sacked_before, now)
        # window update (RFC 9293: SND.WL1/WL2 ordering)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            old = self.snd_wnd
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if window > self.max_sndwnd:
                self.max_sndwnd = window
            if window and not old and self.persist:
                self.persist = False
                self.t_rexmit = None
                self.rtt.backoff = 0
                self.rexmit_start = None  # the window opened: a later probing starts anew
            if window > old:
                self.stack.touch(self)
        # our FIN acknowledged?
        fin_seq = self.fin_seq
        if fin_seq is not None and self.snd_una > fin_seq:
            if state is FIN_WAIT_1:
                self._set_state(FIN_WAIT_2, now)
                if self.closed:
                    self.t_misc = now + self.stack.config.fin_timeout
                    self._rearm()
            elif state is CLOSING:
                self._enter_time_wait(now)
                return False
            elif state is LAST_ACK:
                self._finish(now, 0)
                return False
        return True

    def _input_data(  # type: ignore[misc]
        self: TcpSocket, seq: int, payload: memoryview, fin: bool, now: float
    ) -> None:
        n = len(payload)
        self.data_segs_in += 1
        if n > self.rcv_mss:
            self.rcv_mss = min(n, self.adv_mss)
        if seq == self.rcv_nxt:
            self.recvq.append(payload)
            self.rcv_nxt = seq + n
            self.bytes_received += n
            ooo = self.ooo
            if ooo.ranges:
                for chunk in ooo.pop_ready(self.rcv_nxt):
                    self.recvq.append(chunk)
                    self.rcv_nxt += len(chunk)
                    self.bytes_received += len(chunk)
                self.ack_now = True  # a hole was filled: tell the sender at once
            if fin:
                self._input_fin(seq + n, now)
            elif self.ooo_fin is not None and self.ooo_fin == self.rcv_nxt:
                self._input_fin(self.rcv_nxt, now)
            if not self.ack_now:
                if (
                    self.quickack
                    or self.quick_left > 0
                    or self.rcv_nxt - self.rcv_acked >= 2 * self.rcv_mss
                ):
                    if self.quick_left > 0:
                        self.quick_left -= 1
                    self.ack_now = True
                elif self.t_dack is None:
                    self.t_dack = now + self.stack.config.delayed_ack
            self.stack.touch(self)
        else:
            # out of order: keep it (bounded) and ACK at once with SACK (RFC 5681 §4.2)
            self.ooo_last = seq
            if not self.ooo.add(seq, payload):
                self.ooo_dropped += 1
                self.stack.counters["ooo_dropped"] += 1
            if fin:
                self.ooo_fin = seq + n
            self.ack_now = True

    def _input_fin(self: TcpSocket, seq: int, now: float) -> None:  # type: ignore[misc]
        if seq != self.rcv_nxt:
            if seq > self.rcv_nxt:
                self.ooo_fin = seq
            return
        self.ooo_fin = None
        self.rcv_nxt += 1
        self.fin_received = True
        self.ack_now = True
        state = self.state
        if state is ESTABLISHED:
            self._set_state(CLOSE_WAIT, now)
        elif state is FIN_WAIT_1:
            if self.fin_seq is not None and self.snd_una > self.fin_seq:
                self._enter_time_wait(now)
            else:
                self._set_state(CLOSING, now)
        elif state is FIN_WAIT_2:
            self._enter_time_wait(now)
        self.stack.touch(self)

    def _enter_time_wait(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        if self.ack_now:
            self._send_ack(now)
        self._set_state(TIME_WAIT, now)
        self.t_rexmit = None
        self.t_dack = None
        self.t_keep = None
        self.persist = False
        self.t_misc = now + 2 * self.stack.config.msl
        self.sndq.clear()
        if self.closed:
            # nobody will read or write here again: a small record holds the 4-tuple
            timewait.enter(self, now)
        else:
            self._rearm()

    def _input_syn_sent(  # type: ignore[misc]
        self: TcpSocket, hdr: TCPHeader, payload: memoryview, now: float
    ) -> None:
        flags = hdr.flags
        ack_ok = False
        if flags & ACK:
            ack = unwrap(hdr.ack, self.snd_una)
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self._send_rst(ack, now)
                return
            ack_ok = True
            ts_val = hdr.ts_val
            if self.ts_recent and ts_val is not None and ts_before(ts_val, self.ts_recent):
                # PAWS with the ts_recent inherited from a reused TIME-WAIT (connect): an
                # old duplicate from the previous connection, dropped as Linux does
                self.stack.counters["paws_dropped"] += 1
                return
        if flags & RST:
            if ack_ok:
                self.stack.counters["resets_received"] += 1
                self._finish(now, E.ECONNREFUSED)
            return
        if not flags & SYN:
            return
        self.irs = hdr.seq
        self.rcv_nxt = hdr.seq + 1
        self.rcv_acked = self.rcv_nxt
        self._negotiate(hdr, now)
        self.snd_wl1 = self.rcv_nxt - 1
        if ack_ok:
            self.snd_una = self.iss + 1
            self.snd_wnd = hdr.window  # never scaled in a SYN
            self.max_sndwnd = self.snd_wnd
            self.snd_wl2 = self.snd_una
            if self.rtt_seq is None and self.retries == 0 and not self.ts_ok:
                self.rtt.sample(now - self.created)
            elif self.ts_ok and hdr.ts_ecr:
                self._handshake_ts_sample(hdr.ts_ecr, now)
            if self.retries:
                self.rtt.backoff = 0
            self.retries = 0
            self.t_rexmit = None
            self._established(now)
            if len(payload):
                self.rcv_adv = self.rcv_nxt + min(self.rcvbuf, 0xFFFF)
                self._input_data(self.rcv_nxt, payload, bool(flags & FIN), now)
            self.ack_now = True
            self._output(now)
        else:
            # simultaneous open (RFC 9293 §3.5, figure 8)
            self.snd_wnd = hdr.window
            self._set_state(SYN_RECEIVED, now)
            self._send_syn(now)
            self._arm_rexmit(now)

    def _handshake_ts_sample(self: TcpSocket, ts_ecr: int, now: float) -> None:  # type: ignore[misc]
        """The RTT sample of the ACK of our SYN(-ACK), from its echoed timestamp - unless
        our SYN(-ACK) was repeated and the echo is older than the last copy (``karn_ts``,
        set by ``_send_syn``): the peer's TS.Recent still holds the first copy's TSval
        (a duplicate SYN-ACK is out of window there), and "now minus that" is the outage,
        not a round trip. One such 1 s sample on a 1 ms path inflated the RTO to 3.5 s and
        a loss recovery waited that long for it."""
        stale = self.karn_until is not None and ts_before(ts_ecr, self.karn_ts)
        self.karn_until = None
        if not stale:
            self.rtt.sample(((self._ts_now(now) - ts_ecr) & MASK) / 1000.0)

    def _established_from_syn_received(  # type: ignore[misc]
        self: TcpSocket, hdr: TCPHeader, seq: int, now: float
    ) -> bool:
        self.snd_una = self.iss + 1
        self.snd_wnd = hdr.window << self.snd_wscale
        self.max_sndwnd = self.snd_wnd
        self.snd_wl1 = seq
        self.snd_wl2 = self.snd_una
        if self.retries == 0 and not self.ts_ok:
            self.rtt.sample(now - self.created)
        elif self.ts_ok and hdr.ts_ecr:
            self._handshake_ts_sample(hdr.ts_ecr, now)
        if self.retries:
            self.rtt.backoff = 0  # (as SYN-SENT does) the peer answered: the path is up
        self.retries = 0
        self.t_rexmit = None
        parent = self.parent
        if parent is not None:
            if parent.state is not LISTEN:
                self._send_rst_to_peer(now)
                self._finish(now, 0)
                return False
            if len(parent.accept_queue) >= max(parent.backlog, 1):
                self.stack.counters["listen_overflows"] += 1
                self.snd_una = self.iss
                self.t_rexmit = now + self.rtt.current()
                self._rearm()
                return False  # like Linux: the ACK is dropped, our SYN-ACK is retried later
            parent.syn_count -= 1
        if self.fin_seq is not None:
            self._established(now, set_state=False)
            self._set_state(FIN_WAIT_1, now)
        else:
            self._established(now)
        if parent is not None:
            parent.accept_queue.append(self)
            self.stack.touch(parent)
        return True

    def _established(  # type: ignore[misc]
        self: TcpSocket, now: float, set_state: bool = True
    ) -> None:
        self.was_connected = True
        self.snd_nxt = max(self.snd_nxt, self.snd_una)
        self.rexmit_start = None  # SYN retransmissions do not count against data's timeout
        self.rtt.handshake_done()  # no sample from the handshake: RTO 3 s (RFC 6298 §5.7)
        self.last_rcv = now
        self.last_send = now
        if set_state:
            self._set_state(ESTABLISHED, now)
        if self._keepalive:
            self.t_keep = now + self.keepidle
        self._rearm()
