"""Bridged fd mode: ``fileno()`` is one end of a kernel socket pair carrying the real bytes.

The readiness eventfd (``api/readiness.py``) tells C code *when* a userspace socket is
readable, but C code that does I/O on the number (OpenSSL on a socket fd, ``os.sendfile``,
``os.read(fd, 0)``, a socket handed to a subprocess as its stdin/stdout) needs the bytes
themselves. In bridged mode a connected TCP socket's fd is the application's end of a kernel
TCP connection over 127.0.0.1 (``api/kernel_pair.py``; AF_UNIX where loopback is unusable);
the stack keeps the other end and relays between it and the TCP control block, in order,
with backpressure both ways: bytes leave the TCP receive queue only as fast as the kernel
pair accepts them (so the advertised window closes when the program stops reading), and
bytes are taken from the pair only while the TCP send buffer has room.

What the TCP pair carries besides bytes:
- a reset: when the connection is reset (or times out), the relay first hands over what was
  received, then closes its end abortively (SO_LINGER 0), so the program's end reports
  ECONNRESET to a reader after the queued data and to a writer (then EPIPE), EPIPE after a
  FIN, as the kernel does; the other way, a program that closes with unread data (its kernel
  end sends a RST) aborts the TCP connection, as a kernel socket's close() would;
- urgent data: the relay reads the stack with SO_OOBINLINE and sends the urgent byte alone
  with MSG_OOB, so the program's end has the mark (recv(MSG_OOB), SO_OOBINLINE, SIOCATMARK,
  select's exceptional list); the program's MSG_OOB reaches the relay's end, which finds the
  mark with SIOCATMARK and sends that byte as urgent over TCP.

The Python object's data calls go through the application's end too (so Python and C see
one stream). Closing the Python object closes only its reference: a subprocess holding the
fd keeps the connection, which ends (FIN, or RST with unread data, as ``close()`` does) when
every holder of the application's end has closed it.

Limits (said in docs/architecture.md): listeners keep the readiness eventfd (an accepted
socket of a bridged listener is bridged; UDP has its own bridge, ``api/dgram_bridge.py``);
a connection that times out reaches the program as ECONNRESET, not ETIMEDOUT; TCP-level
ancillary calls are not carried over the pair; on the AF_UNIX fallback there is no urgent data and a reset is ECONNRESET only
for a reader while the Python object is open (else EOF); a socket whose fd was asked for
before it connected gets its bridge at the same number (``dup2``) once connected, which a
kernel epoll that registered the old eventfd does not see (multisock's own poll/epoll do).
"""

from __future__ import annotations

import _socket
import fcntl
import math
import select
import struct
import sys
from typing import TYPE_CHECKING, Any, cast

from multisock.api.kernel_pair import PairRelay, at_number, kernel_pair
from multisock.stack.tcp.config import TcpState

if TYPE_CHECKING:
    from multisock.api.stream import StreamCore

_CHUNK = 65536
_SIOCATMARK = 0x8905  # (linux/sockios.h) the next byte read is the urgent one
_SIOCOUTQNSD = 0x894B  # bytes queued on a TCP socket and not yet sent
_TCP_NOTSENT_LOWAT = getattr(_socket, "TCP_NOTSENT_LOWAT", 25)
_INT = struct.Struct("i")
_ZERO = bytes(_INT.size)
_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER {1, 0}: close() sends a RST
_CLOSED = TcpState.CLOSED


def _kernel_poll() -> Any:
    """The kernel's ``select.poll``, captured at import (before multisock's or gevent's
    patches, which would bring a bridged socket's own readiness back here)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("select"):
        return gevent_monkey.get_original("select", "poll")
    return select.poll


_poll = _kernel_poll()
_POLLIN, _POLLOUT, _POLLPRI = select.POLLIN, select.POLLOUT, select.POLLPRI


def _ready(sock: Any, event: int) -> bool:
    """Is the kernel socket ready for ``event`` (or in error) right now?"""
    poller = _poll()
    poller.register(sock.fileno(), event)
    return bool(poller.poll(0))


def wait_ready(sock: Any, events: int, timeout: float | None) -> bool:
    """Block (no lock held) until the kernel socket is ready for ``events`` or in error;
    False if ``timeout`` seconds pass first."""
    poller = _poll()
    poller.register(sock.fileno(), events)
    ms = -1 if timeout is None else max(0, math.ceil(timeout * 1000))
    return bool(poller.poll(ms))


def _ioctl_int(fd: int, request: int) -> int:
    return int(_INT.unpack(fcntl.ioctl(fd, request, _ZERO))[0])


class Bridge(PairRelay):
    """The relay between one TCP control block and a kernel pair (driver lock held in every
    method but ``__init__``)."""

    __slots__ = ("tcp_pair", "pending", "pending_urgent", "eof_sent", "app_eof", "released",
                 "resetting", "watching_read", "buf", "done")

    def __init__(self, core: StreamCore, fd_number: int | None = None) -> None:
        app, stack_end, tcp_pair = kernel_pair()
        app = at_number(app, fd_number)
        super().__init__(core, app, stack_end)
        self.tcp_pair = tcp_pair  # False: the AF_UNIX fallback (no resets, no urgent data)
        self.pending = b""  # received TCP bytes the pair did not take yet
        self.pending_urgent = False  # ``pending`` is the one urgent byte (sent with MSG_OOB)
        self.eof_sent = False  # the TCP peer's EOF was passed on (SHUT_WR on our end)
        self.app_eof = False  # the program shut its writing side (or every holder closed)
        self.released = False  # the Python object was closed; the fd may live on elsewhere
        self.resetting = False  # the connection died: deliver what is queued, then abort
        self.watching_read = False
        self.buf = bytearray(_CHUNK)
        self.done = False
        tcb: Any = cast(Any, core).tcb  # (StreamCore.tcb is typed where stream.py sets it)
        if tcp_pair:
            # the program's SO_OOBINLINE lives on its end now; the relay reads the urgent byte
            # in the stream to find the mark
            if tcb.oobinline:
                app.setsockopt(_socket.SOL_SOCKET, _socket.SO_OOBINLINE, 1)
            tcb.oobinline = True

    # ------------------------------------------------------------------ relay

    def pump(self) -> None:
        """Move what can move both ways; arrange to be called again when more can."""
        if self.done:
            return
        tcb = self.core.tcb
        if not self.resetting and tcb.error and tcb.state is _CLOSED:
            self.resetting = True  # reset (or timed out) after we passed its FIN on
        self._to_app()
        if self.done:
            return
        if not self.resetting:
            self._from_app()
        if not self.done:
            self._maybe_finish()

    def _to_app(self) -> None:
        tcb = self.core.tcb
        now = self.core.host.touch()
        buf = memoryview(self.buf)
        while True:
            if self.pending and not self._flush():
                return  # (waiting for room, or ended)
            if self.resetting:
                self._abort_app_side()
                return
            if self.eof_sent:
                break
            urgent = self.tcp_pair and self._at_urgent_byte(tcb)
            try:
                n = int(tcb.recv_into(buf[:1] if urgent else buf, now))
            except BlockingIOError:
                break
            except OSError:  # reset or timed out: the queued bytes first, then the reset
                self.resetting = True
                continue
            if n == 0:
                self._shut_app_side()
                break
            self.pending = bytes(buf[:n])
            self.pending_urgent = urgent
        self._watch_write(False)

    @staticmethod
    def _at_urgent_byte(tcb: Any) -> bool:
        """The next byte the relay reads from the stack is the peer's urgent byte."""
        return bool(tcb.urg_state) and bool(tcb.recvq.size) and tcb.urg_seq == tcb._read_seq()

    def _flush(self) -> bool:
        """Hand ``pending`` to the pair; False (watching for room) while some is left."""
        try:
            if self.pending_urgent:
                n = self.stack_end.send(self.pending, _socket.MSG_OOB)
            else:
                n = self.stack_end.send(self.pending)
        except BlockingIOError:
            n = 0
        except OSError:
            # every holder of the program's end is gone: bytes for a closed kernel socket
            # make it reset the connection
            self._end(abort=True)
            return False
        self.pending = self.pending[n:]
        if self.pending:
            self._watch_write(True)
            return False
        return True

    def _shut_app_side(self) -> None:
        self.eof_sent = True
        try:
            self.stack_end.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def _abort_app_side(self) -> None:
        """The connection is gone: once the program's end has every byte received before the
        reset, close ours abortively, so that the program gets the kernel's errors from it.
        Bytes still in our end's send queue (the program's receive window is full) are
        waited for: TCP_NOTSENT_LOWAT makes writability mean "all sent"."""
        stack_end = self.stack_end
        if self.tcp_pair:
            try:
                unsent = _ioctl_int(stack_end.fileno(), _SIOCOUTQNSD)
            except OSError:
                unsent = 0
            if unsent:
                try:
                    stack_end.setsockopt(_socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, 1)
                    self._watch_write(True)
                    return
                except OSError:
                    pass  # (no way to wait for them: the reset goes now)
            try:
                stack_end.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, _ABORT)
            except OSError:
                pass
        elif not self.released:
            # AF_UNIX reports ECONNRESET to the reader when the closing end leaves unread
            # bytes: leave one (only possible while we still hold the program's end)
            try:
                self.app.send(b"\0", _socket.MSG_DONTWAIT)
            except OSError:
                pass  # full already (so unread bytes there are), or shut
        self._end(abort=False)

    def _from_app(self) -> None:
        core = self.core
        tcb = core.tcb
        stack_end = self.stack_end
        while not self.app_eof:
            if not tcb.writable:
                self._watch_read(False)  # resumed by the stack's change callback
                return
            space = int(tcb.sndbuf) - int(tcb.sndq.size)
            if space <= 0:
                self._watch_read(False)
                return
            urgent = False
            try:
                if self.tcp_pair and _ioctl_int(stack_end.fileno(), _SIOCATMARK):
                    urgent = True  # the program sent this byte with MSG_OOB
                data = stack_end.recv(1 if urgent else min(space, _CHUNK))
            except BlockingIOError:
                self._watch_read(True)
                return
            except ConnectionResetError:
                # the program closed with unread data (or SO_LINGER 0): its kernel end sent
                # a RST, and a kernel socket's close() would have reset the connection too
                self._end(abort=True)
                return
            except OSError:
                data = b""
            if not data:
                self.app_eof = True
                self._watch_read(False)
                if not self.released:
                    try:
                        tcb.shutdown(_socket.SHUT_WR, core.host.touch())
                    except OSError:
                        pass
                return
            try:
                tcb.send(data, core.host.touch(), urgent)
            except OSError:
                # the connection is gone: the bytes are lost, as in the kernel after a reset;
                # the program's end learns it through the pair
                self.resetting = True
                self._watch_read(False)
                self._to_app()
                return

    def _watch_read(self, on: bool) -> None:
        if on != self.watching_read:
            self.watching_read = on
            driver = self.core.driver
            fd = self.stack_end.fileno()
            if on:
                driver.add_reader(fd, self.pump)
            else:
                driver.remove_reader(fd)

    # ---------------------------------------------------------------- closing

    def release(self) -> None:
        """The Python object closed: drop our reference to the program's end. The connection
        lives while another holder (a subprocess) keeps the fd open."""
        if self.released:
            return
        self.released = True
        try:
            self.app.close()
        except OSError:
            pass
        self.pump()

    def _maybe_finish(self) -> None:
        """Once the Python object is closed and the program's side has shut its writing
        (every holder closed), close the TCP socket as close() would, and the pair."""
        if self.released and self.app_eof:
            self._end(abort=False)

    def _end(self, abort: bool) -> None:
        """Close the TCP socket (``abort``: with a RST) and our end of the pair."""
        self.done = True
        self._watch_read(False)
        self._watch_write(False)
        core = self.core
        tcb = core.tcb
        tcb.on_change = None
        if abort:
            tcb.abort(core.host.touch())
        else:
            tcb.close(core.host.touch())
        try:
            self.stack_end.close()
        except OSError:
            pass
