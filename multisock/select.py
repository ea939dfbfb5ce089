"""``select``/``poll``/``epoll`` that understand multisock sockets mixed with real fds.

A userspace socket is recognised as a ``multisock.socket.socket`` object or as the
eventfd number its ``fileno()`` returned; its read *and* write readiness come from
the stack. Waiting registers a watcher on every userspace socket that writes a
byte to a wake-up pipe, and the kernel's ``select`` sleeps on that pipe together
with the real fds — no polling loop.
"""

from __future__ import annotations

import errno
import math
import os
import select as _kernel_select
import sys
import time
from collections.abc import Iterable
from typing import Any


def _kernel(name: str) -> Any:
    """The kernel's ``select.<name>``, even when gevent patched (or removed) it before this
    module was first imported."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("select"):
        return gevent_monkey.get_original("select", name)
    return getattr(_kernel_select, name)


# the kernel's objects, captured when this module is first imported (before patching);
# under gevent, multisock.green swaps in cooperative equivalents
_select = _kernel("select")
_KernelPoll = _kernel("poll")
_KernelEpoll = _kernel("epoll")
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


_socket_types: tuple[type, ...] = ()


def _userspace_classes() -> tuple[type, ...]:
    """The classes whose objects carry a userspace core in ``_sock``: multisock's socket and,
    once TLS was imported (never imported here: a program without TLS loads no OpenSSL),
    multisock's SSLSocket."""
    global _socket_types
    tls = sys.modules.get("multisock.tls.sslsocket")
    if len(_socket_types) != (1 if tls is None else 2):
        from multisock.socket import socket

        _socket_types = (socket,) if tls is None else (socket, tls.SSLSocket)
    return _socket_types


def _core_of(obj: Any) -> Any:
    """The userspace core behind ``obj`` (socket object or fd number), or None.

    Recognised by type, never by attribute names: a wrapper (``mock.Mock(wraps=sock)``, a
    ``__getattr__`` proxy) answers any name with something made up. Any other object is
    what the kernel sees in it, its ``fileno()``, and that fd number leads to the core.
    A bridged socket (``api/bridge.py``) is None too: its fd is a kernel socket whose
    readiness the relay changes after the stack's change callbacks, so only the kernel
    itself can wait on it without missing a wake-up."""
    if isinstance(obj, _userspace_classes()):
        sock: Any = obj
        core = sock._sock if sock._userspace else None
    else:
        from multisock.socket import _cores_by_fd

        fd = obj if isinstance(obj, int) else None
        if fd is None and hasattr(obj, "fileno"):
            try:
                fd = obj.fileno()
            except (OSError, ValueError):
                return None
        core = _cores_by_fd.get(fd) if isinstance(fd, int) else None
    if core is not None and getattr(core, "bridge", None) is not None:
        return None
    return core


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


# the shortest sleep of a wait asked for a positive timeout (the kernel rounds it up to its clock)
_AT_LEAST = 1e-6


def _remaining(deadline: float | None, slept: bool) -> float | None:
    """Seconds left until ``deadline`` (None: no limit). A wait asked for a positive timeout
    sleeps at least once, as the kernel's does: setting up the wake-up pipe may outlast a 1 ms
    timeout, and skipping the sleep would never yield to gevent's hub, where another greenlet
    is about to close or fill the socket (gevent's poll(1 ms) reports that close)."""
    if deadline is None:
        return None
    remaining = max(0.0, deadline - time.monotonic())
    return remaining if slept else max(remaining, _AT_LEAST)


def wait(readers: Iterable[Any], writers: Iterable[Any], timeout: float | None
         ) -> tuple[list[Any], list[Any]]:
    """Ready subsets of ``readers`` and ``writers`` within ``timeout`` seconds (None: forever)."""
    r, w, _ = _wait(readers, writers, [], timeout)
    return r, w


def _wait(readers: Iterable[Any], writers: Iterable[Any], user_x: list[tuple[Any, Any]],
          timeout: float | None) -> tuple[list[Any], list[Any], list[Any]]:
    """:func:`wait`, also for the exceptional condition (urgent data) of userspace sockets
    ``user_x`` (pairs of object and core)."""
    readers, writers = list(readers), list(writers)
    user_r = [(o, c) for o in readers if (c := _core_of(o)) is not None]
    user_w = [(o, c) for o in writers if (c := _core_of(o)) is not None]
    if not user_r and not user_w and not user_x:
        r, w, _ = _select(readers, writers, [], timeout)
        return r, w, []
    real_r = [o for o in readers if _core_of(o) is None]
    real_w = [o for o in writers if _core_of(o) is None]
    if not user_x and _all_inherited(user_r, user_w):
        r, w = _wait_inherited(user_r, user_w, real_r, real_w, timeout)
        return r, w, []
    ready_r = [o for o, c in user_r if c.readable()]
    ready_w = [o for o, c in user_w if c.writable()]
    ready_x = [o for o, c in user_x if c.exceptional()]
    if ready_r or ready_w or ready_x or timeout == 0:
        # the answer is known without sleeping (a poll-only check, as urllib3 makes before
        # reusing a connection): no wake-up pipe, at most one non-blocking select
        r, w = [], []
        if real_r or real_w:
            r, w, _ = _select(real_r, real_w, [], 0.0)
        return ready_r + list(r), ready_w + list(w), ready_x
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def watcher() -> None:
        try:
            os.write(wake_w, b"!")
        except OSError:
            pass

    cores = {id(c): c for _, c in user_r + user_w + user_x}
    for core in cores.values():
        core.watchers.add(watcher)
    slept = False
    try:
        while True:
            ready_r = [o for o, c in user_r if c.readable()]
            ready_w = [o for o, c in user_w if c.writable()]
            ready_x = [o for o, c in user_x if c.exceptional()]
            remaining = _remaining(deadline, slept)
            if ready_r or ready_w or ready_x:
                remaining = 0.0
            slept = True
            # gevent's select returns tuples (its own result, or a patched _original_select)
            r, w, _ = _select(real_r + [wake_r], real_w, [], remaining)
            r, w = list(r), list(w)
            if wake_r in r:
                r.remove(wake_r)
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            if ready_r or ready_w or ready_x or r or w:
                ready_r += [o for o, c in user_r if c.readable() and o not in ready_r]
                ready_w += [o for o, c in user_w if c.writable() and o not in ready_w]
                ready_x += [o for o, c in user_x if c.exceptional() and o not in ready_x]
                return ready_r + r, ready_w + w, ready_x
            if remaining == 0.0 and deadline is not None:
                return [], [], []
    finally:
        for core in cores.values():
            core.watchers.discard(watcher)
        os.close(wake_r)
        os.close(wake_w)


def _all_inherited(user_r: list[Any], user_w: list[Any]) -> bool:
    """Are these the sockets of a forked child (served by the parent), all with readiness
    fds? Their stack is in another process: no watcher here can wake us."""
    from multisock.api.forking import RemoteCore

    for _, core in user_r + user_w:
        if not isinstance(core, RemoteCore):
            return False
        if core.__dict__.get("_fd") is None or core.__dict__.get("_wfd") is None:
            return False
    return True


def _wait_inherited(user_r: list[Any], user_w: list[Any], real_r: list[Any],
                    real_w: list[Any], timeout: float | None) -> tuple[list[Any], list[Any]]:
    """A forked child's select: the parent mirrors each socket's read and write readiness
    into two eventfds (``api/forking.py``), so the kernel's select sleeps on them."""
    by_rfd: dict[int, list[Any]] = {}
    by_wfd: dict[int, list[Any]] = {}
    for o, c in user_r:
        by_rfd.setdefault(c._fd.fd, []).append(o)
    for o, c in user_w:
        by_wfd.setdefault(c._wfd.fd, []).append(o)
    fds = list(by_rfd) + [fd for fd in by_wfd if fd not in by_rfd]
    r, w, _ = _select(real_r + fds, real_w, [], timeout)
    ready_r = [o for fd in r if isinstance(fd, int) and fd in by_rfd for o in by_rfd[fd]]
    ready_w = [o for fd in r if isinstance(fd, int) and fd in by_wfd for o in by_wfd[fd]]
    rest = [o for o in r if not (isinstance(o, int) and (o in by_rfd or o in by_wfd))]
    return ready_r + rest, ready_w + w


def select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
           ) -> tuple[list[Any], list[Any], list[Any]]:
    """Like ``select.select``; a userspace socket's exceptional condition is urgent data
    not yet read (as Linux's POLLPRI)."""
    if timeout is not None:
        if not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a float or None")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
    for obj in rlist + wlist + xlist:
        _fileno(obj)
    real_x = [o for o in xlist if _core_of(o) is None]
    user_x = [(o, c) for o in xlist if (c := _core_of(o)) is not None]
    if real_x and not user_x and not any(_core_of(o) is not None for o in rlist + wlist):
        return _select(rlist, wlist, real_x, timeout)
    r, w, x = _wait(rlist, wlist, user_x, timeout)
    if real_x:
        _, _, kx = _select([], [], real_x, 0)
        x += kx
    return r, w, x


class _Waker:
    """A non-blocking pipe the kernel object watches; userspace sockets write to it on change."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pending = False

    def __call__(self) -> None:
        if self.pending or self.w < 0:
            return
        self.pending = True
        try:
            os.write(self.w, b"!")
        except OSError:
            pass

    def drain(self) -> None:
        """Empty the pipe, *then* allow the next write. The other order loses wake-ups: a
        notifier thread (the driver's) writing while ``os.read`` runs without the GIL would
        have its byte read here while ``pending`` stays set, and every later change would
        then skip its write, leaving the kernel's wait asleep on an empty pipe (seen as
        asyncio's epoll loop missing readable data under CPython's test_sock_lowlevel)."""
        try:
            while os.read(self.r, 4096):
                pass
        except OSError:
            pass
        self.pending = False

    def close(self) -> None:
        for fd in (self.r, self.w):
            if fd >= 0:
                os.close(fd)
        self.r = self.w = -1


def _user_events(core: Any, mask: int) -> int:
    if core.closed:
        return POLLNVAL
    events = 0
    if mask & (POLLIN | POLLPRI) and core.readable():
        events |= POLLIN
    if mask & POLLOUT and core.writable():
        events |= POLLOUT
    if mask & POLLPRI and core.exceptional():
        events |= POLLPRI
    return events


class _Multiplexer:
    """What poll and epoll share: real fds go to a kernel object (so there is no FD_SETSIZE
    limit and the kernel's own errors, e.g. EPERM for a regular file in epoll, stay exact);
    userspace sockets are checked against the stack, and a persistent wake-up pipe registered
    in the kernel object ends the kernel's wait when one of them changes."""

    _kernel: Any

    def __init__(self) -> None:
        self._user: dict[int, tuple[Any, int]] = {}
        self._waker: _Waker | None = None

    def _kernel_register(self, fd: int, mask: int) -> None:
        raise NotImplementedError

    def _kernel_poll(self, seconds: float | None, maxevents: int = -1) -> list[tuple[int, int]]:
        raise NotImplementedError

    def _add_user(self, number: int, core: Any, mask: int) -> None:
        self._user[number] = (core, mask)
        if self._waker is not None:
            core.watchers.add(self._waker)

    def _ensure_waker(self) -> _Waker:
        """The wake-up pipe, made the first time a wait must sleep (a poll object used only
        for zero-timeout checks, or always finding something ready, never needs one)."""
        if self._waker is None:
            self._waker = _Waker()
            self._kernel_register(self._waker.r, POLLIN)
            for core, _ in self._user.values():
                core.watchers.add(self._waker)
        return self._waker

    def _remove_user(self, number: int) -> None:
        core, _ = self._user.pop(number)
        if self._waker is not None and not any(c is core for c, _ in self._user.values()):
            core.watchers.discard(self._waker)

    def _adopt_bridged(self) -> None:
        """A socket registered before its bridge existed (its fd was asked for before it
        connected: trio's and asyncio's non-blocking connect) now has a kernel socket at that
        number: the kernel object watches it from here on (see ``_core_of``)."""
        for number, (core, mask) in list(self._user.items()):
            if getattr(core, "bridge", None) is not None and not core.closed:
                try:
                    self._kernel_register(number, mask)
                except OSError:
                    continue
                self._remove_user(number)

    def _wait(self, seconds: float | None, maxevents: int = -1) -> list[tuple[int, int]]:
        if self._user:
            self._adopt_bridged()
        if not self._user:
            return self._kernel_poll(seconds, maxevents)
        deadline = None if seconds is None else time.monotonic() + max(0.0, seconds)
        slept = seconds is not None and seconds <= 0  # a zero timeout never sleeps
        while True:
            ready = [(n, ev) for n, (c, m) in self._user.items() if (ev := _user_events(c, m))]
            remaining = _remaining(deadline, slept)
            if ready:
                remaining = 0.0
            if remaining != 0.0 and self._waker is None:
                # sleeping needs the pipe the userspace sockets wake (a zero wait does not);
                # look again once it watches, or a change just before would be missed
                self._ensure_waker()
                continue
            waker = self._waker
            slept = True
            # room for every registered fd (the kernel's epoll caps an unsized poll at 1023)
            events = self._kernel_poll(remaining, len(self._user) + max(maxevents, 1023) + 1)
            real = [(fd, ev) for fd, ev in events if waker is None or fd != waker.r]
            if waker is not None and len(real) != len(events):
                waker.drain()
            if ready or real:
                out = ready + real
                return out if maxevents < 0 else out[:maxevents]
            if remaining == 0.0:
                return []

    def _close_user(self) -> None:
        if self._waker is not None:
            for core, _ in self._user.values():
                core.watchers.discard(self._waker)
            self._waker.close()
            self._waker = None
        self._user.clear()

    def __del__(self) -> None:
        try:
            self._close_user()
        except Exception:
            pass


class poll(_Multiplexer):
    """``select.poll`` over userspace sockets and real fds (timeouts in milliseconds)."""

    def __init__(self) -> None:
        super().__init__()
        self._kernel = _KernelPoll()

    def _kernel_register(self, fd: int, mask: int) -> None:
        self._kernel.register(fd, mask)

    def _kernel_poll(self, seconds: float | None, maxevents: int = -1) -> list[tuple[int, int]]:
        return list(self._kernel.poll(None if seconds is None else math.ceil(seconds * 1000)))

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        number = _fileno(fd)
        core = _core_of(fd)
        if core is not None:
            self._add_user(number, core, eventmask)
        else:
            self._kernel.register(number, eventmask)

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fileno(fd)
        if number in self._user:
            self._user[number] = (self._user[number][0], eventmask)
        else:
            self._kernel.modify(number, eventmask)

    def unregister(self, fd: Any) -> None:
        number = _fileno(fd)
        if number in self._user:
            self._remove_user(number)
        else:
            self._kernel.unregister(number)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be an integer or None")
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        return self._wait(seconds)


class epoll(_Multiplexer):
    """``select.epoll`` with the same mechanism (level-triggered for userspace sockets)."""

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        super().__init__()
        self._kernel = _KernelEpoll(sizehint, flags)

    def _kernel_register(self, fd: int, mask: int) -> None:
        self._kernel.register(fd, mask)

    def _kernel_poll(self, seconds: float | None, maxevents: int = -1) -> list[tuple[int, int]]:
        return list(self._kernel.poll(-1 if seconds is None else seconds, maxevents))

    @property
    def closed(self) -> bool:
        return bool(self._kernel.closed)

    def _check_open(self) -> None:
        if self._kernel.closed:
            raise ValueError("I/O operation on closed epoll object")

    def register(self, fd: Any, eventmask: int = EPOLLIN | EPOLLOUT) -> None:
        self._check_open()
        number = _fileno(fd)
        core = _core_of(fd)
        if core is None:
            self._kernel.register(number, eventmask)
            return
        if number in self._user:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        self._add_user(number, core, eventmask)

    def modify(self, fd: Any, eventmask: int) -> None:
        self._check_open()
        number = _fileno(fd)
        if number in self._user:
            self._user[number] = (self._user[number][0], eventmask)
        else:
            self._kernel.modify(number, eventmask)

    def unregister(self, fd: Any) -> None:
        self._check_open()
        number = _fileno(fd)
        if number in self._user:
            self._remove_user(number)
        else:
            self._kernel.unregister(number)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        self._check_open()
        seconds = None if timeout is None or timeout < 0 else float(timeout)
        return self._wait(seconds, maxevents)

    def close(self) -> None:
        self._close_user()
        self._kernel.close()

    def fileno(self) -> int:
        return int(self._kernel.fileno())

    def __enter__(self) -> epoll:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
