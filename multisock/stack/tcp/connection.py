"""The TCP control block as one class: ``TcpSocket``, with the user API and readiness.

``TcpSocket`` is ``block.ControlBlock``'s state plus the parts that hold the rules, one
module each, stacked in one line of inheritance (``block.py`` says why and lists them):
options (``options.py``), transmission and persist (``output.py``), loss recovery
(``recovery.py``), timer expiries (``timeouts.py``), segment arrival in RFC 9293 §3.10.7's
order (``arrival.py``). Here: what the socket layer and the stack call - bind, listen,
connect, accept, send, recv, shutdown, close, abort, info, path MTU, readiness.
"""

from __future__ import annotations

import errno as E
import os
import socket as _socket
from collections import deque
from typing import Any

from multisock.stack.tcp import isn, timewait
from multisock.stack.tcp.block import (
    _RECEIVING,
    _SENDING,
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
)
from multisock.stack.tcp.config import CAN_SEND, SYNCHRONIZED
from multisock.stack.tcp.options import _IP_OVERHEAD
from multisock.stack.tcp.options import OPTION_NAMES as OPTION_NAMES
from multisock.stack.tcp.options import window_scale_for as window_scale_for
from multisock.stack.tcp.recovery import Recovery
from multisock.stack.tcp.seq import MASK, ts_before, unwrap
from multisock.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPHeader


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _unmap(addr: bytes, family: int, v6only: bool) -> bytes:
    """An AF_INET6 socket speaks IPv4 to ::ffff:a.b.c.d; inside, such addresses are 4 bytes
    (the facade maps them back for getsockname/getpeername)."""
    if family == _socket.AF_INET6 and len(addr) == 16 and addr[:12] == _V4MAPPED:
        if v6only:
            raise oserror(E.ENETUNREACH)
        return addr[12:]
    return addr


_V4MAPPED = bytes(10) + b"\xff\xff"


class TcpSocket(Recovery):
    """A control block. Created CLOSED by ``TcpStack.socket``; lives on after ``close``."""

    __slots__ = ()

    # ------------------------------------------------------------------ readiness

    @property
    def readable(self) -> bool:
        if self.state is LISTEN:
            return bool(self.accept_queue)
        return bool(
            self.recvq.size
            or self.fin_received
            or self.error
            or self.shut_rd
            or (self.state is CLOSED and self.was_connected)
        )

    @property
    def writable(self) -> bool:
        if self.error:
            return True
        state = self.state
        if state in CAN_SEND:
            return self.shut_wr or self.sndq.size < self.sndbuf
        return self.was_connected and state not in (SYN_SENT, SYN_RECEIVED, LISTEN)

    @property
    def readable_bytes(self) -> int:
        return self.recvq.size

    @property
    def pending_error(self) -> int:
        return self.error

    def take_error(self) -> int:
        err, self.error = self.error, 0
        return err

    def _raise_error(self) -> None:
        err = self.take_error()
        if err:
            raise oserror(err)

    # ------------------------------------------------------------------ user API

    def bind(self, addr: bytes, port: int) -> None:
        if self.bound or self.state is not CLOSED or self.was_connected:
            raise oserror(E.EINVAL)
        self.stack.ports.bind(self, _unmap(addr, self.family, self.v6only), port)

    def listen(self, backlog: int, now: float) -> None:
        if self.state is LISTEN:
            self.backlog = max(0, min(backlog, self.stack.config.somaxconn))
            return
        if self.state is not CLOSED or self.was_connected:
            raise oserror(E.EINVAL)
        if not self.bound:
            self.stack.ports.bind(self, bytes(4 if self.family == _socket.AF_INET else 16), 0)
        self.stack.ports.check_listen(self)
        self.backlog = max(0, min(backlog, self.stack.config.somaxconn))
        self.accept_queue = deque()
        self._set_state(LISTEN, now)
        self.stack.add_listener(self)

    def connect(self, addr: bytes, port: int, now: float) -> None:
        state = self.state
        if state is SYN_SENT:
            raise oserror(E.EALREADY)
        if state is not CLOSED or self.was_connected or self.closed:
            raise oserror(E.EISCONN)  # Linux: also for a listener; no reconnect after a failure
        if port == 0:
            raise oserror(E.ECONNREFUSED)
        addr = _unmap(addr, self.family, self.v6only)
        stack = self.stack
        mtu = stack.host.route_mtu(addr)
        if mtu is None:
            raise oserror(E.ENETUNREACH)
        if self.bound and self.local is not None and any(self.local[0]):
            src = self.local[0]
        else:
            chosen = stack.host.select_source(addr)
            if chosen is None:
                raise oserror(E.EADDRNOTAVAIL)
            src = chosen
        reused = stack.ports.connect_bind(self, src, addr, port, now, stack.config.tw_reuse)
        self.remote = (addr, port)
        self.created = now
        self._init_mss(mtu)
        if reused is None:
            self.iss = isn.initial_sequence(stack.secret, src, self.local_port, addr, port, now)
        else:
            # a TIME-WAIT 4-tuple taken over (tcp_tw_reuse): start beyond the old connection;
            # a nonzero ts_recent in SYN-SENT arms PAWS for the SYN-ACK (_input_syn_sent)
            self.iss, self.ts_recent = reused.successor()
        self.ts_offset = isn.ts_offset(stack.secret, src, addr)
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self._init_rcv_wscale()
        self.was_connected = True
        self._set_state(SYN_SENT, now)
        stack.register(self)
        self._send_syn(now)
        self._arm_rexmit(now)

    def accept(self) -> TcpSocket | None:
        if self.state is not LISTEN:
            raise oserror(E.EINVAL)
        if not self.accept_queue:
            return None
        child = self.accept_queue.popleft()
        child.parent = None
        return child

    def send(self, data: bytes | memoryview, now: float) -> int:
        if self.error:
            self._raise_error()
        state = self.state
        if self.shut_wr or self.closed:
            raise oserror(E.EPIPE)
        if state not in CAN_SEND:
            if state in (SYN_SENT, SYN_RECEIVED):
                return 0
            # Linux's tcp_sendmsg -> sk_stream_wait_connect: EPIPE unless connecting
            raise oserror(E.EPIPE)
        space = self.sndbuf - self.sndq.size
        if space <= 0 or not len(data):
            return 0
        n = len(data)
        if n > space:
            n = space
            data = memoryview(data)[:n]
        self.sndq.append(data)
        stack = self.stack
        stack._depth += 1  # (busy(), without the context manager: once per send call)
        try:
            self._output(now)
        finally:
            stack.leave(now)
        return n

    def push(self, now: float) -> None:
        """Send what Nagle was holding (used after TCP_NODELAY is switched on)."""
        if self.state in _SENDING:
            with self.stack.busy(now):
                self._output(now)

    def recv_into(self, buf: memoryview, now: float, peek: bool = False) -> int:
        recvq = self.recvq
        if recvq.size and len(buf):  # Linux still hands out what was queued before SHUT_RD
            n = recvq.read_into(buf, peek)
            if not peek and self.state in _RECEIVING:
                self._maybe_window_update(now)
            return n
        if self.error:
            self._raise_error()
        if self.fin_received or self.shut_rd or not len(buf):
            return 0
        state = self.state
        if state is CLOSED:
            if self.was_connected:
                return 0
            raise oserror(E.ENOTCONN)
        if state is LISTEN:
            raise oserror(E.ENOTCONN)
        raise BlockingIOError(E.EAGAIN, os.strerror(E.EAGAIN))

    def shutdown(self, how: int, now: float) -> None:
        """Linux's inet_shutdown: CLOSED -> ENOTCONN; SYN-SENT (or a listener told SHUT_RD)
        is disconnected; otherwise the direction is shut and SHUT_WR queues a FIN."""
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise oserror(E.EINVAL)
        state = self.state
        if state is CLOSED:
            raise oserror(E.ENOTCONN)
        if state is LISTEN or state is SYN_SENT:
            if state is LISTEN and how == _socket.SHUT_WR:
                raise oserror(E.ENOTCONN)
            self.close(now)
            self.closed = False
            return
        if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
            self.shut_rd = True
            self.stack.touch(self)
        if how in (_socket.SHUT_WR, _socket.SHUT_RDWR) and not self.shut_wr:
            self.shut_wr = True
            with self.stack.busy(now):
                self._queue_fin(now)
            self.stack.touch(self)

    def close(self, now: float) -> None:
        if self.closed:
            return
        self.closed = True
        state = self.state
        stack = self.stack
        with stack.busy(now):
            if state is LISTEN:
                stack.remove_listener(self)
                for child in list(self.accept_queue):
                    child._send_rst_to_peer(now)
                    child._finish(now, 0)
                self.accept_queue.clear()
                for child in stack.children_of(self):
                    child._send_rst_to_peer(now)
                    child._finish(now, 0)
                self._finish(now, 0)
                return
            if state is CLOSED or state is SYN_SENT:
                self._finish(now, 0)
                return
            if self.recvq.size or (self.linger is not None and self.linger == 0):
                # Linux: unread data or SO_LINGER{1,0} turns close() into an abort (RFC 2525 §2.17)
                if state not in (TIME_WAIT,):
                    self._send_rst_to_peer(now)
                    stack.counters["rst_on_close"] += 1
                self._finish(now, 0)
                return
            self.shut_rd = True
            if not self.shut_wr:
                self.shut_wr = True
                self._queue_fin(now)
            if self.state is FIN_WAIT_2:
                self.t_misc = now + stack.config.fin_timeout
                self._rearm()
            elif self.state is TIME_WAIT:
                timewait.enter(self, now)  # closed in TIME-WAIT: the record takes over

    def abort(self, now: float) -> None:
        """Drop the connection at once, telling the peer with a RST (like SO_LINGER 0)."""
        if self.state is LISTEN:
            self.close(now)
            return
        with self.stack.busy(now):
            if (
                self.state in SYNCHRONIZED or self.state is SYN_RECEIVED
            ) and self.state is not TIME_WAIT:
                self._send_rst_to_peer(now)
            self.closed = True
            if self.state is not CLOSED or self.bound:
                self._finish(now, 0)

    def info(self) -> dict[str, Any]:
        from multisock.stack.tcp.info import socket_info

        return socket_info(self)

    def path_mtu_changed(self, mtu: int, now: float) -> None:
        """ICMP 'fragmentation needed' / 'packet too big': shrink segments and resend."""
        overhead = _IP_OVERHEAD[len(self.remote[0]) if self.remote else 4]
        new = max(mtu - overhead - (12 if self.ts_ok else 0), 64)
        if new >= self.mss:
            return
        self.mss = new
        if self.cc is not None:
            self.cc.set_mss(new)
        self.stack.counters["pmtu_updates"] += 1
        if self.state in _SENDING and self.snd_max > self.snd_una:
            self.snd_nxt = self.snd_una
            self._output(now)

    # ------------------------------------------------------------------ input

    def segment(self, hdr: TCPHeader, payload: memoryview, now: float) -> None:
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
        seq = unwrap(hdr.seq, rcv_nxt)
        seglen = len(payload)
        # PAWS (RFC 7323 §5): an old timestamp marks an old duplicate
        ts_val = hdr.ts_val
        if (
            self.ts_ok
            and ts_val is not None
            and not flags & RST
            and ts_before(ts_val, self.ts_recent)
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
        self._output(now)
        if self.t_dack is not None:
            self._rearm()

    def _challenge_ack(self, now: float) -> None:
        if self.stack.challenge_ack_allowed(self, now):
            self._send_ack(now)

    def _oow_ack(self, flags: int, seglen: int, now: float, counter: str) -> None:
        """ACK a segment that did not advance the connection, within the per-connection
        rate limit (``TcpStack.oow_ack_allowed``). A segment occupying sequence space
        without SYN (data or FIN) is answered at once, as Linux does: it is no part of an
        ACK loop, and its sender is waiting for that (D)SACK or ACK of its FIN."""
        exempt = (seglen or flags & FIN) and not flags & SYN
        if exempt or self.stack.oow_ack_allowed(self, now, counter):
            self._send_ack(now)

    def _input_rst(self, seq: int, rwnd: int, now: float) -> None:
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

    def _input_time_wait(self, hdr: TCPHeader, seq: int, seglen: int, now: float) -> None:
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

    def _input_ack(self, hdr: TCPHeader, seq: int, seglen: int, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth check; False when the segment is to be dropped."""
        una = self.snd_una
        ack = unwrap(hdr.ack, una)
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
        if self.sack_ok and hdr.sack_blocks:
            newly_sacked = self._input_sack(hdr.sack_blocks, ack)
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

    def _input_data(self, seq: int, payload: memoryview, fin: bool, now: float) -> None:
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

    def _input_fin(self, seq: int, now: float) -> None:
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

    def _enter_time_wait(self, now: float) -> None:
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

    def _input_syn_sent(self, hdr: TCPHeader, payload: memoryview, now: float) -> None:
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
                self.rtt.sample(((self._ts_now(now) - hdr.ts_ecr) & MASK) / 1000.0)
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

    def _established_from_syn_received(self, hdr: TCPHeader, seq: int, now: float) -> bool:
        self.snd_una = self.iss + 1
        self.snd_wnd = hdr.window << self.snd_wscale
        self.max_sndwnd = self.snd_wnd
        self.snd_wl1 = seq
        self.snd_wl2 = self.snd_una
        if self.retries == 0 and not self.ts_ok:
            self.rtt.sample(now - self.created)
        elif self.ts_ok and hdr.ts_ecr:
            self.rtt.sample(((self._ts_now(now) - hdr.ts_ecr) & MASK) / 1000.0)
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

    def _established(self, now: float, set_state: bool = True) -> None:
        self.was_connected = True
        self.snd_nxt = max(self.snd_nxt, self.snd_una)
        self.rexmit_start = None  # SYN retransmissions do not count against data's timeout
        self.last_rcv = now
        self.last_send = now
        if set_state:
            self._set_state(ESTABLISHED, now)
        if self._keepalive:
            self.t_keep = now + self.keepidle
        self._rearm()

    # ------------------------------------------------------------------ timers

    def on_timer(self, now: float) -> None:
        if self.t_misc is not None and now >= self.t_misc:
            self.t_misc = None
            if self.state is TIME_WAIT or (self.state is FIN_WAIT_2 and self.closed):
                self._finish(now, 0)
                return
        if self.t_rexmit is not None and now >= self.t_rexmit:
            self.t_rexmit = None
            if self.persist:
                self._persist_fire(now)
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

    def _timed_out(self, now: float, limit: int) -> bool:
        deadline = self._user_deadline()
        if deadline is not None:
            return now >= deadline
        return self.retries > limit

    def _user_deadline(self) -> float | None:
        """When TCP_USER_TIMEOUT ends the current wait: ``rexmit_start`` (the first timed-out
        transmission's send time, or the first zero-window probe's expiry) plus the timeout.
        One expression for the check and the timer, so the timer armed at the deadline finds
        it reached (no float rounding leaves it a hair short, firing again and again)."""
        start = self.rexmit_start
        if not self.user_timeout or start is None:
            return None
        return start + self.user_timeout / 1000.0

    def _arm_clamped(self, when: float) -> None:
        """Arm the retransmission/persist timer for ``when``, or earlier when the user
        timeout elapses first (Linux's tcp_clamp_rto_to_user_timeout and
        tcp_clamp_probe0_to_user_timeout): the abort comes when the timeout says, not at
        the next backed-off expiry (5 s of user timeout ended at 6.2 s before)."""
        deadline = self._user_deadline()
        if deadline is not None and deadline < when:
            when = deadline
        self.t_rexmit = when
        self._rearm()

    def _rto_fire(self, now: float) -> None:
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
        if self.retries == 1:
            cc.on_rto(self._pipe(), now)
        else:
            # RFC 5681 §3.1: a segment timing out again keeps the first timeout's ssthresh
            cc.cwnd = self.mss
        self.in_recovery = False
        self.dupacks = 0
        self.ndup = 0
        self.recover = self.snd_max
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

    def _persist_fire(self, now: float) -> None:
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

    def _probes_exhausted(self, now: float) -> bool:
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

    def _keepalive_fire(self, now: float) -> None:
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
