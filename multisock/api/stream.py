"""TCP sockets over the userspace stack: the stdlib's blocking semantics on a sans-IO engine."""

from __future__ import annotations

import _socket
import errno
import functools
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from multisock.api import ancillary
from multisock.api import options as O
from multisock.api.bridge import _POLLIN, _POLLOUT, _POLLPRI, Bridge, _ready, wait_ready
from multisock.api.core import (
    MSG_DONTWAIT,
    MSG_OOB,
    MSG_PEEK,
    MSG_WAITALL,
    WAIT_READ,
    WAIT_WRITE,
    Core,
)
from multisock.api.errors import bad_fd, oserror, timed_out, would_block
from multisock.stack.addresses import AF_INET
from multisock.stack.tcp.block import URG_NOTYET
from multisock.stack.tcp.config import TcpState
from multisock.stack.tcp.congestion import AVAILABLE as CONGESTION_ALGORITHMS
from multisock.stack.tcp.connection import TcpSocket

# (Final, as the flags in api/core.py: C statics in the compiled build)
_LISTEN: Final = TcpState.LISTEN
_SYN_SENT: Final = TcpState.SYN_SENT
_CLOSED: Final = TcpState.CLOSED
_SYN_RECEIVED: Final = TcpState.SYN_RECEIVED

if TYPE_CHECKING:
    from multisock.net.host import Host

SOMAXCONN = min(_socket.SOMAXCONN, 128)
# multisock's own socket option: the fd mode of one socket (an accepted one inherits its
# listener's). FD_READINESS: fileno() is an eventfd mirroring readability (the default);
# FD_BRIDGED: a connected socket's fileno() carries the bytes (api/bridge.py)
SOL_MULTISOCK: Final = 0x4D53
SO_FD_MODE: Final = 1
FD_READINESS: Final = 0
FD_BRIDGED: Final = 1
_default_fd_mode = FD_READINESS


def set_default_fd_mode(mode: str) -> None:
    """``run --fd-mode`` / ``MULTISOCK_FD_MODE``: "readiness" or "bridged" for new sockets."""
    global _default_fd_mode
    _default_fd_mode = FD_BRIDGED if mode == "bridged" else FD_READINESS
TCP_CONGESTION = getattr(_socket, "TCP_CONGESTION", 13)
_TCP_INFO = struct.Struct("=8B24I4Q")


# The wait predicates: made by module functions, not written as closures in the methods
# (written so when the cores were non-native classes, in which mypyc cannot compile a
# closure; a small function making a lambda is as cheap as a closure in a native method).

def _io_ready(core: StreamCore, tcb: TcpSocket, read: bool, write: bool) -> Callable[[], bool]:
    return lambda: core.closed or (read and bool(tcb.readable)) or (write and bool(tcb.writable))


def _handshake_over(tcb: TcpSocket) -> Callable[[], bool]:
    return lambda: tcb.state is not _SYN_SENT or bool(tcb.pending_error)


def _send_ready(core: StreamCore, tcb: TcpSocket, flags: int, limit: Any) -> Callable[[], bool]:
    # send's test is any free byte (a non-blocking send takes what fits); once blocked, the
    # stack wakes the sender when the socket is writable (poll's 2/3 rule)
    return lambda: bool(tcb.can_queue) or core.closed or core._never_connected(flags, limit)


def _recv_ready(core: StreamCore, tcb: TcpSocket, flags: int, limit: Any) -> Callable[[], bool]:
    return lambda: bool(tcb.readable) or core.closed or core._never_connected(flags, limit)


def _readable_or_closed(core: StreamCore, tcb: TcpSocket) -> Callable[[], bool]:
    return lambda: bool(tcb.readable) or core.closed


def _urgent_or_closed(core: StreamCore, tcb: TcpSocket) -> Callable[[], bool]:
    return lambda: tcb.urg_state != URG_NOTYET or core.closed


class _PendingAccept:
    """accept()'s wait predicate, ``ready``: takes a queued connection into ``child``."""

    __slots__ = ("core", "tcb", "child")

    def __init__(self, core: StreamCore, tcb: TcpSocket) -> None:
        self.core = core
        self.tcb = tcb
        self.child: Any = None

    def ready(self) -> bool:
        if self.core.closed:
            return True
        if self.child is None:
            self.child = self.tcb.accept()
        return self.child is not None


def _info_us(info: dict[str, Any], key: str) -> int:
    return int(float(info.get(key, 0) or 0) * 1e6) & 0xFFFFFFFF


def _info_u32(info: dict[str, Any], key: str) -> int:
    return int(info.get(key, 0) or 0) & 0xFFFFFFFF


class StreamCore(Core):
    """SOCK_STREAM over the host's TCP engine (a ``TcpSocket`` control block)."""

    def __init__(
        self, host: Host, family: int, type: int, proto: int, tcb: Any = None
    ) -> None:
        super().__init__(host, family, type, proto)
        self.tcb: TcpSocket = tcb if tcb is not None else host.ip.tcp.socket(family)
        self.connecting = False
        self.fd_mode = _default_fd_mode
        self._follow(self.tcb)

    def _follow(self, tcb: TcpSocket) -> None:
        """Be told of the control block's changes: by ``changed`` below once a bridge may be
        involved (bridged fd mode), by the base class's directly while none can be (a frame
        less on every segment that changes readiness)."""
        if self.fd_mode == FD_BRIDGED or self.bridge is not None:
            tcb.on_change = self.changed
        else:
            tcb.on_change = super().changed

    # ------------------------------------------------------------ bridged fd mode

    def _connected_for_bridge(self) -> bool:
        tcb = self.tcb
        return bool(tcb.was_connected) and tcb.state not in (_LISTEN, _SYN_SENT, _SYN_RECEIVED,
                                                              _CLOSED)

    def fileno(self) -> int:
        bridge = self.bridge
        if bridge is not None:
            return -1 if self.closed else bridge.fileno()
        if self.fd_mode == FD_BRIDGED and not self.closed:
            with self.driver.operation():
                if self.bridge is None and self._connected_for_bridge():
                    self._start_bridge()
                if self.bridge is not None:
                    return self.bridge.fileno()
        return super().fileno()

    def _start_bridge(self) -> None:
        """Give the connection its socketpair (lock held); at the readiness fd's number if
        the program has that number already."""
        bridge = self.bridge = self._new_bridge(Bridge)
        bridge.pump()

    def changed(self) -> None:
        super().changed()
        bridge = self.bridge
        if bridge is not None:
            self.driver.after_drain(bridge.pump)
        elif self.fd_mode == FD_BRIDGED and self._fd is not None and self._connected_for_bridge():
            self.driver.after_drain(self._bridge_late)

    def _bridge_late(self) -> None:
        """The fd was asked for before the connection was up (a non-blocking connect)."""
        if self.bridge is None and self._fd is not None and not self.closed:
            self._start_bridge()

    def _app(self) -> Any:
        """The program's end of the bridge, with this socket's timeout (data calls go through
        it once bridged, so that Python and C code share one stream)."""
        assert self.bridge is not None
        app = self.bridge.app
        app.settimeout(self.timeout)
        return app

    def readable(self) -> bool:
        if self.bridge is not None:
            return self.closed or _ready(self.bridge.app, _POLLIN)
        return bool(self.tcb.readable) or self.closed or self.held_above

    def wait_io(self, read: bool, write: bool, timeout: float | None) -> bool:
        """Block until the transport itself is readable (``read``) or writable (``write``);
        False if ``timeout`` seconds pass first. For a layer above (TLS) that keeps its own
        deadline over several transport calls; bytes it holds itself do not count."""
        bridge = self.bridge
        if bridge is not None:  # the bytes are in the kernel pair, not the control block
            if self.closed:
                return True
            return wait_ready(bridge.app, (_POLLIN if read else 0) | (_POLLOUT if write else 0),
                              timeout)
        ready = _io_ready(self, self.tcb, read, write)
        with self.driver.operation():
            self.host.touch()
            try:
                self.wait(ready, 0, timeout)
            except (TimeoutError, BlockingIOError):
                return False
        return True

    def writable(self) -> bool:
        if self.bridge is not None:
            return self.closed or _ready(self.bridge.app, _POLLOUT)
        return bool(self.tcb.writable) or self.closed

    def exceptional(self) -> bool:
        if self.bridge is not None:  # urgent data is marked on the program's end
            return not self.closed and _ready(self.bridge.app, _POLLPRI)
        return bool(self.tcb.exceptional) and not self.closed

    # ------------------------------------------------------------ connection

    def bind(self, address: Any) -> None:
        self.check_open()
        addr, port = self.parse(address, "bind")
        with self.driver.operation():
            self.host.touch()
            self.tcb.bind(addr, port)
            self.bound_to = (addr, port)

    def listen(self, backlog: int = SOMAXCONN) -> None:
        self.check_open()
        if not isinstance(backlog, int):
            raise TypeError(f"'{type(backlog).__name__}' object cannot be interpreted as an integer")
        backlog = max(0, min(backlog, _socket.SOMAXCONN))
        with self.driver.operation():
            now = self.host.touch()
            self.tcb.listen(backlog, now)

    def accept(self) -> tuple[StreamCore, tuple[Any, ...]]:
        self.check_open()
        with self.driver.operation():
            self.host.touch()
            tcb = self.tcb
            if tcb.state is not _LISTEN:
                raise oserror(errno.EINVAL)
            child = tcb.accept()  # (no wait machinery when a connection is queued already)
            if child is None:
                pending = _PendingAccept(self, tcb)
                self.wait(pending.ready, 0, "default", WAIT_READ)
                child = pending.child
                if child is None:
                    raise oserror(errno.EBADF)
            self.sync_fd()
            core = StreamCore(self.host, self.family, self.type, self.proto, tcb=child)
            if core.fd_mode != self.fd_mode:
                core.fd_mode = self.fd_mode
                core._follow(child)
            remote: Any = child.remote
            return core, self.format(*remote)

    def _accept(self) -> tuple[int, tuple[Any, ...]]:
        """``_socket.socket._accept``'s shape: (fd, address), the fd being the new core's
        readiness fd, registered so that ``socket(fileno=fd)`` adopts the core. gevent's
        StreamServer unwraps its listener to this object and calls exactly this."""
        core, address = self.accept()
        return core.fileno(), address

    def connect(self, address: Any) -> None:
        self.check_open()
        addr, port = self.parse(address, "connect")
        with self.driver.operation():
            now = self.host.touch()
            tcb = self.tcb
            state = tcb.state.name if self.connecting else ""
            if self.connecting:
                # Linux's second connect() after a non-blocking one (or one that timed out)
                if state in ("SYN_SENT", "SYN_RECEIVED"):
                    raise oserror(errno.EALREADY)
                self.connecting = False
                if state == "CLOSED":
                    # it failed: report why (or ECONNABORTED if SO_ERROR took it) and let
                    # the next connect() start afresh, as Linux disconnects the socket
                    err = tcb.take_error() or errno.ECONNABORTED
                    self._fresh_tcb()
                    raise oserror(err)
                return  # it succeeded: 0 now, EISCONN from the next call
            tcb.connect(addr, port, now)
            if self.timeout == 0.0:
                self.connecting = True
                raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
            try:
                if tcb.state is _SYN_SENT and not tcb.pending_error:
                    self.wait(_handshake_over(tcb), 0, "default", WAIT_WRITE)
                    now = self.host.touch()  # the wait released the lock: time moved on
            except TimeoutError:
                self.connecting = True
                raise
            err = tcb.take_error()
            if not err and tcb.state is _CLOSED:
                err = errno.ECONNREFUSED
            if self.timeout is not None:
                # CPython connects a socket with a timeout as a non-blocking one: connect(2)
                # says EINPROGRESS, it polls, then reads SO_ERROR. Linux's socket is still
                # "connecting" after that, and the next connect() settles it: 0 after a
                # success, ECONNABORTED after a failure (SO_ERROR took the error), which
                # also returns it to "unconnected" so that a third connect() starts afresh
                self.connecting = True
                if err:
                    raise oserror(err)
            elif err:
                self._fresh_tcb()
                raise oserror(err)
        self.driver.cooperate()

    # TcpSocket attributes a failed connect() must not lose (socket options, bind)
    _CARRIED = ("reuseaddr", "reuseport", "keepalive", "nodelay", "keepidle", "keepintvl",
                "keepcnt", "user_timeout", "quickack", "maxseg", "rcvbuf", "sndbuf", "linger", "oobinline",
                "ttl", "tos", "v6only", "congestion")
    bound_to: tuple[bytes, int] | None = None  # what bind() was given (set only if called)

    def _fresh_tcb(self) -> None:
        """After a failed connection attempt Linux returns the socket to "unconnected" (it
        may connect again, keeping its options and explicit bind): a new control block with
        the old one's settings plays that part (lock held)."""
        old = self.tcb
        new = self.host.ip.tcp.socket(self.family)
        for name in self._CARRIED:
            try:
                setattr(new, name, getattr(old, name))
            except (AttributeError, KeyError, ValueError):
                pass
        if self.bound_to is not None:
            try:
                new.bind(*self.bound_to)
            except OSError:
                pass
        old.on_change = None
        self._follow(new)
        self.tcb = new

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except TimeoutError:
            return errno.EWOULDBLOCK
        except (_socket.gaierror, _socket.herror):
            raise  # CPython resolves before connect(2): name errors are raised, not returned
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def getsockname(self) -> tuple[Any, ...]:
        self.check_open()
        local = self.tcb.local
        if local is None:
            return self.format(bytes(4) if self.family == AF_INET else bytes(16), 0)
        return self.format(*local)

    def getpeername(self) -> tuple[Any, ...]:
        self.check_open()
        remote = self.tcb.remote
        state = self.tcb.state.name
        if remote is None or state in ("CLOSED", "LISTEN", "SYN_SENT"):
            raise oserror(errno.ENOTCONN)
        return self.format(*remote)

    # ------------------------------------------------------------------- data

    def _buffer(self, data: Any) -> memoryview:
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.ndim != 1 or view.itemsize != 1 or not view.contiguous:
            view = memoryview(view.tobytes())
        return view

    def send(self, data: Any, flags: int = 0) -> int:
        self.check_open()
        if self.bridge is not None:
            return int(self._app().send(data, flags))
        view = self._buffer(data)
        with self.driver.operation():
            now = self.host.touch()
            tcb = self.tcb
            if not len(view):
                tcb.send(view, now)
                return 0
            limit = self._send_timeout()
            self.wait(_send_ready(self, tcb, flags, limit), flags, limit, WAIT_WRITE)
            now = self.host.touch()  # the wait released the lock: time moved on
            self.check_open()
            n = int(tcb.send(view, now, bool(flags & MSG_OOB)))
            if self._wfd is not None:
                self._sync_wfd()
            if n == 0:
                raise would_block()
            return n

    def _sync_wfd(self) -> None:
        """A send took room: bring the write-readiness eventfd a forked child watches
        (api/forking.py) up to date. The stack signals room appearing, never room taken, so
        without this the child's select saw a socket the parent had filled as writable."""
        assert self._wfd is not None
        self._wfd.update(self.writable())

    def _send_timeout(self) -> Any:
        return self.sndtimeo if self.sndtimeo is not None and self.timeout is None else "default"

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self.closed:  # (check_open(), inlined here and in _recv_into: every call passes)
            raise bad_fd()
        if self.bridge is not None:
            self._app().sendall(data, flags)
            return
        view = data if type(data) is bytes else self._buffer(data)
        total = len(view)
        sent = 0
        with self.driver.operation():
            tcb = self.tcb
            deadline = None if not self.timeout else self.driver.now() + self.timeout
            while sent < total:
                now = self.host.touch()
                remaining: Any = "default"
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        raise timed_out()
                if not (tcb.can_queue or self.closed):  # (the common case needs no wait)
                    self.wait(_send_ready(self, tcb, flags, remaining), flags, remaining,
                              WAIT_WRITE)
                    now = self.host.touch()  # the wait released the lock: time moved on
                self.check_open()
                n = int(tcb.send(memoryview(view)[sent:] if sent else view, now,
                                 bool(flags & MSG_OOB)))
                if self._wfd is not None:
                    self._sync_wfd()
                if n == 0 and self.timeout == 0.0:
                    raise would_block()
                sent += n
                if sent < total:
                    self.driver.drain()  # (the last one is the operation's own, on exit)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """Linux ignores the address on a stream socket: it is a plain send (once it parses)."""
        flags = 0 if address is None else flags_or_address
        self.parse(flags_or_address if address is None else address, "sendto")
        return self.send(data, flags)

    def sendmsg(
        self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None
    ) -> int:
        data, cmsgs, flags = ancillary.sendmsg_args(buffers, ancdata, flags)
        if address is not None:
            self.parse(address, "sendmsg")  # CPython parses it; Linux then ignores it
        ancillary.check_stream_cmsgs(cmsgs)
        return self.send(data, flags)

    def _recv_into(self, view: memoryview, flags: int) -> int:
        """Receive into ``view`` (lock not held); honours PEEK, DONTWAIT and WAITALL."""
        if self.closed:
            raise bad_fd()
        if self.bridge is not None:
            return int(self._app().recv_into(view, len(view), flags))
        if flags & MSG_OOB:
            return self._recv_urgent(view, flags)
        want = len(view)
        if want == 0:
            return 0
        with self.driver.operation():
            now = self.host.touch()
            if self._fd is not None:
                self.driver.after_drain(self.sync_fd)  # what we consume may empty the queue
            tcb = self.tcb
            peek = bool(flags & MSG_PEEK)
            got = 0
            limit = self._recv_timeout()
            while True:
                try:
                    if not (tcb.readable or self.closed):  # (no wait when data is there)
                        self.wait_to_read(_recv_ready(self, tcb, flags, limit), flags, limit)
                        now = self.host.touch()  # the wait released the lock: time moved on
                except (BlockingIOError, TimeoutError):
                    if got:
                        return got
                    raise
                if self.closed:
                    raise bad_fd()
                try:
                    n = int(tcb.recv_into(view[got:] if got else view, now, peek))
                except BlockingIOError:
                    n = -1
                if n == 0:
                    return got
                if n > 0:
                    got += n
                    if not (flags & MSG_WAITALL) or got >= want or peek:
                        return got
                now = self.host.touch()
                self.driver.drain()

    def _recv_urgent(self, view: memoryview, flags: int) -> int:
        """recv(..., MSG_OOB): the one urgent byte. Linux never waits for it (EINVAL with none,
        EAGAIN while it is on its way); CPython, on a socket with a timeout, first waits for
        the socket to be readable and retries EAGAIN until the deadline - so do we."""
        tcb = self.tcb
        with self.driver.operation():
            timeout = self.timeout
            deadline = None if not timeout else self.driver.now() + timeout
            while True:
                self.host.touch()
                if deadline is not None:
                    self.wait(_readable_or_closed(self, tcb), 0, deadline - self.driver.now())
                    self.check_open()
                try:
                    byte = tcb.recv_urgent(bool(flags & MSG_PEEK))
                    break
                except BlockingIOError:
                    if deadline is None:
                        raise
                    self.wait(_urgent_or_closed(self, tcb), 0, deadline - self.driver.now())
            if byte is None or not len(view):
                return 0
            view[0] = byte
            return 1

    def _never_connected(self, flags: int, limit: Any) -> bool:
        """Linux's recv (ENOTCONN) and send (EPIPE) fail at once on a never-connected socket
        or a listener (the engine raises those) instead of waiting or saying EAGAIN. With a
        timeout, CPython first polls: a never-connected socket reports POLLHUP and goes on to
        the error, but a listener waits for POLLIN (a connection) or POLLOUT (never)."""
        state = self.tcb.state  # (compared by identity: Enum's .name is a slow descriptor)
        if state is _CLOSED:
            return not self.tcb.was_connected
        if state is _LISTEN:
            if limit == "default":
                limit = self.timeout
            return limit is None or limit == 0.0 or bool(flags & MSG_DONTWAIT)
        return False

    def _recv_timeout(self) -> Any:
        return self.rcvtimeo if self.rcvtimeo is not None and self.timeout is None else "default"

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if not flags and self.bridge is None and not self.closed:
            with self.driver.operation():
                tcb = self.tcb
                if tcb.readable:  # bytes queued: take them as they are (no scratch buffer)
                    data = tcb.recv_bytes(bufsize, self.host.touch())
                    if data is not None:
                        if self._fd is not None:
                            self.driver.after_drain(self.sync_fd)  # (as _recv_into does)
                        return data
        buf = bytearray(bufsize)
        # the view is released on the way out whatever still names it (a would-block retry's
        # traceback kept it alive under hypercorn: truncating the bytearray then failed with
        # BufferError "existing exports"); one copy either way
        with memoryview(buf) as view:
            n = self._recv_into(view, flags)
            return bytes(view[:n])

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        return self._recv_into(view[: nbytes or len(view)], flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self.recv_into(buffer, nbytes, flags), None

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, Any]:
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        return self.recv(bufsize, flags), [], 0, None

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> tuple[int, list[Any], int, Any]:
        total = 0
        for buf in buffers:
            view = memoryview(buf).cast("B")
            n = self._recv_into(view, flags if total == 0 else flags | MSG_DONTWAIT) if len(view) else 0
            total += n
            if n < len(view):
                break
        return total, [], 0, None

    # ---------------------------------------------------------------- closing

    def shutdown(self, how: int) -> None:
        self.check_open()
        if how not in (0, 1, 2):
            raise oserror(errno.EINVAL)
        if self.bridge is not None:
            self.bridge.app.shutdown(how)  # the relay passes SHUT_WR on as a FIN
            return
        with self.driver.operation():
            now = self.host.touch()
            self.tcb.shutdown(how, now)
            if self._cond is not None:
                self._cond.notify_all()

    def close_protocol(self) -> None:
        bridge = self.bridge
        if bridge is not None:
            from multisock.api.core import cores_by_fd

            cores_by_fd.pop(bridge.fileno(), None)
            bridge.release()  # the connection ends when every holder of the fd has closed it
            return
        now = self.host.touch()
        tcb = self.tcb
        linger = tcb.linger
        if not linger:
            tcb.on_change = None
            tcb.close(now)
            return
        tcb.close(now)  # (on_change kept: the linger wait is woken by the FIN's ACK)
        try:
            self._linger(tcb, linger)
        finally:
            tcb.on_change = None

    def _linger(self, tcb: Any, seconds: float) -> None:
        """SO_LINGER {1, n>0}: close() waits (lock held) until our data and FIN are
        acknowledged or ``n`` seconds pass, blocking even on a non-blocking socket, as
        Linux's inet_release does. Measured on the kernel: at the deadline close() just
        returns and the connection goes on orphaned (no RST; the peer still gets every
        byte and EOF), which is what the stack does with a closed block anyway."""
        driver = self.driver
        deadline = driver.now() + seconds
        cond = self.cond
        driver.drain()
        while tcb.lingering:
            remaining = deadline - driver.now()
            if remaining <= 0:
                return
            cond.wait(remaining)
            driver.drain()

    # ---------------------------------------------------------------- options

    _SOCKET_ATTRS = {
        _socket.SO_REUSEADDR: "reuseaddr",
        _socket.SO_REUSEPORT: "reuseport",
        _socket.SO_KEEPALIVE: "keepalive",
    }
    _TCP_ATTRS = {
        _socket.TCP_NODELAY: "nodelay",
        _socket.TCP_KEEPIDLE: "keepidle",
        _socket.TCP_KEEPINTVL: "keepintvl",
        _socket.TCP_KEEPCNT: "keepcnt",
        _socket.TCP_USER_TIMEOUT: "user_timeout",
        _socket.TCP_QUICKACK: "quickack",
        _socket.TCP_MAXSEG: "maxseg",
    }

    # options that live on a bridged socket's kernel end (urgent data and errors go through
    # the pair: api/bridge.py)
    _ON_BRIDGE = frozenset({(O.SOL_SOCKET, _socket.SO_OOBINLINE), (O.SOL_SOCKET, _socket.SO_ERROR)})

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self.check_open()
        bridge = self.bridge
        if bridge is not None and (level, option) in self._ON_BRIDGE and bridge.tcp_pair:
            bridge.app.setsockopt(level, option, value)
            return
        tcb = self.tcb
        with self.driver.operation():
            self.host.touch()
            if level == SOL_MULTISOCK and option == SO_FD_MODE:
                mode = O.as_int(value)
                if mode not in (FD_READINESS, FD_BRIDGED):
                    raise oserror(errno.EINVAL)
                self.fd_mode = mode  # (a bridge already made stays)
                self._follow(tcb)
            elif level == O.SOL_SOCKET:
                if option in self._SOCKET_ATTRS:
                    setattr(tcb, self._SOCKET_ATTRS[option], O.as_bool(value))
                elif option == _socket.SO_RCVBUF:
                    tcb.rcvbuf = O.buf_size(value, O.MIN_RCVBUF)
                elif option == _socket.SO_SNDBUF:
                    tcb.set_sndbuf(O.buf_size(value, O.MIN_SNDBUF))
                elif option == _socket.SO_LINGER:
                    tcb.linger = O.linger_decode(value)
                elif option == _socket.SO_RCVTIMEO:
                    self.rcvtimeo = O.timeval_decode(value)
                elif option == _socket.SO_SNDTIMEO:
                    self.sndtimeo = O.timeval_decode(value)
                elif option == _socket.SO_OOBINLINE:
                    tcb.oobinline = O.as_bool(value)
                elif option == _socket.SO_BROADCAST:
                    pass
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif level == O.IPPROTO_TCP:
                if option in self._TCP_ATTRS:
                    number = O.as_int(value)
                    if option in (_socket.TCP_KEEPIDLE, _socket.TCP_KEEPINTVL) and not 1 <= number <= 32767:
                        raise oserror(errno.EINVAL)
                    if option == _socket.TCP_KEEPCNT and not 1 <= number <= 127:
                        raise oserror(errno.EINVAL)
                    if option == _socket.TCP_USER_TIMEOUT and number < 0:
                        raise oserror(errno.EINVAL)
                    if option in (_socket.TCP_NODELAY, _socket.TCP_QUICKACK):
                        setattr(tcb, self._TCP_ATTRS[option], number != 0)
                        if option == _socket.TCP_NODELAY and number:
                            tcb.push(self.host.touch())  # Linux sends what Nagle held
                    else:
                        setattr(tcb, self._TCP_ATTRS[option], number)
                elif option == TCP_CONGESTION:
                    # checked here, as Linux does: an unknown name accepted now would
                    # only fail inside the stack at the handshake (connect() timed out)
                    name = O.congestion_name(value)
                    if name not in CONGESTION_ALGORITHMS:
                        raise oserror(errno.ENOENT)
                    tcb.congestion = name
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif not O.set_ip_option(tcb, self.family, level, option, value):
                raise oserror(errno.ENOPROTOOPT)

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> int | bytes:
        self.check_open()
        bridge = self.bridge
        if bridge is not None and (level, option) in self._ON_BRIDGE and bridge.tcp_pair:
            if buflen is None:
                return int(bridge.app.getsockopt(level, option))
            return bytes(bridge.app.getsockopt(level, option, buflen))
        tcb = self.tcb
        value: int | bytes
        with self.driver.operation():
            self.host.touch()
            if level == SOL_MULTISOCK and option == SO_FD_MODE:
                value = self.fd_mode
            elif level == O.SOL_SOCKET:
                if option in self._SOCKET_ATTRS:
                    value = int(bool(getattr(tcb, self._SOCKET_ATTRS[option])))
                elif option == _socket.SO_ERROR:
                    value = tcb.take_error()
                elif option == _socket.SO_TYPE:
                    value = _socket.SOCK_STREAM
                elif option == _socket.SO_DOMAIN:
                    value = self.family
                elif option == _socket.SO_PROTOCOL:
                    value = _socket.IPPROTO_TCP
                elif option == _socket.SO_ACCEPTCONN:
                    value = int(tcb.state.name == "LISTEN")
                elif option == _socket.SO_RCVBUF:
                    value = tcb.rcvbuf
                elif option == _socket.SO_SNDBUF:
                    value = tcb.sndbuf
                elif option == _socket.SO_LINGER:
                    value = O.linger_encode(tcb.linger)
                elif option == _socket.SO_RCVTIMEO:
                    value = O.timeval_encode(self.rcvtimeo)
                elif option == _socket.SO_SNDTIMEO:
                    value = O.timeval_encode(self.sndtimeo)
                elif option == _socket.SO_OOBINLINE:
                    value = int(tcb.oobinline)
                elif option == _socket.SO_BROADCAST:
                    value = 0
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif level == O.IPPROTO_TCP:
                if option in self._TCP_ATTRS:
                    value = int(getattr(tcb, self._TCP_ATTRS[option]) or 0)
                    if option == _socket.TCP_MAXSEG and not value:
                        value = int(tcb.info().get("snd_mss", 536)) if tcb.remote else 536
                elif option == _socket.TCP_INFO:
                    value = self._tcp_info()
                    return value[: buflen if buflen is not None else len(value)]
                elif option == TCP_CONGESTION:
                    value = str(tcb.congestion).encode().ljust(16, b"\0")
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif (ip_value := O.get_ip_option(tcb, self.family, level, option,
                                              self.host.ip.default_ttl)) is not None:
                value = ip_value
            else:
                raise oserror(errno.ENOPROTOOPT)
        return O.reply(value, buflen)

    def _tcp_info(self) -> bytes:
        """``struct tcp_info`` as Linux lays it out (times in µs, windows in segments)."""
        info = self.tcb.info()
        mss = max(1, int(info.get("snd_mss", 1) or 1))
        us = functools.partial(_info_us, info)
        u32 = functools.partial(_info_u32, info)

        state_numbers = {
            "ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4, "FIN_WAIT_2": 5,
            "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10,
            "CLOSING": 11,
        }
        state = state_numbers.get(str(self.tcb.state.name), 7)
        cwnd_segments = int(info.get("snd_cwnd", 0) or 0) // mss
        ssthresh = int(info.get("snd_ssthresh", 0) or 0)
        ssthresh_segments = min(ssthresh // mss, 0x7FFFFFFF)
        head = (state, 0, u32("retransmits") & 0xFF, 0, 0, 0, 0, 0)
        words = (
            us("rto"), 0, mss, u32("rcv_mss"), u32("unacked"), u32("sacked"), u32("lost"),
            u32("retrans"), 0, 0, 0, 0, 0, 0, 0, us("rtt"), us("rttvar"), ssthresh_segments,
            cwnd_segments, mss, 3, 0, 0, u32("total_retrans"),
        )
        tail = (0, 0, int(info.get("bytes_acked", 0) or 0), int(info.get("bytes_received", 0) or 0))
        return _TCP_INFO.pack(*head, *words, *tail)
