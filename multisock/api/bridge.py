"""Bridged fd mode: ``fileno()`` is one end of a kernel socketpair carrying the real bytes.

The readiness eventfd (``api/readiness.py``) tells C code *when* a userspace socket is
readable, but C code that does I/O on the number (OpenSSL on a socket fd, ``os.sendfile``,
``os.read(fd, 0)``, a socket handed to a subprocess as its stdin/stdout) needs the bytes
themselves. In bridged mode a connected TCP socket's fd is the application's end of an
AF_UNIX stream socketpair; the stack keeps the other end and relays between it and the TCP
control block, in order, with backpressure both ways: bytes leave the TCP receive queue only
as fast as the kernel pair accepts them (so the advertised window closes when the program
stops reading), and bytes are taken from the pair only while the TCP send buffer has room.

The Python object's data calls go through the application's end too (so Python and C see
one stream). Closing the Python object closes only its reference: a subprocess holding the
fd keeps the connection, which ends (FIN, or RST with unread data, as ``close()`` does) when
every holder of the application's end has closed it.

Limits (said in ``--help`` and docs/activation.md): TCP only (UDP and listeners keep the
readiness eventfd); MSG_OOB and TCP-level ancillary calls are not carried over the pair; a
reset reaches the program as EOF, not ECONNRESET; a socket whose fd was asked for before it
connected gets its bridge at the same number (``dup2``) once connected, which an epoll that
registered the old eventfd does not see.
"""

from __future__ import annotations

import _socket
import os
import select
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multisock.api.stream import StreamCore

_CHUNK = 65536


def _kernel_poll() -> Any:
    """The kernel's ``select.poll``, captured at import (before multisock's or gevent's
    patches, which would bring a bridged socket's own readiness back here)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("select"):
        return gevent_monkey.get_original("select", "poll")
    return select.poll


_poll = _kernel_poll()
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT


def _ready(sock: Any, event: int) -> bool:
    """Is the kernel socket ready for ``event`` (or in error) right now?"""
    poller = _poll()
    poller.register(sock.fileno(), event)
    return bool(poller.poll(0))


class Bridge:
    """The relay between one TCP control block and a socketpair (driver lock held in every
    method but ``__init__``)."""

    __slots__ = ("core", "app", "stack_end", "pending", "eof_sent", "app_eof", "released",
                 "watching_read", "watching_write", "buf", "done")

    def __init__(self, core: StreamCore, fd_number: int | None = None) -> None:
        app, stack_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        if fd_number is not None:
            # keep the number the program already has (its readiness eventfd until now)
            os.dup2(app.fileno(), fd_number, inheritable=False)
            app.close()
            app = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd_number)
        stack_end.setblocking(False)
        self.core = core
        self.app: Any = app  # the program's end: its fileno() is the socket's
        self.stack_end: Any = stack_end
        self.pending = b""  # received TCP bytes the pair did not take yet
        self.eof_sent = False  # the TCP peer's EOF was passed on (SHUT_WR on our end)
        self.app_eof = False  # the program shut its writing side (or every holder closed)
        self.released = False  # the Python object was closed; the fd may live on elsewhere
        self.watching_read = False
        self.watching_write = False
        self.buf = bytearray(_CHUNK)
        self.done = False

    def fileno(self) -> int:
        return int(self.app.fileno())

    # ------------------------------------------------------------------ relay

    def pump(self) -> None:
        """Move what can move both ways; arrange to be called again when more can."""
        if self.done:
            return
        self._to_app()
        self._from_app()
        self._maybe_finish()

    def _to_app(self) -> None:
        tcb = self.core.tcb
        now = self.core.host.touch()
        while True:
            if self.pending:
                try:
                    n = self.stack_end.send(self.pending)
                except BlockingIOError:
                    n = 0
                except OSError:  # every holder of the program's end is gone
                    self.pending = b""
                    self.eof_sent = True
                    break
                self.pending = self.pending[n:]
                if self.pending:
                    self._watch_write(True)
                    return
            if self.eof_sent:
                break
            try:
                n = int(tcb.recv_into(memoryview(self.buf), now))
            except BlockingIOError:
                break
            except OSError:
                n = 0  # a reset: the program sees EOF (see the module's limits)
            if n == 0:
                self._shut_app_side()
                break
            self.pending = bytes(self.buf[:n])
        self._watch_write(False)

    def _shut_app_side(self) -> None:
        self.eof_sent = True
        try:
            self.stack_end.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def _from_app(self) -> None:
        core = self.core
        tcb = core.tcb
        while not self.app_eof:
            if not tcb.writable:
                self._watch_read(False)  # resumed by the stack's change callback
                return
            space = int(tcb.sndbuf) - int(tcb.sndq.size)
            if space <= 0:
                self._watch_read(False)
                return
            try:
                data = self.stack_end.recv(min(space, _CHUNK))
            except BlockingIOError:
                self._watch_read(True)
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
                tcb.send(data, core.host.touch())
            except OSError:
                self.app_eof = True  # the connection is gone: the bytes are lost, as in
                self._watch_read(False)  # the kernel after a reset
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

    def _watch_write(self, on: bool) -> None:
        if on != self.watching_write:
            self.watching_write = on
            driver = self.core.driver
            fd = self.stack_end.fileno()
            if on:
                driver.add_writer(fd, self.pump)
            else:
                driver.remove_writer(fd)

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
        if not (self.released and self.app_eof):
            return
        self.done = True
        self._watch_read(False)
        self._watch_write(False)
        core = self.core
        tcb = core.tcb
        tcb.on_change = None
        tcb.close(core.host.touch())
        try:
            self.stack_end.close()
        except OSError:
            pass
