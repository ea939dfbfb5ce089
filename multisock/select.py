"""``select``/``poll``/``epoll`` that understand multisock sockets mixed with real fds.

A userspace socket is recognised as a ``multisock.socket.socket`` object or as the
eventfd number its ``fileno()`` returned; its read *and* write readiness come from
the stack. Waiting registers a watcher on every userspace socket that writes a
byte to a wake-up pipe, and the kernel's ``select`` sleeps on that pipe together
with the real fds — no polling loop.
"""

from __future__ import annotations

import errno
import os
import select as _kernel_select
import time
from collections.abc import Iterable
from typing import Any

_select = _kernel_select.select
error = OSError
POLLIN = _kernel_select.POLLIN
POLLOUT = _kernel_select.POLLOUT
POLLPRI = _kernel_select.POLLPRI
POLLERR = _kernel_select.POLLERR
POLLHUP = _kernel_select.POLLHUP
POLLNVAL = _kernel_select.POLLNVAL
EPOLLIN = _kernel_select.EPOLLIN
EPOLLOUT = _kernel_select.EPOLLOUT
EPOLLERR = _kernel_select.EPOLLERR
EPOLLHUP = _kernel_select.EPOLLHUP


def _core_of(obj: Any) -> Any:
    """The userspace core behind ``obj`` (socket object or fd number), or None."""
    sock = getattr(obj, "_sock", None)
    if sock is not None and getattr(obj, "_userspace", False):
        return sock
    from multisock.socket import _cores_by_fd

    fd = obj if isinstance(obj, int) else None
    if fd is None and hasattr(obj, "fileno"):
        try:
            fd = obj.fileno()
        except (OSError, ValueError):
            return None
    return _cores_by_fd.get(fd) if fd is not None else None


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        if obj < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({obj})")
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError("argument must be an int, or have a fileno() method.")
    fd = fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def wait(readers: Iterable[Any], writers: Iterable[Any], timeout: float | None
         ) -> tuple[list[Any], list[Any]]:
    """Ready subsets of ``readers`` and ``writers`` within ``timeout`` seconds (None: forever)."""
    readers, writers = list(readers), list(writers)
    user_r = [(o, c) for o in readers if (c := _core_of(o)) is not None]
    user_w = [(o, c) for o in writers if (c := _core_of(o)) is not None]
    if not user_r and not user_w:
        r, w, _ = _select(readers, writers, [], timeout)
        return r, w
    real_r = [o for o in readers if _core_of(o) is None]
    real_w = [o for o in writers if _core_of(o) is None]
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def watcher() -> None:
        try:
            os.write(wake_w, b"!")
        except OSError:
            pass

    cores = {id(c): c for _, c in user_r + user_w}
    for core in cores.values():
        core.watchers.add(watcher)
    try:
        while True:
            ready_r = [o for o, c in user_r if c.readable()]
            ready_w = [o for o, c in user_w if c.writable()]
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if ready_r or ready_w:
                remaining = 0.0
            r, w, _ = _select(real_r + [wake_r], real_w, [], remaining)
            if wake_r in r:
                r.remove(wake_r)
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if ready_r or ready_w or r or w:
                ready_r += [o for o, c in user_r if c.readable() and o not in ready_r]
                ready_w += [o for o, c in user_w if c.writable() and o not in ready_w]
                return ready_r + r, ready_w + w
            if remaining == 0.0 and deadline is not None:
                return [], []
    finally:
        for core in cores.values():
            core.watchers.discard(watcher)
        os.close(wake_r)
        os.close(wake_w)


def select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
           ) -> tuple[list[Any], list[Any], list[Any]]:
    """Like ``select.select``; exceptional conditions are reported for real fds only."""
    if timeout is not None:
        if not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a float or None")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    for obj in rlist + wlist + xlist:
        _fileno(obj)
    real_x = [o for o in xlist if _core_of(o) is None]
    if real_x and not any(_core_of(o) is not None for o in rlist + wlist):
        return _select(rlist, wlist, real_x, timeout)
    r, w = wait(rlist, wlist, timeout)
    x: list[Any] = []
    if real_x:
        _, _, x = _select([], [], real_x, 0)
    return r, w, x


class poll:
    """``select.poll`` over userspace sockets and real fds (timeouts in milliseconds)."""

    def __init__(self) -> None:
        self._fds: dict[int, tuple[Any, int]] = {}

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        self._fds[_fileno(fd)] = (fd, eventmask)

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fileno(fd)
        if number not in self._fds:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        self._fds[number] = (fd, eventmask)

    def unregister(self, fd: Any) -> None:
        del self._fds[_fileno(fd)]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        readers = [n for n, (_, mask) in self._fds.items() if mask & (POLLIN | POLLPRI)]
        writers = [n for n, (_, mask) in self._fds.items() if mask & POLLOUT]
        r, w = wait(readers, writers, seconds)
        events: dict[int, int] = {}
        for n in r:
            events[n] = events.get(n, 0) | POLLIN
        for n in w:
            events[n] = events.get(n, 0) | POLLOUT
        return list(events.items())


class epoll(poll):
    """``select.epoll`` with the same mechanism (level-triggered; timeouts in seconds)."""

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        super().__init__()
        self.closed = False

    def register(self, fd: Any, eventmask: int = EPOLLIN | EPOLLOUT) -> None:
        number = _fileno(fd)
        if number in self._fds:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        self._fds[number] = (fd, eventmask)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        millis = None if timeout is None or timeout < 0 else timeout * 1000
        events = [(n, (EPOLLIN if m & POLLIN else 0) | (EPOLLOUT if m & POLLOUT else 0))
                  for n, m in super().poll(millis)]
        return events if maxevents < 0 else events[:maxevents]

    def close(self) -> None:
        self.closed = True
        self._fds.clear()

    def fileno(self) -> int:
        return -1

    def __enter__(self) -> epoll:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
