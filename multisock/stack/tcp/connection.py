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
from typing import Any, Final

from multisock.stack.tcp import isn, timewait
from multisock.stack.tcp.arrival import Arrival
from multisock.stack.tcp.block import (
    _RECEIVING,
    _SENDING,
    CLOSED,
    CLOSING,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    URG_NONE,
    URG_READ,
    URG_VALID,
)
from multisock.stack.tcp.config import CAN_SEND, SYNCHRONIZED
from multisock.stack.tcp.options import _IP_OVERHEAD
from multisock.stack.tcp.options import OPTION_NAMES as OPTION_NAMES
from multisock.stack.tcp.options import window_scale_for as window_scale_for


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


_V4MAPPED: Final = bytes(10) + b"\xff\xff"


class TcpSocket(Arrival):
    """A control block. Created CLOSED by ``TcpStack.socket``; lives on after ``close``."""

    __slots__ = ()

    # ------------------------------------------------------------------ readiness

    @property
    def readable(self) -> bool:
        if self.state is LISTEN:
            return bool(self.accept_queue)
        return bool(
            (self.recvq.size and not self._only_urgent_queued())
            or self.fin_received
            or self.error
            or self.shut_rd
            or (self.state is CLOSED and self.was_connected)
        )

    @property
    def writable(self) -> bool:
        """select/poll/epoll's write readiness, Linux's tcp_poll: an established stream is
        writable when at most 2/3 of its send buffer is queued (``_stream_writeable``), not
        at the first free byte; a blocked writer waits for the same. Not writable: the
        ``nospace`` flag asks the ACK that makes it writable for a wakeup - set before a
        second look, as tcp_poll does, so an ACK processed by another thread between the
        two looks cannot be missed."""
        if self.error:
            return True
        state = self.state
        if state in CAN_SEND:
            if self.shut_wr or self._stream_writeable():
                return True
            self.nospace = True
            return self._stream_writeable()
        return self.was_connected and state not in (SYN_SENT, SYN_RECEIVED, LISTEN)

    @property
    def can_queue(self) -> bool:
        """``send`` would not block: any free byte in the send buffer (Linux's
        sk_stream_memory_free), or an error or state it reports at once. Differs from
        ``writable``: a non-blocking send takes what fits while poll says "not writable"."""
        if self.error:
            return True
        state = self.state
        if state in CAN_SEND:
            if self.shut_wr or self.sndq.size < self.sndbuf:
                return True
            self.nospace = True
            return self.sndq.size < self.sndbuf
        return self.was_connected and state not in (SYN_SENT, SYN_RECEIVED, LISTEN)

    def _only_urgent_queued(self) -> bool:
        """The one byte queued is an out-of-band urgent byte: not readable (Linux's tcp_poll
        asks for one more byte then)."""
        return bool(
            self.urg_state
            and not self.oobinline
            and self.recvq.size == 1
            and self.urg_seq == self._read_seq()
        )

    @property
    def exceptional(self) -> bool:
        """Urgent data arrived and not yet read (select's x-list, poll's POLLPRI)."""
        return self.urg_state == URG_VALID

    @property
    def lingering(self) -> bool:
        """Our FIN (or data before it) is still unacknowledged: what a close() with a nonzero
        SO_LINGER waits out (Linux's sk_stream_wait_close: FIN-WAIT-1, CLOSING, LAST-ACK)."""
        state = self.state
        return state is FIN_WAIT_1 or state is CLOSING or state is LAST_ACK

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
        self._init_mss(mtu, stack.host.route_gso(addr))
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

    def send(self, data: bytes | memoryview, now: float, urgent: bool = False) -> int:
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
            if space <= 0:
                self.nospace = True  # (tcp_sendmsg's wait_for_space)
            return 0
        n = len(data)
        if n >= space:
            # the buffer is full now: whoever waits for room (a relay that reads the size
            # itself) is woken when an ACK makes the socket writable again
            self.nospace = True
            if n > space:
                n = space
                data = memoryview(data)[:n]
        self.sndq.append(data)
        if urgent:  # MSG_OOB: the last byte is urgent (the pointer goes just past it)
            self.snd_up = self.snd_una + self.sndq.size
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
            n = recvq.read_into(buf, peek) if not self.urg_state else self._read_around_urgent(buf, peek)
            if n:
                if not peek and self.state in _RECEIVING:
                    self._maybe_window_update(now)
                return n
        if self.fin_received:
            # Linux's tcp_recvmsg asks SOCK_DONE (a FIN arrived) before sk_err: a reset after
            # the peer's FIN (CLOSE_WAIT's EPIPE) leaves recv at EOF, the error still pending
            # for SO_ERROR and send
            return 0
        if self.error:
            self._raise_error()
        if self.shut_rd or not len(buf):
            return 0
        state = self.state
        if state is CLOSED:
            if self.was_connected:
                return 0
            raise oserror(E.ENOTCONN)
        if state is LISTEN:
            raise oserror(E.ENOTCONN)
        raise BlockingIOError(E.EAGAIN, os.strerror(E.EAGAIN))

    def recv_bytes(self, limit: int, now: float) -> bytes | None:
        """``recv`` of queued bytes as one object (one copy); None when that is not the
        whole answer - nothing queued (EOF, an error, a wait) or an urgent byte in the
        stream - and ``recv_into`` must decide."""
        recvq = self.recvq
        if not recvq.size or self.urg_state or limit <= 0:
            return None
        data = recvq.read_bytes(limit)
        if self.state in _RECEIVING:
            self._maybe_window_update(now)
        return data

    def _read_around_urgent(self, buf: memoryview, peek: bool) -> int:
        """A read while an urgent byte is known (Linux's tcp_recvmsg): it stops just before
        the byte; at the byte, SO_OOBINLINE reads it as data, otherwise it is stepped over.
        Once the read point passes it, the urgent state ends. 0: nothing but the skipped byte."""
        recvq = self.recvq
        offset = self.urg_seq - self._read_seq()
        if offset > 0:
            return recvq.read_into(buf[:offset] if offset < len(buf) else buf, peek)
        if offset < 0 or self.oobinline:
            n = recvq.read_into(buf, peek)
        elif peek:
            scratch = bytearray(min(len(buf), recvq.size - 1) + 1)
            n = recvq.read_into(memoryview(scratch), True) - 1
            buf[:n] = scratch[1 : n + 1]
        else:
            recvq.read_into(memoryview(bytearray(1)))
            n = recvq.read_into(buf) if recvq.size else 0
        if not peek and self._read_seq() > self.urg_seq:
            self.urg_state = URG_NONE
        return n

    def recv_urgent(self, peek: bool) -> int | None:
        """recv(..., MSG_OOB), Linux's tcp_recv_urg: the urgent byte, or None at EOF; EINVAL
        with SO_OOBINLINE or no unread urgent byte; EAGAIN while it is still on its way."""
        urg = self.urg_state
        if self.oobinline or urg in (URG_NONE, URG_READ):
            raise oserror(E.EINVAL)
        if self.state is CLOSED and not self.fin_received:
            raise oserror(E.ENOTCONN)
        if urg == URG_VALID:
            if not peek:
                self.urg_state = URG_READ
                self.stack.touch(self)
            return self.urg_byte
        if self.state is CLOSED or self.shut_rd or self.fin_received:
            return None
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
            if self.rack is not None:
                self.rack.forget_losses()  # resent from snd_una below, in smaller pieces
            self._output(now)
