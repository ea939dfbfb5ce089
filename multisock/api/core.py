"""The part of a userspace socket every protocol shares: blocking, timeouts, waking.

A core is to ``multisock.socket.socket`` what ``_socket.socket`` is to the
stdlib's: the object that does the work, driven through the host's driver lock.
Waiting uses the driver's condition (a ``threading.Condition`` on that lock, or
its greenlet equivalent under the gevent backend), notified by the stack's
``on_change`` callback, so a blocked ``recv`` costs nothing until data arrives,
and ``close()`` from another thread or greenlet wakes it with EBADF.
"""

from __future__ import annotations

import _socket
import errno
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from multisock.api.errors import bad_fd, oserror, timed_out, would_block
from multisock.api.readiness import ReadinessFd
from multisock.api.sockaddr import format_address, parse_address

if TYPE_CHECKING:
    from multisock.net.driver import Driver
    from multisock.net.host import Host

# (Final: the compiled cores read these as C statics, not from the module's dict per call)
MSG_PEEK: Final = _socket.MSG_PEEK
MSG_DONTWAIT: Final = _socket.MSG_DONTWAIT
MSG_WAITALL: Final = _socket.MSG_WAITALL
MSG_TRUNC: Final = _socket.MSG_TRUNC
MSG_OOB: Final = _socket.MSG_OOB
SUPPORTED_RECV_FLAGS: Final = MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_TRUNC
SUPPORTED_SEND_FLAGS: Final = MSG_DONTWAIT | _socket.MSG_NOSIGNAL | getattr(_socket, "MSG_MORE", 0)

# what a wait is for, as gevent's kernel socket would wait (``Core.wait``'s ``kind``)
WAIT_OTHER: Final = 0  # neither the socket's own read nor its write (gevent's wait_read, TLS's transport)
WAIT_READ: Final = 1
WAIT_WRITE: Final = 2

_default_timeout: float | None = None

# readiness eventfd -> its core, for every core that made one (fileno()): how fromfd(),
# socket(fileno=...) and select find the userspace socket behind a number
cores_by_fd: dict[int, Core] = {}


def get_default_timeout() -> float | None:
    return _default_timeout


def set_default_timeout(value: float | None) -> None:
    global _default_timeout
    _default_timeout = check_timeout(value)


def check_timeout(value: Any) -> float | None:
    """Validate a timeout exactly like CPython (TypeError / ValueError)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError("Timeout value must be int, float or None")
    try:
        timeout = float(value)
    except TypeError:
        raise TypeError("Timeout value must be int, float or None") from None
    if timeout != timeout:
        raise ValueError("Invalid value NaN (not a number)")
    if timeout < 0:
        raise ValueError("Timeout value out of range")
    return timeout


def _called_as_raw_socket() -> bool:
    """True when code outside multisock called this core directly (``sock._sock.recv()``).

    Under gevent, a socket's ``_sock`` is the raw kernel socket, always non-blocking: gevent's
    socket object does the waiting. Code written for gevent relies on it (pywsgi reads
    ``self.socket._sock.recv(16384)`` after a response, "socket.recv would hang"), and the
    facade's ``_sock`` is the core, which waits by the socket's timeout. Asked only on the way to
    a wait, so the check costs nothing on the paths that do not block: the first frame outside
    the core's modules is the facade, the TLS layer, the fork server... (wait) or someone
    else's code holding the raw socket (EAGAIN, as gevent's raw socket says).
    """
    # from this frame outwards (not two frames up): in the compiled build the core's own
    # functions have no Python frames, so the innermost one is already the caller's
    frame = sys._getframe(0)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name not in _CORE_MODULES:
            return not (name == "multisock" or name.startswith("multisock."))
        frame = frame.f_back  # type: ignore[assignment]
    return False


# the modules whose frames are the core's own (the caller is the first frame outside them)
_CORE_MODULES = frozenset({"multisock.api.core", "multisock.api.stream", "multisock.api.dgram"})


class Core:
    """Shared state and helpers; protocol subclasses fill in the operations.

    In the compiled build the cores are mypyc native classes: their fields are struct slots
    (every one assigned in ``__init__``; no other can be added), they have no ``__dict__``,
    their class cannot be reassigned and they cannot be weakly referenced. A forked child's
    stand-ins are separate objects (``api.forking.RemoteCore``)."""

    def __init__(self, host: Host, family: int, type: int, proto: int) -> None:
        self.host = host
        # (annotated: modules in an import cycle with this one, e.g. api/dgram_bridge.py, read
        # it before inference reaches it; mypyc's build refused that with "Cannot determine
        # type")
        self.driver: Driver = host.driver
        self.family = family
        self.type = type
        self.proto = proto
        self.timeout: float | None = _default_timeout
        self.closed = False
        # created on first wait: a Condition is ~1.3 KiB and most sockets never block
        self._cond: Any = None
        self._fd: ReadinessFd | None = None
        # an eventfd mirroring *write* readiness: made at fork only (api/forking.py), so that
        # a child's select can sleep in the kernel on both directions
        self._wfd: ReadinessFd | None = None
        # bridged fd mode's relay (api/bridge.py's Bridge, api/dgram_bridge.py's
        # DatagramBridge): None until made. Typed Any here and in the subclasses (a native
        # class's subclass cannot narrow a field's type; both classes are interpreted, so a
        # precise type would not make the calls on them native)
        self.bridge: Any = None
        self.rcvtimeo: float | None = None
        self.sndtimeo: float | None = None
        self.refs = 1  # wrappers sharing this core (dup, fromfd)
        # closed by a socket object or socket.close(fd): another object's close() is EBADF
        # (closed by a direct core.close(), gevent's ``sock._sock.close()``: it is silent)
        self.closed_through_fd = False
        # extra callbacks run on every readiness change (select/poll shims register here);
        # the set is created on first use (an empty set is 216 bytes per socket)
        self._watchers: set[Callable[[], None]] | None = None
        # a layer above (TLS) holds bytes for the reader: the socket counts as readable
        self.held_above = False
        # under gevent: the socket's _read_event/_write_event watchers and its ``ref``
        # (``net.gevent_waits.SocketEvents``), made on the first wait
        self.green_events: Any = None

    @property
    def cond(self) -> Any:
        """The condition blocked calls wait on (shares the driver's lock; a threading.Condition,
        or the gevent backend's GreenCondition)."""
        cond = self._cond
        if cond is None:
            cond = self._cond = self.driver.new_condition()
        return cond

    @property
    def watchers(self) -> set[Callable[[], None]]:
        watchers = self._watchers
        if watchers is None:
            watchers = self._watchers = set()
        return watchers

    # -------------------------------------------------------------- blocking

    def settimeout(self, value: Any) -> None:
        self.timeout = check_timeout(value)
        self._sync_fd_blocking()

    def gettimeout(self) -> float | None:
        return self.timeout

    def setblocking(self, flag: Any) -> None:  # (any object, as CPython's: mypyc checks types)
        self.timeout = None if flag else 0.0
        self._sync_fd_blocking()

    def _sync_fd_blocking(self) -> None:
        """The fd's O_NONBLOCK says what CPython's would: set unless the timeout is None."""
        if self.closed:
            raise bad_fd()  # CPython sets the timeout, then fcntl() on the dead fd fails
        bridge = self.bridge
        if bridge is not None:
            bridge.app.settimeout(self.timeout)  # the program's end of a bridged fd
            return
        fd = self._fd
        if fd is not None and fd.fd >= 0:
            os.set_blocking(fd.fd, self.timeout is None)

    def getblocking(self) -> bool:
        return self.timeout != 0.0

    def wait(self, ready: Callable[[], bool], flags: int = 0, timeout: Any = "default",
             kind: int = WAIT_OTHER) -> None:
        """Wait (lock held) until ``ready()``; BlockingIOError / TimeoutError / EBADF.

        The predicate is asked once before sleeping and once per wake-up (callers have
        usually just asked it themselves: a blocking recv passes here once per segment).
        ``kind`` says what gevent's kernel socket would wait on (WAIT_READ: its read watcher,
        WAIT_WRITE: its write watcher): under gevent the sleep holds the hub's loop as that
        watcher would, and a second greenlet sleeping in the same direction gets gevent's
        ConcurrentObjectUseError (``GeventDriver.waiting``)."""
        driver = self.driver
        driver.drain()  # what is queued may make us ready, and re-arms timers before we sleep
        if ready():
            return
        limit = self.timeout if timeout == "default" else timeout
        if flags & MSG_DONTWAIT or limit == 0.0:
            raise would_block()
        if driver.backend == "gevent":
            if _called_as_raw_socket():
                raise would_block()
            with driver.waiting(self, kind):  # type: ignore[attr-defined]
                self._sleep(ready, limit)
            return
        self._sleep(ready, limit)

    def _sleep(self, ready: Callable[[], bool], limit: float | None) -> None:
        driver = self.driver
        deadline = None if limit is None else driver.now() + limit
        cond = self.cond
        while True:
            if self.closed:
                raise bad_fd()
            if deadline is None:
                cond.wait()
            else:
                remaining = deadline - driver.now()
                if remaining <= 0:
                    raise timed_out()
                cond.wait(remaining)
            driver.drain()
            if ready():
                return

    def wait_to_read(self, ready: Callable[[], bool], flags: int = 0,
                     timeout: Any = "default") -> None:
        """:meth:`wait` for data (``kind=WAIT_READ``)."""
        self.wait(ready, flags, timeout, WAIT_READ)

    def changed(self) -> None:
        """The stack says readiness may have changed (lock held)."""
        cond = self._cond
        if cond is not None:
            cond.notify_all()
        fd = self._fd
        if fd is not None:
            fd.update(self.readable())
        if self._wfd is not None:
            self._wfd.update(self.writable())
        if self._watchers:
            for watcher in tuple(self._watchers):
                watcher()

    def set_held_above(self, held: bool) -> None:
        """A layer above the core (TLS's decrypted or not yet decrypted bytes) now holds, or no
        longer holds, data for the reader; select, poll and the eventfd must say so."""
        with self.driver.lock:
            if held != self.held_above:
                self.held_above = held
                self.changed()

    def _new_bridge(self, make: Callable[[Any, int | None], Any]) -> Any:
        """A bridged fd for this socket (lock held): ``make(core, number)`` builds it at the
        readiness fd's number when the program has that number already; it is registered
        under its fd. The caller keeps it and starts it."""
        old = self._fd
        if old is not None:
            self._fd = None
            bridge = make(self, old.fd)
            old.fd = -1  # (the number is the bridge's now)
        else:
            bridge = make(self, None)
        bridge.app.settimeout(self.timeout)
        cores_by_fd[bridge.fileno()] = self
        return bridge

    def sync_fd(self) -> None:
        """Bring the readiness fd up to date after an operation consumed something.

        The stack signals arrivals, not consumption (``accept``/``recv`` emptying a
        queue), so without this a level-triggered watcher on the eventfd (libev under
        gevent's StreamServer, epoll) would keep firing on an empty socket."""
        fd = self._fd
        if fd is not None:
            fd.update(self.readable())

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def exceptional(self) -> bool:
        """select's exceptional condition, poll's POLLPRI (TCP's unread urgent byte)."""
        return False

    def fileno(self) -> int:
        if self.closed:
            return -1
        with self.driver.lock:
            if self._fd is None:
                self._fd = ReadinessFd()
                self._fd.update(self.readable())
                cores_by_fd[self._fd.fd] = self
                self._sync_fd_blocking()
            return self._fd.fd

    def check_open(self) -> None:
        if self.closed:
            raise bad_fd()

    def close(self) -> None:
        with self.driver.operation():
            if self.closed:
                return
            self.refs -= 1
            if self.refs > 0:
                return
            self.closed = True
            self.close_protocol()
            if self._cond is not None:
                self._cond.notify_all()
            if self._watchers:
                for watcher in tuple(self._watchers):
                    watcher()
            self.host.touch()
        if self._fd is not None:
            cores_by_fd.pop(self._fd.fd, None)
            self._fd.close()
        if self._wfd is not None:
            self._wfd.close()

    def close_protocol(self) -> None:
        """Release protocol state (subclasses)."""

    # ------------------------------------------------------------- addresses

    def resolve(self, host: str, family: int) -> bytes:
        from multisock.api.resolve import resolve_for_socket

        return resolve_for_socket(self.host, host, family)

    def parse(self, address: Any, caller: str) -> tuple[bytes, int]:
        addr, port, _flow, _scope = parse_address(self.family, address, caller, self.resolve)
        return addr, port

    def format(self, addr: bytes, port: int) -> tuple[Any, ...]:
        return format_address(self.family, addr, port)

    # ---------------------------------------------------------------- options

    def unsupported_option(self, level: int, option: int) -> OSError:
        return oserror(errno.ENOPROTOOPT)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.host.name}>"
