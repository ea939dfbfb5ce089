"""gevent integration: gevent's own socket APIs over multisock, in either patching order.

gevent copies references to the kernel's socket objects into its own modules
(``gevent._socket3.socket`` wraps ``_socket.socket``; ``gevent.server`` imported
``GeventSocket``; ``gevent.socket`` copied the DNS functions), so patching the
stdlib ``socket`` module leaves ``StreamServer``, ``pywsgi`` and
``gevent.socket.create_connection`` on the kernel. :func:`patch_gevent` replaces
those names with multisock's. multisock's socket class is cooperative by itself
under the gevent backend (``net.gevent_driver``), so one class serves both:
after patching, ``socket.socket is gevent.socket.socket``.

gevent's readiness helpers (``wait_read``/``wait_write``/``wait_readwrite``,
``gevent.select.select``) learn multisock's fds: a userspace socket's ``fileno()``
is an eventfd that only mirrors readability, so waiting for writability, or
being woken by ``close()`` from another greenlet, must go through the socket's
core; kernel fds go to gevent's originals.

Order. ``gevent.monkey.patch_all()`` then ``multisock.monkey.patch_all()`` is the
documented order. The other order works too: multisock subscribes to gevent's
patch events (``zope.event``) and re-applies itself after gevent patched. A
virtual network already running on the threads backend cannot become
cooperative, so gevent patching then fails at once with an error saying what to
do, instead of letting greenlets freeze the hub.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

_subscribed = False
_NONE: Any = object()


def gevent_patched() -> bool:
    from multisock.net.backends import gevent_patched as patched

    return patched()


# ----------------------------------------------------------- readiness waits

def _core_of_fd(fileno: Any) -> Any:
    from multisock.select import _core_of

    return _core_of(fileno)


def _wait_core(core: Any, want_read: bool, want_write: bool, timeout: float | None,
               timeout_exc: Any) -> None:
    from gevent.socket import cancel_wait_ex

    from multisock.socket import timeout as socket_timeout

    def ready() -> bool:
        return bool(core.closed or (want_read and core.readable())
                    or (want_write and core.writable()))

    with core.driver.operation():
        try:
            if timeout is not None and timeout <= 0:
                if not ready():
                    raise TimeoutError
            else:
                core.wait(ready, 0, timeout)
        except TimeoutError:
            raise (socket_timeout("timed out") if timeout_exc is _NONE else timeout_exc) from None
        if core.closed:
            raise cancel_wait_ex()


def _original(name: str) -> Any:
    from multisock.monkey import get_original

    return get_original("gevent._socketcommon", name)


def wait_read(fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE) -> None:
    """``gevent.socket.wait_read`` for multisock fds too (closing wakes with EBADF)."""
    core = _core_of_fd(fileno)
    if core is None:
        args = () if timeout_exc is _NONE else (timeout_exc,)
        return _original("wait_read")(fileno, timeout, *args)
    _wait_core(core, True, False, timeout, timeout_exc)
    return None


def wait_write(fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE,
               event: Any = _NONE) -> None:
    """``gevent.socket.wait_write``: for a multisock fd, the send buffer's real space."""
    core = _core_of_fd(fileno)
    if core is None:
        args = () if timeout_exc is _NONE else (timeout_exc,)
        return _original("wait_write")(fileno, timeout, *args)
    _wait_core(core, False, True, timeout, timeout_exc)
    return None


def wait_readwrite(fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE,
                   event: Any = _NONE) -> None:
    core = _core_of_fd(fileno)
    if core is None:
        args = () if timeout_exc is _NONE else (timeout_exc,)
        return _original("wait_readwrite")(fileno, timeout, *args)
    _wait_core(core, True, True, timeout, timeout_exc)
    return None


class GreenEpoll:
    """``select.epoll``'s interface (level-triggered) over gevent's cooperative ``poll``.

    ``multisock.select.epoll`` multiplexes real fds through a kernel epoll, whose
    ``poll()`` would block the whole hub; under gevent it gets this instead. The
    EPOLL* and POLL* bits that matter have the same values on Linux."""

    _MASK = 0x1 | 0x2 | 0x4 | 0x8 | 0x10  # IN, PRI, OUT, ERR, HUP

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        from multisock.monkey import get_original

        self._poll = get_original("gevent.select", "poll")()
        self._fds: set[int] = set()
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed epoll object")

    def register(self, fd: int, eventmask: int = 0x1 | 0x4 | 0x2) -> None:
        import errno

        self._check()
        if fd in self._fds:
            raise FileExistsError(errno.EEXIST, "File exists")
        self._poll.register(fd, eventmask & self._MASK)
        self._fds.add(fd)

    def modify(self, fd: int, eventmask: int) -> None:
        import errno

        self._check()
        if fd not in self._fds:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self._poll.modify(fd, eventmask & self._MASK)

    def unregister(self, fd: int) -> None:
        import errno

        self._check()
        if fd not in self._fds:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self._poll.unregister(fd)
        self._fds.discard(fd)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        self._check()
        millis = None if timeout is None or timeout < 0 else timeout * 1000
        events = list(self._poll.poll(millis))
        return events if maxevents is None or maxevents < 0 else events[:maxevents]

    def fileno(self) -> int:
        return -1  # no kernel object behind it

    def close(self) -> None:
        for fd in list(self._fds):
            self._poll.unregister(fd)
        self._fds.clear()
        self.closed = True


# ------------------------------------------------------------------ patching

def _green_kernel_socket() -> Any:
    """The class multisock's socket wraps for kernel families (AF_UNIX, netlink...) under
    gevent: gevent's own cooperative socket, plus the ``_accept()`` the wrapper calls, made
    to wait on the hub as gevent's ``accept()`` does (the raw one is non-blocking)."""
    from multisock.monkey import get_original

    base = get_original("gevent._socket3", "socket")

    class GreenKernelSocket(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def _accept(self) -> tuple[int, Any]:
            while True:
                try:
                    return self._sock._accept()
                except BlockingIOError:
                    if self.timeout == 0.0:
                        raise
                self._wait(self._read_event)

    return GreenKernelSocket


def _keep_wrapper(original: Any) -> Any:
    """StreamServer unwraps its listener to the object underneath (for a multisock socket,
    the core) and drops the wrapper, whose finalizer - like the C socket's - closes a socket
    nobody closed. The server keeps the wrapper alive for as long as it keeps the core."""

    def _make_socket_stdlib(self: Any, fresh: bool) -> None:
        wrapper = self.socket
        original(self, fresh)
        if wrapper is not self.socket:
            self._multisock_wrapper = wrapper

    _make_socket_stdlib.multisock_hook = True  # type: ignore[attr-defined]
    return _make_socket_stdlib


class _CoreWatcher:
    """What ``gevent.selectors.GeventSelector`` needs of a libev io watcher, for a userspace
    socket: ``start(callback, fd, pass_events=True)`` calls back with libev's read/write bits
    while the socket is ready (level-triggered, like the io watcher), ``stop()``, ``close()``.
    Readiness is the stack's own (write readiness exact, which an io watcher on the readiness
    eventfd, always writable, could not be)."""

    def __init__(self, core: Any, events: int) -> None:
        self._core = core
        self._events = events
        self._callback: Any = None
        self._fd = -1

    def start(self, callback: Any, fd: int, pass_events: bool = True) -> None:
        self._callback, self._fd = callback, fd
        self._core.watchers.add(self._notify)
        self._notify()

    def _notify(self) -> None:
        import selectors

        from gevent.select import _EV_READ, _EV_WRITE

        core, events, callback = self._core, self._events, self._callback
        if callback is None:
            return
        ready = 0
        if events & selectors.EVENT_READ and (core.closed or core.readable()):
            ready |= _EV_READ
        if events & selectors.EVENT_WRITE and (core.closed or core.writable()):
            ready |= _EV_WRITE
        if ready:
            callback(ready, self._fd)

    def stop(self) -> None:
        self._callback = None
        if self._core._watchers:
            self._core.watchers.discard(self._notify)

    def close(self) -> None:
        self.stop()


def _green_register(original: Any) -> Any:
    """``GeventSelector.register`` (gevent's ``DefaultSelector``) for userspace sockets too:
    their watcher is a :class:`_CoreWatcher` instead of a libev io watcher. (Patched on
    gevent's class in place: its methods name the class through ``super(GeventSelector,
    self)``, so a subclass bound to that name would recurse.)"""
    import selectors

    from multisock.select import _core_of

    def register(self: Any, fileobj: Any, events: int, data: Any = None) -> Any:
        core = _core_of(fileobj)
        if core is None:
            return original(self, fileobj, events, data)
        base: Any = selectors._BaseSelectorImpl
        key = base.register(self, fileobj, events, data)
        self._inactive_watchers[key.fd] = _CoreWatcher(core, events)
        return key

    register.__doc__ = original.__doc__
    register.multisock_hook = True  # type: ignore[attr-defined]
    return register


def patch_gevent() -> None:
    """Point gevent's socket classes, servers, DNS and readiness helpers at multisock."""
    import gevent._socket3
    import gevent._socketcommon
    import gevent.select
    import gevent.server
    import gevent.socket

    import multisock.select as mselect
    import multisock.socket as msock
    from multisock.monkey import _patch, _patch_class, _patched_modules, get_original

    for name in sorted(msock._OURS):
        for module in (gevent.socket, gevent._socket3, gevent._socketcommon):
            if hasattr(module, name) and hasattr(msock, name):
                _patch(module.__name__, name, getattr(msock, name))
    _patch("gevent.server", "GeventSocket", msock.socket)
    # kernel families (AF_UNIX, socketpair()...) stay gevent-cooperative through our class
    if msock._KernelSocket is get_original("multisock.socket", "_KernelSocket"):
        _patch("multisock.socket", "_KernelSocket", _green_kernel_socket())
    # use_host() is per greenlet even when multisock.runtime was imported before gevent
    # patched threading.local
    import gevent.local

    import multisock.runtime

    if not isinstance(multisock.runtime._local, gevent.local.local):
        _patch("multisock.runtime", "_local", gevent.local.local())
    if not getattr(gevent.server.StreamServer._make_socket_stdlib, "multisock_hook", False):
        _patch_class("gevent.server", "StreamServer", "_make_socket_stdlib",
                     _keep_wrapper(gevent.server.StreamServer._make_socket_stdlib))
    for name, func in (("wait_read", wait_read), ("wait_write", wait_write),
                       ("wait_readwrite", wait_readwrite)):
        for module in (gevent.socket, gevent._socketcommon):
            _patch(module.__name__, name, func)
    # multisock.select sleeps in gevent's select (cooperative); gevent.select.select
    # becomes multisock's, which knows userspace sockets' write readiness.
    gevent_select = get_original("gevent.select", "select")
    _patch("multisock.select", "_select", gevent_select)
    _patch("multisock.select", "_KernelPoll", get_original("gevent.select", "poll"))
    _patch("multisock.select", "_KernelEpoll", GreenEpoll)
    _patch("gevent.select", "select", mselect.select)
    _patch("gevent.select", "poll", mselect.poll)
    _patched_modules.update({"gevent.socket", "gevent.select"})
    _patch_selectors()


def _patch_selectors() -> None:
    """Under gevent's ``selectors`` patch, ``DefaultSelector`` stays gevent's choice, its
    ``GeventSelector``, taught userspace sockets; multisock's ``SelectSelector`` waits in
    gevent's select, so it carries gevent's mark of a cooperative ``_select``."""
    import gevent.selectors

    from multisock.monkey import _patch, _patch_class, is_patched
    from multisock.selectors_shim import MultisockSelectSelector

    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is None or not gevent_monkey.is_module_patched("selectors"):
        return
    selector = gevent.selectors.GeventSelector
    if not getattr(selector.register, "multisock_hook", False):
        _patch_class("gevent.selectors", "GeventSelector", "register",
                     _green_register(selector.register))
    if is_patched("selectors"):
        _patch("selectors", "DefaultSelector", selector)
    MultisockSelectSelector._select._gevent_monkey = True  # type: ignore[attr-defined]


def _check_networks() -> None:
    """A network already on the threads backend would block the hub: say what to do."""
    from multisock.net.backends import live_drivers

    threads = [d.name for d in live_drivers() if d.backend != "gevent"]
    if threads:
        raise RuntimeError(
            f"multisock: virtual network(s) {', '.join(sorted(threads))} were created on the "
            "threads backend before gevent patched; their sockets would block every greenlet. "
            "Call gevent.monkey.patch_all() before multisock.monkey.patch_all() and before "
            "creating networks or sockets, or use 'python -m multisock run --gevent script.py' "
            "or, with MULTISOCK=1, MULTISOCK_GEVENT=1 (or close those networks first)."
        )


def _on_gevent_event(event: Any) -> None:
    """zope.event subscriber: re-apply multisock after gevent patched on top of it."""
    if type(event).__module__ != "gevent.events":
        return
    from multisock import monkey

    kind = type(event).__name__
    if not monkey.is_patched("socket"):
        return
    if kind == "GeventWillPatchAllEvent" or (
            kind == "GeventWillPatchModuleEvent" and event.module_name == "socket"):
        _check_networks()
    elif kind == "GeventDidPatchModuleEvent" and event.module_name in (
            "socket", "select", "selectors"):
        getattr(monkey, f"patch_{event.module_name}")()
    elif kind == "GeventDidPatchAllEvent":
        monkey.patch_socket()
        monkey.patch_select()
        monkey.patch_selectors()
        patch_gevent()


def integrate() -> None:
    """Called by ``multisock.monkey.patch_all()``: patch gevent now if it has patched the
    process, and in any case follow gevent patching later (the other order)."""
    global _subscribed
    if not _subscribed:
        try:
            zope_event = importlib.import_module("zope.event")
        except ImportError:  # no gevent installed (gevent depends on zope.event)
            return
        zope_event.subscribers.append(_on_gevent_event)
        _subscribed = True
    if gevent_patched() and "gevent" in sys.modules:
        patch_gevent()


def disintegrate() -> None:
    """Stop following gevent (``unpatch_all``)."""
    global _subscribed
    if _subscribed:
        subscribers = importlib.import_module("zope.event").subscribers
        if _on_gevent_event in subscribers:
            subscribers.remove(_on_gevent_event)
        _subscribed = False
