"""The control block's deadlines and what their expiry does: retransmission (RFC 6298,
with RFC 5681 §3.1's repeated-timeout rule and Karn for timestamps), the persist timer and
zero-window probing with Linux's give-up rules, keepalive, the delayed ACK, TIME-WAIT and
FIN-WAIT-2, and TCP_USER_TIMEOUT clamping both retransmission and probing. Arming is
block.py's (every part arms): the block keeps one entry in its stack's timer heap, at the
earliest of its deadlines (``ControlBlock._rearm``)."""

from __future__ import annotations

import errno as E
from typing import TYPE_CHECKING

from multisock.stack.tcp.block import (
    _SENDING,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_2,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)
from multisock.stack.tcp.config import SYNCHRONIZED
from multisock.stack.tcp.rack import TIMER_NONE, TIMER_REO
from multisock.stack.tcp.recovery import Recovery
from multisock.wire.tcp import ACK, FIN, PSH

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket


class Timeouts(Recovery):
    """Deadlines: arm them (one heap entry per block), and what each expiry does."""

    __slots__ = ()

    def on_timer(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        if self.t_misc is not None and now >= self.t_misc:
            self.t_misc = None
            if self.state is TIME_WAIT or (self.state is FIN_WAIT_2 and self.closed):
                self._finish(now, 0)
                return
        when = self.t_rexmit
        if when is not None and now >= when:
            self.t_rexmit = None
            rack = self.rack
            if self.persist:
                self._persist_fire(now)
            elif rack is not None and rack.timer and when == rack.timer_at:
                self._rack_timer_fire(now)
            else:
                self._rto_fire(now)
            if self.state is CLOSED:
                return
        if self.t_dack is not None and now >= self.t_dack:
            self.t_dack = None
            if self.state in SYNCHRONIZED and self.rcv_acked != self.rcv_nxt:
                self._send_ack(now)
        if self.t_keep is not None and now >= self.t_keep:
            self.t_keep = None
            self._keepalive_fire(now)
            if self.state is CLOSED:
                return
        self._rearm()

    def _timed_out(self: TcpSocket, now: float, limit: int) -> bool:  # type: ignore[misc]
        deadline = self._user_deadline()
        if deadline is not None:
            return now >= deadline
        return self.retries > limit

    def _user_deadline(self: TcpSocket) -> float | None:  # type: ignore[misc]
        """When TCP_USER_TIMEOUT ends the current wait: ``rexmit_start`` (the first timed-out
        transmission's send time, or the first zero-window probe's expiry) plus the timeout.
        One expression for the check and the timer, so the timer armed at the deadline finds
        it reached (no float rounding leaves it a hair short, firing again and again)."""
        start = self.rexmit_start
        if not self.user_timeout or start is None:
            return None
        return start + self.user_timeout / 1000.0

    def _arm_clamped(self: TcpSocket, when: float) -> None:  # type: ignore[misc]
        """Arm the retransmission/persist timer for ``when``, or earlier when the user
        timeout elapses first (Linux's tcp_clamp_rto_to_user_timeout and
        tcp_clamp_probe0_to_user_timeout): the abort comes when the timeout says, not at
        the next backed-off expiry (5 s of user timeout ended at 6.2 s before)."""
        deadline = self._user_deadline()
        if deadline is not None and deadline < when:
            when = deadline
        self.t_rexmit = when
        self._rearm()

    def _rto_fire(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        cfg = self.stack.config
        state = self.state
        self.stack.counters["rto_expired"] += 1
        if self.rexmit_start is None:
            self.rexmit_start = now - self.rtt.current()
        self.retries += 1
        if state is SYN_SENT or state is SYN_RECEIVED:
            limit = cfg.syn_retries if state is SYN_SENT else cfg.synack_retries
            if self._timed_out(now, limit):
                err = (self.soft_error or E.ETIMEDOUT) if state is SYN_SENT else 0
                self._finish(now, err)
                return
            self.rtt.back_off()
            self.total_retrans += 1
            self.stack.counters["retransmits"] += 1
            self._send_syn(now)
            self._arm_rexmit(now)
            return
        if state not in _SENDING or self.snd_una >= self.snd_max:
            return
        if self._timed_out(now, cfg.retries2):
            self._finish(now, self.soft_error or E.ETIMEDOUT)
            return
        cc = self.cc
        assert cc is not None
        rack = self.rack
        if self.retries == 1:
            undo = self._undo_state()
            if undo is not None and not (self.in_recovery and undo.active):
                # (a timeout inside a fast recovery keeps that episode's undo state)
                undo.start(cc.cwnd, cc.ssthresh, self.snd_una, self.snd_max)
            cc.on_rto(self._pipe(), now)
        else:
            # RFC 5681 §3.1: a segment timing out again keeps the first timeout's ssthresh
            cc.cwnd = self.mss
        self.in_recovery = False
        self.dupacks = 0
        self.ndup = 0
        self.recover = self.snd_max
        if rack is not None:
            rack.forget_losses()  # go-back-N below resends them all, in order
            rack.timer = TIMER_NONE
        self.rtt.back_off()
        self.rtt_seq = None
        self.karn_ts = self._ts_now(now)  # the latest timeout retransmission
        self.karn_until = self.snd_max
        self.snd_nxt = self.snd_una
        self.persist = False
        self._arm_clamped(now + self.rtt.current())
        self._output(now)
        if self.snd_nxt == self.snd_una:
            self._retransmit_head(now)

    def _rack_timer_fire(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """RACK's reordering timer (RFC 8985 §6.3: look for losses again, time has
        passed) or the probe timeout (§7.3: send the tail loss probe). The RTO they
        stood in front of takes the slot back."""
        rack = self.rack
        assert rack is not None
        kind = rack.timer
        rack.timer = TIMER_NONE
        self.t_rexmit = rack.rto_at
        if self.state not in _SENDING or self.snd_una >= self.snd_max:
            return
        if kind == TIMER_REO:
            self._rack_detect(0, now)
            self._output(now)
        else:
            self._send_probe(now)
        if self.t_rexmit is None:
            self._arm_rexmit(now)
        self._arm_loss_timer(now)

    def _send_probe(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """The tail loss probe (RFC 8985 §7.3): one new segment if the peer's window
        takes one, else the last segment again - so that its ACK (with SACK) lets RACK
        see what the tail lost, instead of a timeout. One probe at a time; after it,
        the RTO is armed afresh."""
        rack = self.rack
        assert rack is not None
        if self.in_recovery or rack.tlp_end is not None or self.retries:
            return
        una = self.snd_una
        fin_seq = self.fin_seq
        data_end = una + self.sndq.size
        if fin_seq is not None and data_end > fin_seq:
            data_end = fin_seq
        seq = self.snd_nxt
        n = min(data_end - seq, self.mss, una + self.snd_wnd - seq)
        if n > 0 and seq >= self.snd_max:
            flags = ACK
            if seq + n == data_end:
                flags |= PSH
                if fin_seq is not None:
                    flags |= FIN
            self._send_data(seq, n, now, flags)
            rack.tlp_rtx = False
        else:
            rec = rack.last_segment()
            if rec is None:
                return
            end = rec.end
            flags = ACK
            if fin_seq is not None and end > fin_seq:
                end = fin_seq
                flags |= FIN
            start = max(rec.start, una, end - self.mss)
            if start > end:
                start = end
            self._send_data(start, end - start, now, flags)
            rack.tlp_rtx = True
        rack.tlp_end = self.snd_max
        rack.probes += 1
        self.stack.counters["tlp_probes"] += 1
        self._arm_rexmit(now)

    def _persist_fire(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        """The persist timer (Linux's tcp_probe_timer): probe a shut window, or send what a
        too-small open one takes. Probing gives up, as Linux does, after ``retries2``
        unanswered probes (any acceptable ACK resets ``probes``: a receiver that answers
        may keep the window shut for ever, RFC 1122 4.2.2.17), once TCP_USER_TIMEOUT has
        passed since the first probe (answered or not), and for an orphan after
        ``_orphan_retries`` probes; the error reaches a sender blocked on the window."""
        self.persist = False
        if self.state not in _SENDING:
            return
        if self.snd_wnd == 0:
            if self._probes_exhausted(now):
                self._finish(now, self.soft_error or E.ETIMEDOUT)
                return
            self.probes += 1
            self.stack.counters["window_probes"] += 1
            self._xmit(self.snd_una - 1, ACK, b"", now)  # seq one below: forces an ACK
            self.rtt.back_off()
            self.persist = True
            self._arm_clamped(now + self.rtt.current())
        else:
            # window open but too small for SWS rules: send what fits (override timer)
            n = min(
                self.snd_wnd - (self.snd_nxt - self.snd_una),
                self.mss,
                self.snd_una + self.sndq.size - self.snd_nxt,
            )
            if n > 0:
                self._send_data(self.snd_nxt, n, now, ACK | PSH)
            else:
                self._output(now)

    def _probes_exhausted(self: TcpSocket, now: float) -> bool:  # type: ignore[misc]
        """Whether zero-window probing ends now (tcp_probe_timer's tests, in its order).
        ``rexmit_start`` marks the first probe (Linux's icsk_probes_tstamp); it is cleared
        when the window opens or data is acknowledged."""
        if self.rexmit_start is None:
            self.rexmit_start = now
        else:
            deadline = self._user_deadline()
            if deadline is not None and now >= deadline:
                return True
        cfg = self.stack.config
        limit = cfg.retries2
        if self.closed:
            # an orphan: nobody waits for it, so it gets fewer probes (tcp_orphan_retries)
            alive = self.rtt.current() < self.rtt.rto_max
            limit = cfg.orphan_retries
            if limit == 0 and alive:
                limit = 8  # Linux: "8 corresponds to >100 seconds with minimal RTO"
            if not alive and self.rtt.backoff >= limit:
                return True
        return self.probes >= limit

    def _keepalive_fire(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        if not self._keepalive or self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2):
            return
        idle = now - self.last_rcv
        if idle < self.keepidle and self.probes == 0:
            self.t_keep = self.last_rcv + self.keepidle
            return
        if self.snd_max > self.snd_una or self.sndq.size:
            self.t_keep = now + self.keepidle  # the retransmission timer watches this one
            return
        if (self.user_timeout and idle >= self.user_timeout / 1000.0 and self.probes) or (
            not self.user_timeout and self.probes >= self.keepcnt
        ):
            self._send_rst_to_peer(now)
            self._finish(now, E.ETIMEDOUT)
            return
        self.probes += 1
        self.stack.counters["keepalive_probes"] += 1
        self._xmit(self.snd_una - 1, ACK, b"", now)
        self.t_keep = now + self.keepintvl
