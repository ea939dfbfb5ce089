"""The TCP control block: one connection's state machine (RFC 9293) and data path.

Sans-IO: methods take ``now``; segments leave through the stack's ``emit`` and the
block asks the stack to wake it at ``next_wakeup``. Sequence numbers are unwrapped
ints (see ``seq.py``). Errors towards the user are ``OSError`` with Linux's errno;
nothing that arrives from the network can make a method raise.

Reading guide: ``connect``/``send``/``recv_into``/``shutdown``/``close`` are the
user side; ``segment_arrived`` is the receive path (RFC 9293 §3.10.7); ``output``
decides what to send (new data, retransmissions during SACK recovery, FIN);
``on_timer`` runs the retransmission, delayed-ACK, persist, keepalive and
TIME-WAIT timers.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multisock.stack.tcp_engine.buffers import OutOfOrder, ReceiveQueue, SendBuffer
from multisock.stack.tcp_engine.config import CAN_SEND, SYNCHRONIZED, TcpState
from multisock.stack.tcp_engine.congestion import CongestionControl, make_congestion_control
from multisock.stack.tcp_engine.seq import MASK, ts_before, unwrap
from multisock.wire import tcp as wire
from multisock.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPHeader

if TYPE_CHECKING:
    from multisock.stack.tcp_engine.stack import TcpStack

S = TcpState
INF = float("inf")
DUPTHRESH = 3


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class TcpSocket:
    """One TCP endpoint: a listener, or a connection in any of the RFC 9293 states."""

    def __init__(self, stack: TcpStack, family: int) -> None:
        cfg = stack.config
        self.stack = stack
        self.family = family
        self.state = S.CLOSED
        self.local: tuple[bytes, int] | None = None  # in the socket's family (v4-mapped for v6)
        self.remote: tuple[bytes, int] | None = None
        self.wire_local = b""  # the IP addresses on the wire
        self.wire_remote = b""
        self.on_change: Callable[[], None] | None = None
        self.pending_error = 0
        self.soft_error = 0
        # options (the facade sets these by name)
        self.reuseaddr = False
        self.reuseport = False
        self.nodelay = False
        self.keepalive = False
        self.keepidle = int(cfg.keepalive_time)
        self.keepintvl = int(cfg.keepalive_intvl)
        self.keepcnt = cfg.keepalive_probes
        self.user_timeout = 0  # ms, 0 = the retry count decides
        self.linger: float | None = None
        self.rcvbuf = cfg.rcvbuf
        self.sndbuf = cfg.sndbuf
        self.quickack = False
        self.maxseg = 0
        self.v6only = False
        self.ttl: int | None = None
        self.tos = 0
        self._congestion_name = cfg.congestion
        # listener
        self.backlog = 0
        self.accept_queue: list[TcpSocket] = []
        self.half_open = 0
        self.parent: TcpSocket | None = None
        # send sequence space
        self.iss = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.buf_seq = 0  # sequence number of send_buf's first byte
        self.send_buf = SendBuffer()
        self.fin_queued = False
        self.fin_seq = -1
        self.snd_sml = 0  # end of the last small segment sent (Nagle/Minshall)
        # receive sequence space
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised
        self.recv_q = ReceiveQueue()
        self.ooo = OutOfOrder(cfg.ooo_limit)
        self.fin_received = False
        self.shut_rd = False
        self.shut_wr = False
        self.orphan = False
        # options negotiated
        self.mss = 536
        self.peer_mss = 536
        self.rcv_mss = 536
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_ok = False
        self.ws_ok = False
        self.ts_recent = 0
        self.sack_ok = False
        # RTT / RTO (RFC 6298)
        self.srtt = 0.0
        self.rttvar = 0.0
        self.rto = cfg.rto_initial
        self.rtt_seq = -1
        self.rtt_time = 0.0
        self.backoff = 0
        self.retransmits = 0  # consecutive timeouts
        self.first_unacked_at = 0.0
        # loss recovery
        self.dupacks = 0
        self.in_recovery = False
        self.recover = 0
        self.high_rxt = 0
        self.sacked: list[list[int]] = []
        self.sacked_bytes = 0
        self.limited_transmit = 0
        self.cc: CongestionControl | None = None
        # ACK policy
        self.ack_pending = 0
        self.quick_acks = cfg.quickack_segments
        self.last_activity = 0.0
        self.last_send = 0.0
        self.keepalive_probes_sent = 0
        # timers (absolute deadlines; INF = not armed)
        self.rto_at = INF
        self.dack_at = INF
        self.persist_at = INF
        self.ka_at = INF
        self.tw_at = INF
        self.fin2_at = INF
        self.next_wakeup = INF
        # statistics (TCP_INFO)
        self.bytes_sent = 0
        self.bytes_acked = 0
        self.bytes_received = 0
        self.segs_out = 0
        self.segs_in = 0
        self.total_retrans = 0
        self.syn_retries = 0

    # ================================================================ options

    @property
    def congestion(self) -> str:
        return self.cc.name if self.cc is not None else self._congestion_name

    @congestion.setter
    def congestion(self, name: str) -> None:
        probe = make_congestion_control(name, self.mss, 0.0)  # raises ValueError when unknown
        self._congestion_name = name
        if self.cc is not None:
            probe.cwnd, probe.ssthresh = self.cc.cwnd, self.cc.ssthresh
            self.cc = probe

    # ============================================================= readiness

    @property
    def readable(self) -> bool:
        state = self.state
        if state is S.LISTEN:
            return bool(self.accept_queue) or self.pending_error != 0
        return (
            self.recv_q.size > 0
            or self.fin_received
            or self.shut_rd
            or self.pending_error != 0
            or (state is S.CLOSED and self.remote is not None)
        )

    @property
    def readable_bytes(self) -> int:
        return self.recv_q.size

    @property
    def writable(self) -> bool:
        if self.pending_error:
            return True
        state = self.state
        if state in CAN_SEND:
            if self.shut_wr:
                return True
            free = self.sndbuf - self.send_buf.size
            return free > 0 and free >= self.send_buf.size // 2
        if state is S.CLOSED:
            return self.remote is not None  # connect failed or connection over: calls raise
        return state not in (S.SYN_SENT, S.SYN_RECEIVED, S.LISTEN)

    def take_error(self) -> int:
        err = self.pending_error or (self.soft_error if self.state is S.CLOSED else 0)
        self.pending_error = 0
        self.soft_error = 0
        return err

    def _changed(self) -> None:
        callback = self.on_change
        if callback is not None:
            callback()

    # ============================================================ user side

    def bind(self, addr: bytes, port: int) -> None:
        if self.local is not None or self.state is not S.CLOSED:
            raise _err(errno.EINVAL)
        self.stack.bind(self, addr, port)

    def listen(self, backlog: int, now: float) -> None:
        if self.state is S.LISTEN:
            self.backlog = backlog
            return
        if self.state is not S.CLOSED or self.remote is not None:
            raise _err(errno.EINVAL)
        if self.local is None:
            self.stack.bind(self, bytes(4) if self.family == 2 else bytes(16), 0)
        self.stack.check_listen(self)
        self.backlog = backlog
        self._set_state(S.LISTEN, now)
        self.stack.add_listener(self)

    def connect(self, addr: bytes, port: int, now: float) -> None:
        state = self.state
        if state is S.LISTEN:
            raise _err(errno.EINVAL)
        if state in (S.SYN_SENT, S.SYN_RECEIVED):
            raise _err(errno.EALREADY)
        if state is not S.CLOSED:
            raise _err(errno.EISCONN)
        if self.remote is not None:
            # a previous connection attempt/connection on this socket ended
            raise _err(errno.EISCONN if self.pending_error == 0 else self.take_error())
        if port == 0:
            raise _err(errno.ECONNREFUSED)
        self.stack.prepare_connect(self, addr, port, now)
        self.iss = self.stack.initial_sequence(self, now)
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_max = self.iss
        self.buf_seq = self.iss + 1
        self._init_mss()
        self._set_state(S.SYN_SENT, now)
        self._send_syn(now, ack=False)
        self.first_unacked_at = now
        self._arm_rto(now)
        self.stack.schedule(self)

    def accept(self) -> TcpSocket | None:
        if self.state is not S.LISTEN:
            raise _err(errno.EINVAL)
        while self.accept_queue:
            child = self.accept_queue.pop(0)
            child.parent = None
            return child
        return None

    def send(self, data: bytes | memoryview, now: float) -> int:
        if self.pending_error:
            raise _err(self.take_error())
        state = self.state
        if self.shut_wr or (state not in CAN_SEND and state is not S.SYN_SENT):
            raise _err(errno.EPIPE)  # Linux says EPIPE even when never connected
        if state is S.SYN_SENT:
            return 0
        room = self.sndbuf - self.send_buf.size
        if room <= 0:
            return 0
        size = len(data)
        if size > room:
            data = data[:room]
            size = room
        if size == 0:
            return 0
        if self.snd_nxt == self.snd_una and self.last_send and self.srtt and (
                now - self.last_send > self.rto) and self.cc is not None:
            self.cc.on_idle_restart(now)  # RFC 5681 §4.1
        self.send_buf.append(data)
        self.output(now)
        self.stack.schedule(self)
        return size

    def recv_into(self, buf: memoryview, now: float, peek: bool = False) -> int:
        queue = self.recv_q
        if queue.size:
            before = self._window_now()
            n = queue.read_into(buf, peek)
            if not peek:
                self._maybe_window_update(before, now)
            return n
        if self.pending_error:
            raise _err(self.take_error())
        if self.fin_received or self.shut_rd:
            return 0
        if self.state is S.CLOSED:
            if self.remote is None:
                raise _err(errno.ENOTCONN)
            return 0
        if self.state is S.LISTEN:
            raise _err(errno.ENOTCONN)
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def shutdown(self, how: int, now: float) -> None:
        state = self.state
        if state in (S.CLOSED, S.SYN_SENT) or state is S.LISTEN:
            if state is S.LISTEN and how in (0, 2):
                self._close_listener(now)
                return
            raise _err(errno.ENOTCONN)
        if how in (0, 2):
            self.shut_rd = True
        if how in (1, 2) and not self.shut_wr:
            self.shut_wr = True
            self._queue_fin(now)
        self._changed()
        self.stack.schedule(self)

    def close(self, now: float) -> None:
        """The user is done with the socket; the connection may live on (orphaned)."""
        state = self.state
        self.on_change = None
        if state is S.LISTEN:
            self._close_listener(now)
            return
        if state in (S.CLOSED, S.SYN_SENT):
            self._terminate(now)
            return
        self.orphan = True
        if self.recv_q.size or self.linger == 0.0:
            # RFC 2525 / Linux: unread data (or SO_LINGER 0) resets instead of FIN
            self._send_rst_for_abort(now)
            self._terminate(now)
            return
        self.shut_rd = True
        if not self.shut_wr:
            self.shut_wr = True
            self._queue_fin(now)
        self.stack.schedule(self)

    def abort(self, now: float) -> None:
        if self.state in SYNCHRONIZED or self.state is S.SYN_RECEIVED:
            self._send_rst_for_abort(now)
        self._terminate(now)

    def _close_listener(self, now: float) -> None:
        for child in self.accept_queue:
            child.abort(now)
        self.accept_queue.clear()
        self.stack.remove_listener(self)
        self._set_state(S.CLOSED, now)
        self.stack.release(self)

    def _queue_fin(self, now: float) -> None:
        if self.state is S.SYN_RECEIVED:
            self.fin_queued = True
            self.fin_seq = self.buf_seq + self.send_buf.size
            return
        self.fin_queued = True
        self.fin_seq = self.buf_seq + self.send_buf.size
        if self.state is S.ESTABLISHED:
            self._set_state(S.FIN_WAIT_1, now)
        elif self.state is S.CLOSE_WAIT:
            self._set_state(S.LAST_ACK, now)
        self.output(now)

    # ============================================================ handshake

    def _init_mss(self) -> None:
        mtu = self.stack.host.route_mtu(self.wire_remote) or 576
        overhead = 40 if len(self.wire_remote) == 4 else 60
        self.rcv_mss = max(88, min(mtu - overhead, 65495))
        if self.maxseg:
            self.rcv_mss = min(self.rcv_mss, self.maxseg)
        wscale = 0
        if self.stack.config.window_scaling:
            while (self.rcvbuf >> wscale) > 65535 and wscale < 14:
                wscale += 1
        self.rcv_wscale = wscale

    def _syn_options(self, now: float) -> dict[str, Any]:
        cfg = self.stack.config
        opts: dict[str, Any] = {"mss": self.rcv_mss}
        if (self.state is S.SYN_SENT or self.ts_ok) and cfg.timestamps:
            opts["ts"] = (self._ts_now(now), self.ts_recent if self.state is not S.SYN_SENT else 0)
        if cfg.sack and (self.state is S.SYN_SENT or self.sack_ok):
            opts["sack_permitted"] = True
        if cfg.window_scaling and (self.state is S.SYN_SENT or self.ws_ok):
            opts["wscale"] = self.rcv_wscale
        return opts

    def _send_syn(self, now: float, ack: bool) -> None:
        opts = self._syn_options(now)
        flags = SYN | (ACK if ack else 0)
        window = min(self.rcvbuf, 65535)
        header = wire.build(self.local_port, self.remote_port, self.iss & MASK,
                            self.rcv_nxt & MASK if ack else 0, flags, window, **opts)
        self.snd_nxt = max(self.snd_nxt, self.iss + 1)
        self.snd_max = max(self.snd_max, self.snd_nxt)
        self.rcv_adv = self.rcv_nxt + window
        self._emit(header, b"", now)

    def _negotiate(self, hdr: TCPHeader, now: float) -> None:
        """Options from the peer's SYN (or SYN-ACK)."""
        cfg = self.stack.config
        self.peer_mss = hdr.mss if hdr.mss else (536 if len(self.wire_remote) == 4 else 1220)
        self.ws_ok = hdr.wscale is not None and cfg.window_scaling
        if self.ws_ok:
            self.snd_wscale = min(hdr.wscale or 0, 14)
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.ts_ok = hdr.ts_val is not None and cfg.timestamps
        if self.ts_ok:
            self.ts_recent = hdr.ts_val or 0
        self.sack_ok = hdr.sack_permitted and cfg.sack
        mss = min(self.peer_mss, self.rcv_mss)
        if self.maxseg:
            mss = min(mss, self.maxseg)
        if self.ts_ok:
            mss -= 12
        self.mss = max(mss, 64)
        self.cc = make_congestion_control(self._congestion_name, self.mss, now)

    # ====================================================== receive path

    def segment_arrived(self, hdr: TCPHeader, payload: memoryview, now: float) -> None:
        """RFC 9293 §3.10.7 for SYN-SENT and the synchronized states."""
        self.segs_in += 1
        self.last_activity = now
        self.keepalive_probes_sent = 0
        if self.state is S.SYN_SENT:
            self._syn_sent_arrived(hdr, payload, now)
            return
        flags = hdr.flags
        seq = unwrap(hdr.seq, self.rcv_nxt)
        seg_len = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        # PAWS (RFC 7323 §5)
        if (self.ts_ok and hdr.ts_val is not None and not flags & RST
                and ts_before(hdr.ts_val, self.ts_recent)):
            self.stack.counters["paws_rejected"] += 1
            self._send_ack(now)
            return
        if not self._acceptable(seq, seg_len):
            if not flags & RST:
                if self.state is S.TIME_WAIT and flags & SYN:
                    self.stack.counters["bad_segments"] += 1
                self._send_ack(now)
            return
        if self.ts_ok and hdr.ts_val is not None and seq <= self.rcv_adv_last_ack():
            self.ts_recent = hdr.ts_val
        if flags & RST:
            self._rst_arrived(seq, now)
            return
        if flags & SYN:
            if self.state is S.SYN_RECEIVED and self.parent is not None and seq == self.irs:
                # the peer retransmitted its SYN: our SYN-ACK was lost
                self._send_syn(now, ack=True)
                return
            self._challenge_ack(now)  # RFC 5961 §4
            return
        if not flags & ACK:
            return
        if not self._ack_arrived(hdr, seq, len(payload), now):
            return
        if payload and self.state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2):
            if self.orphan and self.shut_rd:
                # data for a socket the user closed: Linux answers with RST
                self._send_rst_for_abort(now)
                self.stack.counters["rst_data_after_close"] += 1
                self._terminate(now)
                return
            self._data_arrived(seq, payload, flags, now)
        if flags & FIN:
            self._fin_arrived(seq + len(payload), now)
        if self.state is not S.CLOSED:
            self.output(now)
            self.stack.schedule(self)

    def rcv_adv_last_ack(self) -> int:
        return self.rcv_nxt

    def _acceptable(self, seq: int, seg_len: int) -> bool:
        wnd = max(self.rcv_adv - self.rcv_nxt, 0)
        nxt = self.rcv_nxt
        if seg_len == 0:
            if wnd == 0:
                return seq == nxt
            return nxt <= seq < nxt + wnd or seq == nxt
        if wnd == 0:
            return False
        end = seq + seg_len - 1
        return (nxt <= seq < nxt + wnd) or (nxt <= end < nxt + wnd) or (seq < nxt < end)

    def _rst_arrived(self, seq: int, now: float) -> None:
        if seq != self.rcv_nxt:
            self._challenge_ack(now)  # RFC 5961 §3: in window but not exact
            return
        self.stack.counters["rst_received"] += 1
        state = self.state
        if state is S.SYN_RECEIVED and self.parent is not None:
            self._terminate(now)  # back to LISTEN: the listener never saw this child
            return
        if state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.SYN_RECEIVED):
            self.pending_error = errno.EPIPE if state is S.CLOSE_WAIT and self.shut_wr else errno.ECONNRESET
            if state is S.CLOSE_WAIT:
                self.pending_error = errno.ECONNRESET
        self.recv_q.clear() if self.pending_error else None
        self._terminate(now)

    def _challenge_ack(self, now: float) -> None:
        if self.stack.challenge_ack_allowed(now):
            self.stack.counters["challenge_acks"] += 1
            self._send_ack(now)

    def _ack_arrived(self, hdr: TCPHeader, seq: int, data_len: int, now: float) -> bool:
        ack = unwrap(hdr.ack, self.snd_una)
        state = self.state
        if state is S.SYN_RECEIVED:
            if self.snd_una < ack <= self.snd_max:
                self._established(now)
                self.snd_wnd = hdr.window << self.snd_wscale
                self.snd_wl1, self.snd_wl2 = seq, ack
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            else:
                self._send_rst(ack, 0, now, with_ack=False)
                return False
        if ack > self.snd_max:
            self._send_ack(now)  # acks something not yet sent
            return False
        if ack < self.snd_una - max(self.max_snd_wnd, 65535):
            self._challenge_ack(now)  # RFC 5961 §5: too old to be legitimate
            return False
        window = hdr.window << self.snd_wscale
        if hdr.sack_blocks and self.sack_ok:
            self._update_sacks(hdr.sack_blocks)
        if ack > self.snd_una:
            self._new_ack(ack, now)
        elif ack == self.snd_una and data_len == 0 and window == self.snd_wnd and (
                self.snd_max > self.snd_una) and not hdr.flags & (SYN | FIN):
            self._dupack(now)
        # window update (RFC 9293: only from newer segments)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            opened = window > self.snd_wnd
            self.snd_wnd = window
            self.snd_wl1, self.snd_wl2 = seq, ack
            self.max_snd_wnd = max(self.max_snd_wnd, window)
            if opened:
                self.persist_at = INF
                self.backoff = 0 if self.snd_una == self.snd_max else self.backoff
                self._changed()
        state = self.state
        fin_acked = self.fin_queued and self.snd_una > self.fin_seq
        if state is S.FIN_WAIT_1 and fin_acked:
            self._set_state(S.FIN_WAIT_2, now)
            if self.orphan:
                self.fin2_at = now + self.stack.config.fin_timeout
        elif state is S.CLOSING and fin_acked:
            self._enter_time_wait(now)
        elif state is S.LAST_ACK and fin_acked:
            self._terminate(now)
            return False
        elif state is S.TIME_WAIT:
            self._send_ack(now)
            self.tw_at = now + 2 * self.stack.config.msl
        return True

    def _new_ack(self, ack: int, now: float) -> None:
        acked = ack - self.snd_una
        data_acked = max(0, min(ack, self.buf_seq + self.send_buf.size) - max(self.snd_una, self.buf_seq))
        if data_acked:
            self.send_buf.consume(data_acked)
            self.buf_seq += data_acked
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.bytes_acked += acked
        self.retransmits = 0
        self.backoff = 0
        self.dupacks = 0
        self.limited_transmit = 0
        # RTT sample (Karn: only for a segment never retransmitted)
        rtt = None
        if self.rtt_seq >= 0 and ack >= self.rtt_seq:
            rtt = now - self.rtt_time
            self._rtt_sample(rtt)
            self.rtt_seq = -1
        if self.sacked:
            self._trim_sacks()
        cc = self.cc
        if cc is not None:
            flight = self.snd_max - self.snd_una
            if self.in_recovery:
                if ack >= self.recover:
                    self.in_recovery = False
                    cc.on_recovery_exit(now)
                else:
                    cc.on_recovery_ack(acked, flight, now)
                    if not self.sack_ok:
                        # NewReno partial ACK (RFC 6582): the next hole starts at snd_una
                        self._retransmit(self.snd_una, now)
            else:
                cc.on_ack(acked, rtt, flight, now)
        if self.snd_una >= self.snd_max:
            self.rto_at = INF
            self.first_unacked_at = 0.0
        else:
            self.first_unacked_at = now
            self._arm_rto(now)
        self._changed()

    def _dupack(self, now: float) -> None:
        self.dupacks += 1
        self.stack.counters["dupacks"] += 1
        if self.in_recovery:
            return
        if self.dupacks >= DUPTHRESH or (self.sack_ok and self.sacked_bytes >= DUPTHRESH * self.mss):
            self._enter_recovery(now)
        elif self.dupacks <= 2:
            self.limited_transmit = self.dupacks  # RFC 3042: one new segment per dupack

    def _enter_recovery(self, now: float) -> None:
        self.stack.counters["fast_retransmits"] += 1
        self.in_recovery = True
        self.recover = self.snd_max
        self.high_rxt = self.snd_una
        if self.cc is not None:
            self.cc.on_congestion_event(self.snd_max - self.snd_una, now)
        self.rtt_seq = -1
        self._retransmit(self.snd_una, now)

    # ---------------------------------------------------------------- SACK

    def _update_sacks(self, blocks: list[tuple[int, int]]) -> None:
        changed = False
        for left, right in blocks:
            start = unwrap(left, self.snd_una)
            end = unwrap(right, self.snd_una)
            if end <= start or end > self.snd_max or end <= self.snd_una:
                continue  # D-SACK below snd_una or nonsense: ignore
            start = max(start, self.snd_una)
            self.sacked.append([start, end])
            changed = True
        if changed:
            self.sacked.sort()
            merged: list[list[int]] = []
            for start, end in self.sacked:
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self.sacked = merged
            self.sacked_bytes = sum(e - s for s, e in merged)

    def _trim_sacks(self) -> None:
        una = self.snd_una
        kept = []
        for start, end in self.sacked:
            if end <= una:
                continue
            kept.append([max(start, una), end])
        self.sacked = kept
        self.sacked_bytes = sum(e - s for s, e in kept)

    def _next_hole(self, seq: int) -> tuple[int, int] | None:
        """The first un-SACKed range at or after ``seq`` below the highest SACKed byte."""
        if not self.sacked:
            return None
        for start, end in self.sacked:
            if seq < start:
                return seq, start
            if seq < end:
                seq = end
        return None

    def _pipe(self) -> int:
        """RFC 6675 pipe: what is believed to be still in the network.

        After a timeout the sender goes back to ``snd_una`` and everything between
        ``snd_nxt`` and ``snd_max`` counts as lost, so only ``snd_nxt`` bounds the flight.
        """
        if self.in_recovery and self.sacked:
            high_sack = self.sacked[-1][1]
            retransmitted = 0
            seq = self.snd_una
            while seq < self.high_rxt:
                hole = self._next_hole(seq)
                if hole is None or hole[0] >= self.high_rxt:
                    break
                retransmitted += min(hole[1], self.high_rxt) - hole[0]
                seq = hole[1]
            return max(0, (self.snd_max - high_sack) + retransmitted)
        nxt = self.snd_nxt
        outstanding = nxt - self.snd_una
        if self.in_recovery:
            return max(0, outstanding - self.dupacks * self.mss)
        for start, end in self.sacked:
            if start >= nxt:
                break
            outstanding -= min(end, nxt) - start
        return max(0, outstanding)

    # ---------------------------------------------------------------- data

    def _data_arrived(self, seq: int, payload: memoryview, flags: int, now: float) -> None:
        nxt = self.rcv_nxt
        if seq < nxt:
            payload = payload[nxt - seq :]
            seq = nxt
        right = self.rcv_adv
        if seq + len(payload) > right:
            payload = payload[: max(0, right - seq)]
        if not payload:
            self._send_ack(now)
            return
        if seq == nxt:
            if self.shut_rd and self.orphan:
                return
            self.recv_q.append(payload)
            size = len(payload)
            self.rcv_nxt = nxt + size
            self.bytes_received += size
            if self.ooo.ranges:
                for piece in self.ooo.pop_ready(self.rcv_nxt):
                    self.recv_q.append(piece)
                    self.rcv_nxt += len(piece)
                    self.bytes_received += len(piece)
                self._send_ack(now)  # filling a hole: ACK at once (RFC 5681 §4.2)
            else:
                self.ack_pending += 1
                if self.quick_acks > 0 or self.quickack or self.ack_pending >= 2:
                    if self.quick_acks > 0:
                        self.quick_acks -= 1
                    self._send_ack(now)
                elif self.dack_at == INF:
                    self.dack_at = now + self.stack.config.delayed_ack
            self._changed()
        else:
            if not self.ooo.add(seq, payload):
                self.stack.counters["ooo_dropped"] += 1
            self._send_ack(now)  # out of order: immediate duplicate ACK with SACK

    def _fin_arrived(self, fin_seq: int, now: float) -> None:
        if fin_seq != self.rcv_nxt or self.fin_received:
            if self.fin_received and fin_seq + 1 == self.rcv_nxt:
                self._send_ack(now)  # retransmitted FIN
            return
        self.fin_received = True
        self.rcv_nxt += 1
        self._send_ack(now)
        state = self.state
        if state in (S.ESTABLISHED, S.SYN_RECEIVED):
            self._set_state(S.CLOSE_WAIT, now)
        elif state is S.FIN_WAIT_1:
            if self.fin_queued and self.snd_una > self.fin_seq:
                self._enter_time_wait(now)
            else:
                self._set_state(S.CLOSING, now)
        elif state is S.FIN_WAIT_2:
            self._enter_time_wait(now)
        self._changed()

    def _syn_sent_arrived(self, hdr: TCPHeader, payload: memoryview, now: float) -> None:
        flags = hdr.flags
        ack = unwrap(hdr.ack, self.snd_una)
        if flags & ACK and (ack <= self.iss or ack > self.snd_max):
            if not flags & RST:
                self._send_rst(ack, 0, now, with_ack=False)
            return
        if flags & RST:
            if flags & ACK:
                self.pending_error = errno.ECONNREFUSED
                self.stack.counters["connect_refused"] += 1
                self._terminate(now)
            return
        if not flags & SYN:
            return
        self.irs = hdr.seq
        self.rcv_nxt = hdr.seq + 1
        self._negotiate(hdr, now)
        if flags & ACK:
            self.snd_una = ack
            self.snd_wnd = hdr.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = self.rcv_nxt - 1, ack
            self.max_snd_wnd = self.snd_wnd
            if self.rtt_seq >= 0 and self.syn_retries == 0:
                self._rtt_sample(now - self.rtt_time)
            self.rtt_seq = -1
            self.rto_at = INF
            self._established(now)
            self.rcv_adv = self.rcv_nxt + self._window_now()
            self._send_ack(now)
            self.output(now)
        else:
            # simultaneous open (RFC 9293 §3.5): SYN-RECEIVED, SYN-ACK with our ISS
            self._set_state(S.SYN_RECEIVED, now)
            self._send_syn(now, ack=True)
        self.stack.schedule(self)

    def _established(self, now: float) -> None:
        self._set_state(S.ESTABLISHED, now)
        self.snd_una = max(self.snd_una, self.iss + 1)
        self.buf_seq = self.iss + 1
        self.retransmits = 0
        self.backoff = 0
        self.first_unacked_at = 0.0
        if self.keepalive:
            self.ka_at = now + self.keepidle
        parent = self.parent
        if parent is not None:
            parent.half_open = max(0, parent.half_open - 1)
            self.stack.to_accept_queue(parent, self, now)
        if self.fin_queued:
            self._set_state(S.FIN_WAIT_1, now)
        self._changed()

    def _enter_time_wait(self, now: float) -> None:
        self._set_state(S.TIME_WAIT, now)
        self.rto_at = self.persist_at = self.ka_at = self.dack_at = self.fin2_at = INF
        self.tw_at = now + 2 * self.stack.config.msl
        self.send_buf.clear()
        self._changed()
        self.stack.schedule(self)

    # ========================================================= sending

    def output(self, now: float) -> None:
        """Send what the windows allow: holes first during recovery, then new data, then FIN."""
        state = self.state
        if state not in SYNCHRONIZED or state is S.TIME_WAIT or self.cc is None:
            return
        if self.in_recovery and self.sack_ok:
            self._recovery_retransmits(now)
        cc = self.cc
        mss = self.mss - self._sack_overhead()
        data_end = self.buf_seq + self.send_buf.size
        sent_any = False
        while True:
            nxt = self.snd_nxt
            if nxt < data_end:
                if self.sacked and nxt < self.snd_max:
                    hole = self._next_hole(nxt)
                    if hole is None and nxt < self.sacked[-1][1]:
                        self.snd_nxt = self.sacked[-1][1]
                        continue
                    if hole is not None and hole[0] > nxt:
                        self.snd_nxt = hole[0]
                        continue
                window_end = self.snd_una + self.snd_wnd
                room = window_end - nxt
                flight = self._pipe()
                cwnd_room = cc.cwnd - flight
                if self.limited_transmit and not self.in_recovery:
                    cwnd_room = max(cwnd_room, mss)
                length = min(mss, data_end - nxt, room, max(cwnd_room, 0))
                if length <= 0:
                    if room <= 0 and nxt == self.snd_una and self.persist_at == INF:
                        self.persist_at = now + max(self.rto, self.stack.config.rto_min)
                    break
                if (length < mss and length < data_end - nxt and length < self.max_snd_wnd // 2
                        and nxt != self.snd_una):
                    break  # the window cuts the segment short: SWS avoidance (RFC 9293 §3.8.6.2.1)
                if length < mss and not self.nodelay and self.snd_sml > self.snd_una:
                    # Nagle, Minshall's variant (as Linux): a small segment waits only while
                    # an earlier small segment is unacknowledged
                    break
                if self.limited_transmit and not self.in_recovery and cwnd_room <= mss:
                    self.limited_transmit -= 1
                payload = self.send_buf.peek(nxt - self.buf_seq, length)
                end = nxt + length
                flags = ACK
                if end == data_end:
                    flags |= PSH
                if self.fin_queued and end == self.fin_seq:
                    flags |= FIN
                    end += 1
                rexmit = nxt < self.snd_max
                if length < mss:
                    self.snd_sml = nxt + length
                self._emit_data(nxt, flags, payload, now, rexmit)
                self.snd_nxt = end
                if end > self.snd_max:
                    self.snd_max = end
                sent_any = True
                continue
            if self.fin_queued and nxt == self.fin_seq and self.snd_max <= self.fin_seq:
                self._emit_data(nxt, ACK | FIN, b"", now, False)
                self.snd_nxt = self.snd_max = nxt + 1
                sent_any = True
            elif self.fin_queued and nxt == self.fin_seq and self.snd_max > self.fin_seq:
                # retransmission of a FIN after go-back-N
                self._emit_data(nxt, ACK | FIN, b"", now, True)
                self.snd_nxt = nxt + 1
                sent_any = True
            break
        if sent_any:
            self.last_send = now
            if self.rto_at == INF:
                self._arm_rto(now)
            if not self.first_unacked_at:
                self.first_unacked_at = now

    def _recovery_retransmits(self, now: float) -> None:
        cc = self.cc
        assert cc is not None
        seq = max(self.high_rxt, self.snd_una)
        while True:
            hole = self._next_hole(seq)
            if hole is None:
                return
            start, end = hole
            length = min(self.mss - self._sack_overhead(), end - start)
            if self._pipe() + length > cc.cwnd and start != self.snd_una:
                return
            self._retransmit(start, now, length)
            self.high_rxt = start + length
            seq = self.high_rxt
            if self._pipe() >= cc.cwnd:
                return

    def _retransmit(self, seq: int, now: float, length: int | None = None) -> None:
        """Resend the segment at ``seq`` (data and/or FIN)."""
        data_end = self.buf_seq + self.send_buf.size
        if length is None:
            length = min(self.mss - self._sack_overhead(), max(0, data_end - seq))
        length = min(length, max(0, data_end - seq))
        flags = ACK
        payload: bytes | memoryview = b""
        if length > 0:
            payload = self.send_buf.peek(seq - self.buf_seq, length)
        end = seq + length
        if self.fin_queued and end == self.fin_seq and self.snd_max > self.fin_seq:
            flags |= FIN
        if length == 0 and not flags & FIN:
            return
        self.stack.counters["retransmits"] += 1
        self.total_retrans += 1
        self._emit_data(seq, flags, payload, now, True)
        if self.high_rxt < end:
            self.high_rxt = end
        self._arm_rto(now)

    def _emit_data(self, seq: int, flags: int, payload: bytes | memoryview, now: float,
                   rexmit: bool) -> None:
        window = self._advertise()
        ts = (self._ts_now(now), self.ts_recent) if self.ts_ok else None
        blocks = self._sack_option() if self.sack_ok and self.ooo.ranges else ()
        if ts is not None and not blocks:
            header = wire.build(self.local_port, self.remote_port, seq & MASK, self.rcv_nxt & MASK,
                                flags, window, ts=ts)
        else:
            header = wire.build(self.local_port, self.remote_port, seq & MASK,
                                self.rcv_nxt & MASK, flags, window, ts=ts, sack_blocks=blocks)
        if rexmit:
            self.rtt_seq = -1
        elif self.rtt_seq < 0 and payload:
            self.rtt_seq = seq + len(payload)
            self.rtt_time = now
        self.bytes_sent += len(payload)
        self._ack_sent()
        self._emit(header, payload, now)

    def _sack_overhead(self) -> int:
        """Option bytes SACK blocks will take in our next segment (they shrink the payload)."""
        if not self.sack_ok or not self.ooo.ranges:
            return 0
        blocks = min(len(self.ooo.sack_blocks(4)), 3 if self.ts_ok else 4)
        return 4 + 8 * blocks

    def _sack_option(self) -> list[tuple[int, int]]:
        return [(s & MASK, e & MASK) for s, e in self.ooo.sack_blocks(3 if self.ts_ok else 4)]

    def _send_ack(self, now: float) -> None:
        if self.state is S.CLOSED:
            return
        window = self._advertise()
        ts = (self._ts_now(now), self.ts_recent) if self.ts_ok else None
        blocks = self._sack_option() if self.sack_ok and self.ooo.ranges else ()
        header = wire.build(self.local_port, self.remote_port, self.snd_nxt & MASK,
                            self.rcv_nxt & MASK, ACK, window, ts=ts, sack_blocks=blocks)
        self._ack_sent()
        self._emit(header, b"", now)

    def _ack_sent(self) -> None:
        self.ack_pending = 0
        self.dack_at = INF

    def _send_rst(self, seq: int, ack: int, now: float, with_ack: bool) -> None:
        self.stack.send_reset(self.wire_local, self.local_port, self.wire_remote, self.remote_port,
                              seq & MASK, ack & MASK, with_ack)

    def _send_rst_for_abort(self, now: float) -> None:
        self.stack.counters["rst_sent_abort"] += 1
        self._send_rst(self.snd_nxt, self.rcv_nxt, now, with_ack=True)

    def _emit(self, header: bytes, payload: bytes | memoryview, now: float) -> None:
        self.segs_out += 1
        self.stack.emit(self, header, payload)

    def _window_now(self) -> int:
        return max(0, self.rcvbuf - self.recv_q.size)

    def _advertise(self) -> int:
        """The window field: never shrinks the right edge (RFC 9293 §3.8.6)."""
        space = self._window_now()
        limit = 65535 << self.rcv_wscale
        space = min(space, limit)
        right = self.rcv_nxt + space
        if right < self.rcv_adv:
            right = self.rcv_adv
        elif right - self.rcv_adv < min(self.rcvbuf // 2, self.rcv_mss) and self.rcv_adv > self.rcv_nxt:
            right = self.rcv_adv  # receiver SWS avoidance: don't advertise tiny increases
        self.rcv_adv = right
        return min((right - self.rcv_nxt) >> self.rcv_wscale, 65535)

    def _maybe_window_update(self, before: int, now: float) -> None:
        """After the user reads: tell the peer when the window has grown enough to matter."""
        if self.state not in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2):
            return
        space = self._window_now()
        advertised = self.rcv_adv - self.rcv_nxt
        if space - advertised >= max(2 * self.rcv_mss, self.rcvbuf // 4) or (
                advertised < self.rcv_mss and space >= self.rcv_mss):
            self._send_ack(now)

    def _ts_now(self, now: float) -> int:
        return int(now * 1000) & MASK

    # ======================================================== RTT and timers

    def _rtt_sample(self, rtt: float) -> None:
        cfg = self.stack.config
        if self.srtt == 0.0:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(max(self.srtt + max(4 * self.rttvar, 0.001), cfg.rto_min), cfg.rto_max)

    def _arm_rto(self, now: float) -> None:
        cfg = self.stack.config
        self.rto_at = now + min(self.rto * (1 << self.backoff), cfg.rto_max)

    def wakeup_at(self) -> float:
        return min(self.rto_at, self.dack_at, self.persist_at, self.ka_at, self.tw_at, self.fin2_at)

    def on_timer(self, now: float) -> None:
        if self.state is S.CLOSED:
            return
        if self.tw_at <= now:
            self._terminate(now)
            return
        if self.fin2_at <= now and self.state is S.FIN_WAIT_2:
            self._terminate(now)
            return
        if self.dack_at <= now:
            self._send_ack(now)
        if self.rto_at <= now:
            self.rto_at = INF
            self._rto_fired(now)
            if self.state is S.CLOSED:
                return
        if self.persist_at <= now:
            self.persist_at = INF
            self._persist_probe(now)
        if self.ka_at <= now:
            self._keepalive(now)
        self.stack.schedule(self)

    def _timed_out(self, now: float) -> bool:
        cfg = self.stack.config
        if self.user_timeout and self.first_unacked_at:
            return now - self.first_unacked_at >= self.user_timeout / 1000
        if self.state is S.SYN_SENT:
            return self.syn_retries >= cfg.syn_retries
        if self.state is S.SYN_RECEIVED:
            return self.syn_retries >= cfg.synack_retries
        return self.retransmits >= cfg.retries2

    def _rto_fired(self, now: float) -> None:
        state = self.state
        if state in (S.SYN_SENT, S.SYN_RECEIVED):
            if self._timed_out(now):
                self.pending_error = self.soft_error or errno.ETIMEDOUT
                self.stack.counters["connect_timeouts"] += 1
                self._terminate(now)
                return
            self.syn_retries += 1
            self.backoff += 1
            self.rtt_seq = -1
            self.stack.counters["syn_retransmits"] += 1
            self._send_syn(now, ack=state is S.SYN_RECEIVED)
            self._arm_rto(now)
            return
        if self.snd_una >= self.snd_max:
            return
        if self._timed_out(now):
            self.pending_error = self.soft_error or errno.ETIMEDOUT
            self.stack.counters["timeouts"] += 1
            self._terminate(now)
            return
        self.retransmits += 1
        self.backoff += 1
        self.stack.counters["rto_expired"] += 1
        if self.cc is not None and self.retransmits == 1:
            self.cc.on_rto(self.snd_max - self.snd_una, now)
        elif self.cc is not None:
            self.cc.cwnd = self.mss
        self.in_recovery = False
        self.dupacks = 0
        self.rtt_seq = -1
        self.high_rxt = self.snd_una
        # go back N from snd_una, skipping what the peer SACKed
        self.snd_nxt = self.snd_una
        self._retransmit(self.snd_una, now)
        seg_end = self.snd_una + min(self.mss, self.buf_seq + self.send_buf.size - self.snd_una)
        if self.fin_queued and seg_end == self.fin_seq:
            seg_end += 1
        self.snd_nxt = max(self.snd_nxt, seg_end)
        if self.snd_nxt == self.snd_una:
            self.snd_nxt = self.snd_una + 1 if self.fin_queued else self.snd_una
        self._arm_rto(now)

    def _persist_probe(self, now: float) -> None:
        """Zero-window probe: an old sequence number makes the peer answer with its window."""
        if self.state not in SYNCHRONIZED or self.snd_wnd > 0:
            return
        if self.buf_seq + self.send_buf.size <= self.snd_nxt and not self.fin_queued:
            return
        self.stack.counters["window_probes"] += 1
        self._probe(now)
        self.backoff = min(self.backoff + 1, 10)
        self.persist_at = now + min(max(self.rto, self.stack.config.rto_min) * (1 << self.backoff),
                                    self.stack.config.rto_max)

    def _probe(self, now: float) -> None:
        ts = (self._ts_now(now), self.ts_recent) if self.ts_ok else None
        header = wire.build(self.local_port, self.remote_port, (self.snd_una - 1) & MASK,
                            self.rcv_nxt & MASK, ACK, self._advertise(), ts=ts)
        self._emit(header, b"", now)

    def _keepalive(self, now: float) -> None:
        if not self.keepalive or self.state not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_2):
            self.ka_at = INF
            return
        idle = now - self.last_activity
        if idle < self.keepidle and self.keepalive_probes_sent == 0:
            self.ka_at = self.last_activity + self.keepidle
            return
        if self.keepalive_probes_sent >= self.keepcnt:
            self.pending_error = errno.ETIMEDOUT
            self.stack.counters["keepalive_timeouts"] += 1
            self._terminate(now)
            return
        self.keepalive_probes_sent += 1
        self.stack.counters["keepalive_probes"] += 1
        self._probe(now)
        self.ka_at = now + self.keepintvl

    # ===================================================== state and teardown

    def _set_state(self, state: TcpState, now: float) -> None:
        if self.stack.config.log_transitions or self.stack.transition_log is not None:
            self.stack.log_transition(self, self.state, state, now)
        self.state = state

    def _terminate(self, now: float) -> None:
        """CLOSED: forget timers and buffers, leave the tables; the user may still hold us."""
        if self.state is S.CLOSED and self.local is None:
            return
        parent = self.parent
        if parent is not None and self.state is S.SYN_RECEIVED:
            parent.half_open = max(0, parent.half_open - 1)
        self._set_state(S.CLOSED, now)
        self.rto_at = self.dack_at = self.persist_at = self.ka_at = self.tw_at = self.fin2_at = INF
        self.send_buf.clear()
        self.ooo.clear()
        if self.orphan:
            self.recv_q.clear()
        self.stack.release(self)
        self._changed()

    # ============================================================ identity

    @property
    def local_port(self) -> int:
        return self.local[1] if self.local else 0

    @property
    def remote_port(self) -> int:
        return self.remote[1] if self.remote else 0

    def info(self) -> dict[str, Any]:
        cc = self.cc
        return {
            "state": self.state.name,
            "rto": self.rto * (1 << min(self.backoff, 16)),
            "rtt": self.srtt,
            "rttvar": self.rttvar,
            "snd_mss": self.mss,
            "rcv_mss": self.rcv_mss,
            "snd_cwnd": cc.cwnd if cc else 0,
            "snd_ssthresh": cc.ssthresh if cc else 0,
            "congestion": self.congestion,
            "retransmits": self.retransmits,
            "total_retrans": self.total_retrans,
            "bytes_sent": self.bytes_sent,
            "bytes_acked": self.bytes_acked,
            "bytes_received": self.bytes_received,
            "segs_out": self.segs_out,
            "segs_in": self.segs_in,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": max(0, self.rcv_adv - self.rcv_nxt),
            "unacked": self.snd_max - self.snd_una,
            "sacked": self.sacked_bytes,
            "lost": 0,
            "retrans": max(0, self.high_rxt - self.snd_una) if self.in_recovery else 0,
            "snd_wscale": self.snd_wscale,
            "rcv_wscale": self.rcv_wscale,
            "timestamps": self.ts_ok,
            "sack": self.sack_ok,
            "in_recovery": self.in_recovery,
            "recv_queue": self.recv_q.size,
            "send_queue": self.send_buf.size,
        }

    def __repr__(self) -> str:
        return f"<TcpSocket {self.state.name} {self.local} -> {self.remote}>"
