"""The kernel socket pair under a bridged socket: TCP over 127.0.0.1, AF_UNIX as a fallback.

Bridged fd mode (``api/bridge.py``) hands the program one end of a connected kernel pair. A
TCP pair is what makes that end behave like the kernel TCP socket the program expects in the
two places an AF_UNIX pair cannot: a reset (an abortive close of the relay's end gives the
reader ECONNRESET after the data already queued, and a writer ECONNRESET then EPIPE, with
EPIPE after a FIN, exactly as ``tcp_reset`` maps them) and urgent data (``MSG_OOB``,
``SO_OOBINLINE``, ``SIOCATMARK``, select's exceptional list all work on the program's end and
the relay sees the mark on its own). C code calling ``getsockname``/``getsockopt(IPPROTO_TCP,
...)`` on the fd also gets answers a TCP socket gives. The price is paid once per connection
(a throwaway listener: seven more syscalls than ``socketpair``) and in the per-byte cost of
loopback TCP over AF_UNIX, measured by the bench's ``bridged`` rows.

Where loopback is not usable (a network namespace whose ``lo`` is down, a firewall on it),
the pair falls back to AF_UNIX, with the AF_UNIX limits said in ``bridge.py``.
"""

from __future__ import annotations

import _socket
import os
from abc import ABC, abstractmethod
from typing import Any

# the relay's end keeps this much in flight to the program, each way (the program's end
# autotunes as any socket does): bounded buffering, so that backpressure still reaches the
# TCP peer soon after the program stops reading
STACK_END_BUFFER = 256 * 1024
_STRAYS = 8  # connections from elsewhere that raced ours to the throwaway port


def _loopback_pair() -> tuple[Any, Any]:
    """(program's end, relay's end), connected over 127.0.0.1. The listener lives only for
    the handshake, and the accepted connection is checked to be ours (another local process
    could connect to the port in between)."""
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5.0)  # the connect below completes the handshake itself
        app = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            app.connect(listener.getsockname())
            ours = app.getsockname()
            for _ in range(_STRAYS):
                fd, peer = listener._accept()  # type: ignore[attr-defined]
                stack_end = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
                if peer == ours:
                    break
                stack_end.close()
            else:
                raise ConnectionError("loopback pair: our connection was not accepted")
        except BaseException:
            app.close()
            raise
    finally:
        listener.close()
    for sock in (app, stack_end):
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)  # the relay adds no delay
    stack_end.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, STACK_END_BUFFER)
    stack_end.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, STACK_END_BUFFER)
    stack_end.setsockopt(_socket.SOL_SOCKET, _socket.SO_OOBINLINE, 1)  # the relay finds the mark
    return app, stack_end


def kernel_pair() -> tuple[Any, Any, bool]:
    """(program's end, relay's end, is it TCP): a loopback TCP pair, or AF_UNIX when loopback
    refuses (the caller then does without resets and urgent data)."""
    try:
        app, stack_end = _loopback_pair()
        return app, stack_end, True
    except OSError:
        app, stack_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        return app, stack_end, False


def at_number(app: Any, fd_number: int | None) -> Any:
    """The program's end of a new pair under ``fd_number`` when the program already holds
    that number (the readiness eventfd it was given before the bridge existed), else as is."""
    if fd_number is None:
        return app
    os.dup2(app.fileno(), fd_number, inheritable=False)
    family, kind = app.family, app.type
    app.close()
    return _socket.socket(family, kind, 0, fd_number)


class PairRelay(ABC):
    """What the stream and datagram bridges share: the core they relay for, the program's
    end of the pair (whose number is the socket's fd), the relay's own end, and the write
    watch that calls ``pump`` again when the relay's end can take more (driver lock held)."""

    __slots__ = ("core", "app", "stack_end", "watching_write")

    def __init__(self, core: Any, app: Any, stack_end: Any) -> None:
        stack_end.setblocking(False)
        self.core = core
        self.app: Any = app  # the program's end: its fileno() is the socket's
        self.stack_end: Any = stack_end
        self.watching_write = False

    def fileno(self) -> int:
        return int(self.app.fileno())

    @abstractmethod
    def pump(self) -> None:
        """Move what can move both ways; arrange to be called again when more can."""

    def _watch_write(self, on: bool) -> None:
        if on != self.watching_write:
            self.watching_write = on
            driver = self.core.driver
            fd = self.stack_end.fileno()
            if on:
                driver.add_writer(fd, self.pump)
            else:
                driver.remove_writer(fd)
