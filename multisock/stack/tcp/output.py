"""Transmission: the window field we advertise (RFC 9293 §3.8.6.2.2, receiver SWS
avoidance), one segment built and handed to IP (``_xmit``), SYN/SYN-ACK, pure ACKs, RSTs,
the FIN after the last queued byte, and the output loop (``_output``) that decides what may
be sent now under the peer's window, the congestion window, Nagle (Minshall) and sender-side
SWS avoidance, resending holes first while in recovery; window updates after a read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.stack.tcp.block import (
    _SENDING,
    CLOSE_WAIT,
    ESTABLISHED,
    FIN_WAIT_1,
    LAST_ACK,
    SYN_RECEIVED,
)
from multisock.stack.tcp.config import SYNCHRONIZED
from multisock.stack.tcp.options import Options
from multisock.stack.tcp.rack import (
    PTO_MIN,
    PTO_NO_RTT,
    TIMER_NONE,
    TIMER_PTO,
    TIMER_REO,
    WC_DEL_ACK,
    Rack,
    Sent,
)
from multisock.stack.tcp.seq import MASK
from multisock.stack.tcp.undo import Undo
from multisock.wire import tcp as wire
from multisock.wire.tcp import ACK, FIN, PSH, RST, SYN, URG

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket


class Output(Options):
    """What is sent and when (the output loop), and how one segment is built."""

    __slots__ = ()

    def _window(self: TcpSocket) -> int:  # type: ignore[misc]
        """The window field to send; moves the advertised right edge (RFC 9293 §3.8.6.2.2)."""
        free = self.rcvbuf - self.recvq.size
        if free < 0:
            free = 0
        rcv_nxt = self.rcv_nxt
        edge = rcv_nxt + free
        adv = self.rcv_adv
        if edge > adv and (edge - adv >= min(self.rcvbuf >> 1, self.adv_mss) or adv < rcv_nxt):
            shift = self.rcv_wscale
            win = (edge - rcv_nxt) >> shift
            if win > 0xFFFF:
                win = 0xFFFF
            new_adv = rcv_nxt + (win << shift)
            if new_adv > adv:
                self.rcv_adv = new_adv
                return win
        if adv < rcv_nxt:
            self.rcv_adv = rcv_nxt
            return 0
        return (adv - rcv_nxt) >> self.rcv_wscale

    def _sack_option(self: TcpSocket) -> list[tuple[int, int]]:  # type: ignore[misc]
        blocks: list[tuple[int, int]] = []
        if self.dsack is not None:
            blocks.append(self.dsack)
            self.dsack = None
        if self.ooo.ranges:
            blocks.extend(self.ooo.sack_blocks(4 - len(blocks), self.ooo_last))
        return [(s & MASK, e & MASK) for s, e in blocks]

    def _xmit(  # type: ignore[misc]
        self: TcpSocket, seq: int, flags: int, payload: bytes | memoryview, now: float,
        gso: int = 0,
    ) -> None:
        """Emit one segment with ACK/window/timestamp/SACK as the connection stands; ``gso``:
        it carries several MSS, to be cut at that size (segmentation offload)."""
        win = self._window()
        # (_ts_now, inline: every segment)
        ts = ((int(now * 1000) + self.ts_offset) & MASK, self.ts_recent) if self.ts_ok else None
        remote = self.remote
        local = self.local
        assert remote is not None and local is not None
        if self.snd_up:  # urgent mode (rare): the general builder carries the pointer
            urgent = self._urgent_pointer(seq)
            if urgent:
                hdr = wire.build(
                    local[1], remote[1], seq & MASK, self.rcv_nxt & MASK, flags | URG, win,
                    ts=ts, urgent=urgent,
                    sack_blocks=self._sack_option()
                    if self.sack_ok and (self.ooo.ranges or self.dsack is not None) else (),
                )
                self._emit(hdr, payload)
                return
        if self.sack_ok and (self.ooo.ranges or self.dsack is not None):
            hdr = wire.build(
                local[1],
                remote[1],
                seq & MASK,
                self.rcv_nxt & MASK,
                flags,
                win,
                ts=ts,
                sack_blocks=self._sack_option(),
            )
        elif ts is not None:
            hdr = wire.pack_header_ts(
                local[1],
                remote[1],
                seq & MASK,
                self.rcv_nxt & MASK,
                0x80,
                flags,
                win,
                0,
                0,
                1,
                1,
                8,
                10,
                ts[0],
                ts[1],
            )
        else:
            hdr = wire.pack_header(
                local[1], remote[1], seq & MASK, self.rcv_nxt & MASK, 0x50, flags, win, 0, 0
            )
        self.rcv_acked = self.rcv_nxt
        self.ack_now = False
        self.t_dack = None
        self.segs_out += 1
        # header and payload go down separately: IP joins them with its own header in one
        # copy (docs/performance.md: copies per byte); TcpStack.emit, inlined
        stack = self.stack
        stack.segments_out += 1
        stack.host.tcp_output(local[0], remote[0], hdr, self.ttl, self.tos, payload, gso)

    def _emit(self: TcpSocket, hdr: bytes, payload: bytes | memoryview) -> None:  # type: ignore[misc]
        """_xmit's tail for a header built elsewhere (the urgent path)."""
        local, remote = self.local, self.remote
        assert remote is not None and local is not None
        self.rcv_acked = self.rcv_nxt
        self.ack_now = False
        self.t_dack = None
        self.segs_out += 1
        stack = self.stack
        stack.segments_out += 1
        stack.host.tcp_output(local[0], remote[0], hdr, self.ttl, self.tos, payload)

    def _urgent_pointer(self: TcpSocket, seq: int) -> int:  # type: ignore[misc]
        """The URG field for a segment at ``seq`` (0: none), as Linux's tcp_transmit_skb
        sets it: the offset of the byte after the urgent one, or 0xFFFF while that byte is
        further than a field can say; urgent mode ends once it is acknowledged."""
        up = self.snd_up
        if self.snd_una >= up:
            self.snd_up = 0
            return 0
        if seq >= up:
            return 0
        if up - seq < 0x10000:
            return up - seq
        return 0xFFFF

    def _send_syn(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        cfg = self.stack.config
        local, remote = self.local, self.remote
        assert local is not None and remote is not None
        synack = self.state is SYN_RECEIVED
        flags = SYN | ACK if synack else SYN
        win = min(self.rcvbuf, 0xFFFF)
        if synack:
            ts = (self._ts_now(now), self.ts_recent) if self.ts_ok else None
            wscale = self.rcv_wscale if self.ws_ok else None
            sack = self.sack_ok
        else:
            ts = (self._ts_now(now), 0) if cfg.timestamps else None
            wscale = self.rcv_wscale if cfg.window_scaling else None
            sack = cfg.sack
        hdr = wire.build(
            local[1],
            remote[1],
            self.iss & MASK,
            self.rcv_nxt & MASK if synack else 0,
            flags,
            win,
            mss=self.adv_mss,
            wscale=wscale,
            sack_permitted=sack,
            ts=ts,
        )
        self.rcv_adv = self.rcv_nxt + win
        if self.snd_max > self.iss and ts is not None:
            # a repeated SYN(-ACK): Karn for timestamps (as after a data timeout, see
            # Recovery._ack_new_data). The peer echoes TS.Recent, which a duplicate SYN-ACK
            # does not move (RFC 7323 §4.3: it is out of window), so the ACK answering this
            # copy may carry the first copy's TSval: not a round trip, the outage's length
            self.karn_ts = ts[0]
            self.karn_until = self.iss + 1
        self.snd_nxt = self.iss + 1
        self.snd_max = max(self.snd_max, self.snd_nxt)
        self.segs_out += 1
        self.stack.emit(local[0], remote[0], hdr, self.ttl, self.tos)

    def _send_ack(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        # snd_max, not snd_nxt: after a timeout rewinds snd_nxt, an ACK carrying the old
        # sequence number falls left of the peer's window and is dropped unread (both sides
        # rewound = both sides' ACKs ignored = deadlock). snd_max is always acceptable.
        self._xmit(self.snd_max, ACK, b"", now)

    def _send_rst_to_peer(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        if self.remote is None or self.local is None:
            return
        seq = self.snd_max if self.state is not SYN_RECEIVED else self.iss + 1
        hdr = wire.pack_header(
            self.local[1], self.remote[1], seq & MASK, self.rcv_nxt & MASK, 0x50, RST | ACK, 0, 0, 0
        )
        self.stack.counters["rst_sent"] += 1
        self.stack.emit(self.local[0], self.remote[0], hdr, self.ttl, self.tos)

    def _send_rst(self: TcpSocket, ack: int, now: float) -> None:  # type: ignore[misc]
        assert self.local is not None and self.remote is not None
        hdr = wire.pack_header(self.local[1], self.remote[1], ack & MASK, 0, 0x50, RST, 0, 0, 0)
        self.stack.counters["rst_sent"] += 1
        self.stack.emit(self.local[0], self.remote[0], hdr, self.ttl, self.tos)

    def _queue_fin(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """The user is done writing: the FIN follows the last queued byte."""
        state = self.state
        if state is SYN_RECEIVED:
            self.fin_seq = self.iss + 1  # sent once the handshake completes
        elif state is ESTABLISHED:
            self.fin_seq = self.snd_una + self.sndq.size
            self._set_state(FIN_WAIT_1, now)
            self._output(now)
        elif state is CLOSE_WAIT:
            self.fin_seq = self.snd_una + self.sndq.size
            self._set_state(LAST_ACK, now)
            self._output(now)

    def _pipe(self: TcpSocket) -> int:  # type: ignore[misc]
        """Bytes believed in the network (RFC 6675 §4 'pipe', simplified)."""
        una = self.snd_una
        rack = self.rack
        # segments RACK marked lost and not resent yet are not in the network
        lost_out = rack.lost_out if rack is not None else 0
        if not self.in_recovery:
            board = self.board
            if board.starts:
                pipe = self.snd_nxt - una - board.sacked_between(una, self.snd_nxt) - lost_out
            else:
                pipe = self.snd_nxt - una - lost_out
            return pipe if pipe > 0 else 0
        out = self.snd_max - una - lost_out
        board = self.board
        if self.sack_ok and (board.starts or (rack is not None and rack.driving)):
            start = max(self.rxt_next, una)
            lost = 0
            if self.lost_end > start:
                lost = (self.lost_end - start) - board.sacked_between(start, self.lost_end)
            return max(out - board.sacked - lost, 0)
        lost = max(self.lost_end - max(self.rxt_next, una), 0)
        return max(out - self.ndup * self.mss - lost, 0)

    def _output(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """Send whatever may be sent now; ends with a pure ACK if one is owed and nothing went."""
        if self.state not in _SENDING or self.cc is None:
            if self.ack_now and self.state in SYNCHRONIZED:
                self._send_ack(now)
            return
        rack = self.rack
        if (
            self.snd_nxt >= self.snd_una + self.sndq.size
            and self.fin_seq is None
            and not self.in_recovery
            and (rack is None or not rack.lost_out)
        ):
            # nothing unsent and no FIN to send (the usual call after an ACK): the loop
            # below would send nothing and the persist timer needs unsent data
            if self.ack_now:
                self._send_ack(now)
            return
        cc = self.cc
        mss = self.mss
        if self.sack_ok and (self.ooo.ranges or self.dsack is not None):
            # SACK blocks ride on data too: keep header + payload within the MTU
            blocks = min(len(self.ooo.ranges) + (self.dsack is not None), 3 if self.ts_ok else 4)
            mss -= 4 + 8 * blocks
        # segmentation offload: new data goes in segments of several MSS where the route's
        # interface cuts them (not in urgent mode, whose pointer is per segment)
        limit = mss
        cap = self.gso_cap
        if cap and cap > 2 * mss and not self.snd_up:
            limit = cap - cap % mss
        una = self.snd_una
        sndq = self.sndq
        data_end = una + sndq.size
        fin_seq = self.fin_seq
        if fin_seq is not None and data_end > fin_seq:
            data_end = fin_seq
        rtt = self.rtt
        if una == self.snd_max and now - self.last_send > (
            # current()'s value, without its call in the usual case
            rtt.rto if not rtt.backoff and rtt.rto <= rtt.rto_max else rtt.current()
        ):
            cc.on_idle_restart(now)
            self.last_send = now
        board = self.board
        if self.in_recovery or board.starts or (rack is not None and rack.lost_out):
            pipe = self._pipe()
        else:
            pipe = self.snd_nxt - una  # (_pipe()'s answer outside recovery with no SACKs)
        cwnd = cc.cwnd
        if not self.in_recovery and 0 < self.dupacks < 3:
            cwnd += self.dupacks * mss  # limited transmit (RFC 3042)
        wnd_edge = una + self.snd_wnd
        sent_any = False
        while True:
            if rack is not None and rack.lost_out and pipe < cwnd:
                sent = self._resend_lost(now, mss)  # RACK's losses first (RFC 8985 §6.3)
                if sent:
                    pipe += sent
                    sent_any = True
                    continue
            if self.in_recovery and pipe < cwnd:
                hole = board.next_hole(max(self.rxt_next, una), min(self.lost_end, self.snd_max))
                if hole is not None:
                    start, end = hole
                    n = min(end - start, mss)
                    self._send_data(start, n, now)
                    self.rxt_next = start + n
                    pipe += n
                    sent_any = True
                    continue
            seq = self.snd_nxt
            if board.starts and seq < self.snd_max:
                seq = board.skip_sacked(seq)
                self.snd_nxt = seq
            avail = data_end - seq
            fin_now = fin_seq is not None and seq <= fin_seq and avail <= limit
            if avail <= 0 and not fin_now:
                break
            budget = cwnd - pipe
            room = wnd_edge - seq
            n = avail
            if n > mss:
                n = mss
                if limit > mss and seq >= self.snd_max:  # (what was sent goes again by MSS)
                    n = avail if avail < limit else limit
            if n > room:
                n = max(room, 0)
            if n > budget:
                n = max(budget, 0)
            if n > mss and n < avail:
                n -= n % mss  # cut by the window: whole MSS pieces, the rest waits
            if n < avail:
                fin_now = False
            if n <= 0 and not fin_now:
                break
            if n < mss and n < avail:
                # window- or cwnd-limited short segment: sender SWS avoidance (RFC 9293 §3.8.6.2.1)
                if n < budget and n < (self.max_sndwnd >> 1):
                    break
                if n >= budget and n < mss:
                    break
            elif (
                n < mss
                and not fin_now
                and not self.nodelay
                and seq >= self.snd_max
                and self.snd_max > una
            ):
                break  # Nagle: a small segment waits while data is unacknowledged
            flags = ACK
            if n and n == avail:
                flags |= PSH
            if fin_now:
                flags |= FIN
            self._send_data(seq, n, now, flags, mss if n > mss else 0)
            pipe += n
            sent_any = True
            if flags & FIN:
                break
        if self.snd_max == una and data_end > una and self.t_rexmit is None:
            # nothing in flight and nothing may be sent: probe the window (persist timer)
            self.persist = True
            self.t_rexmit = now + self.rtt.current()
            self._rearm()
        if not sent_any and self.ack_now:
            self._send_ack(now)
        elif sent_any and self.sack_ok and self.rack is not None:
            self._arm_loss_timer(now)  # new data out: the probe timer (RFC 8985 §7.2)

    def _send_data(  # type: ignore[misc]
        self: TcpSocket, seq: int, n: int, now: float, flags: int = ACK, gso: int = 0
    ) -> None:
        """Send ``n`` bytes from ``seq``; ``gso``: they are several MSS, cut at that size."""
        payload: bytes | memoryview = self.sndq.peek(seq - self.snd_una, n) if n else b""
        end = seq + n + (1 if flags & FIN else 0)
        snd_max = self.snd_max
        retrans = seq < snd_max
        self._xmit(seq, flags, payload, now, gso)
        if n:
            if gso:
                # counted as the segments the link cuts it into, as Linux counts tcp_skb_pcount
                pieces = -(-n // gso)
                self.data_segs_out += pieces
                self.segs_out += pieces - 1
                self.stack.segments_out += pieces - 1
            else:
                self.data_segs_out += 1
        if retrans:
            self.total_retrans += 1
            self.bytes_retrans += n
            self.stack.counters["retransmits"] += 1
            if self.rtt_seq is not None and self.rtt_seq > seq:
                self.rtt_seq = None  # Karn: a retransmitted range is never timed
            undo = self.undo
            if undo is not None and undo.active:
                undo.on_retransmit(seq, end - seq, self._ts_now(now) if self.ts_ok else None)
        else:
            self.bytes_sent += n
            if self.rtt_seq is None and not self.ts_ok and n:
                self.rtt_seq = end
                self.rtt_time = now
        if seq == self.snd_nxt:
            self.snd_nxt = end  # a hole resent during recovery leaves snd_nxt alone
        if end > snd_max:
            self.snd_max = end
        self.last_send = now
        if self.sack_ok and end > seq:
            rack = self.rack
            if rack is None:
                rack = self._new_loss_state()
            if seq >= snd_max:
                # new data: one more record at the end of both orders (Rack.on_send's
                # first case, inline - it runs for every segment)
                rack.sent += 1
                rec = Sent(seq, end, now, rack.sent)
                rack.recs.append(rec)
                rack.tq.append(rec)
            else:
                rack.on_send(seq, end, now, snd_max)
            if self.in_recovery:
                prr = self.prr
                if prr is not None:  # (made when RACK began a recovery: it alone reads it)
                    prr.out += end - seq
        if self.t_rexmit is None or self.persist:
            self._arm_rexmit(now)

    def _new_loss_state(self: TcpSocket) -> Rack:  # type: ignore[misc]
        """RACK-TLP's state, made on the first segment sent with SACK (PRR's and undo's at
        the first episode that needs them: most connections never have one)."""
        rack = self.rack = Rack()
        return rack

    def _undo_state(self: TcpSocket) -> Undo | None:  # type: ignore[misc]
        """The undo record for an episode that begins (None: no SACK, no undo)."""
        undo = self.undo
        if undo is None and self.rack is not None:
            undo = self.undo = Undo()
        return undo

    def _resend_lost(self: TcpSocket, now: float, mss: int) -> int:  # type: ignore[misc]
        """Retransmit the next segment RACK marked lost (its parts not SACKed since);
        returns the bytes sent (0: nothing was left to resend)."""
        rack = self.rack
        assert rack is not None
        board = self.board
        fin_seq = self.fin_seq
        while True:
            rec = rack.next_lost()
            if rec is None:
                return 0
            una = self.snd_una
            start = rec.start if rec.start > una else una
            end = rec.end
            sent = 0
            while start < end:
                hole = board.next_hole(start, end)
                if hole is None:
                    break
                hs, he = hole
                n = he - hs if he - hs < mss else mss
                flags = ACK
                if fin_seq is not None and hs + n > fin_seq:
                    n = fin_seq - hs
                    flags |= FIN
                self._send_data(hs, n, now, flags)
                sent += n if n else 1
                if flags & FIN:
                    break
                start = hs + n
            if sent:
                return sent
            rack.drop_lost(rec)  # nothing of it is missing any more

    def _arm_loss_timer(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """RACK's reordering timer or the tail loss probe, in the retransmission timer's
        slot when due before the RTO (which comes back when they are done or cancelled,
        as Linux shares icsk_retransmit_timer). ``rack.timer_at`` tells ours from a
        deadline the engine set since (any ``_arm_rexmit``): then the slot is the RTO's."""
        rack = self.rack
        assert rack is not None
        t = self.t_rexmit
        if rack.timer and t == rack.timer_at:
            rto_at = rack.rto_at
        else:
            rack.timer = TIMER_NONE
            rto_at = t
        if self.persist:
            return
        when = 0.0
        kind = TIMER_NONE
        if rack.reo_at is not None:
            when = rack.reo_at
            kind = TIMER_REO
        elif (
            rack.tlp_end is None
            and not self.in_recovery
            and not self.retries
            and self.snd_max > self.snd_una
            and self.snd_nxt >= self.snd_max
            and self.state in _SENDING
        ):
            # RFC 8985 §7.2's PTO: 2*SRTT, plus the worst-case delayed ACK when one
            # segment is in flight (its ACK may be delayed), a fixed one before any sample
            srtt = self.rtt.srtt
            if srtt is None:
                pto = PTO_NO_RTT
            else:
                pto = 2 * srtt
                if self.snd_max - self.snd_una <= self.mss:
                    pto += WC_DEL_ACK
                if pto < PTO_MIN:
                    pto = PTO_MIN
            when = now + pto
            kind = TIMER_PTO
        if kind and (rto_at is None or when < rto_at):
            rack.timer = kind
            rack.timer_at = when
            rack.rto_at = rto_at
            self.t_rexmit = when
            # _rearm's own test, without its call: a probe pushed later (each ACK of a
            # bulk flow) leaves the armed entry, which finds the deadline moved when due
            armed = self.armed_at
            if armed is None or when < armed:
                self._rearm()
        elif rack.timer:
            rack.timer = TIMER_NONE
            self.t_rexmit = rto_at
            self._rearm()

    def _maybe_window_update(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """After the application read: tell the peer when the window has grown a lot."""
        cur = self.rcv_adv - self.rcv_nxt
        free = self.rcvbuf - self.recvq.size
        if free >= 2 * cur and free - cur >= max(min(self.rcvbuf >> 1, self.adv_mss), 1):
            with self.stack.busy(now):
                self._send_ack(now)
