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


# ------------------------------------------------------------------ patching

def patch_gevent() -> None:
    """Point gevent's socket classes, servers, DNS and readiness helpers at multisock."""
    import gevent._socket3
    import gevent._socketcommon
    import gevent.select
    import gevent.server
    import gevent.socket

    import multisock.select as mselect
    import multisock.socket as msock
    from multisock.monkey import _patch, _patched_modules, get_original

    for name in sorted(msock._OURS):
        for module in (gevent.socket, gevent._socket3, gevent._socketcommon):
            if hasattr(module, name) and hasattr(msock, name):
                _patch(module.__name__, name, getattr(msock, name))
    _patch("gevent.server", "GeventSocket", msock.socket)
    for name, func in (("wait_read", wait_read), ("wait_write", wait_write),
                       ("wait_readwrite", wait_readwrite)):
        for module in (gevent.socket, gevent._socketcommon):
            _patch(module.__name__, name, func)
    # multisock.select sleeps in gevent's select (cooperative); gevent.select.select
    # becomes multisock's, which knows userspace sockets' write readiness.
    gevent_select = get_original("gevent.select", "select") \
        if "gevent.select" in _patched_modules else gevent.select.select
    _patch("multisock.select", "_select", gevent_select)
    _patch("gevent.select", "select", mselect.select)
    _patch("gevent.select", "poll", mselect.poll)
    _patched_modules.update({"gevent.socket", "gevent.select"})


def _check_networks() -> None:
    """A network already on the threads backend would block the hub: say what to do."""
    from multisock import runtime

    host = runtime._default_host
    if host is not None and host.driver.backend != "gevent":
        raise RuntimeError(
            "multisock: the process's virtual network was created on the threads backend "
            "before gevent patched; its sockets would block every greenlet. Call "
            "gevent.monkey.patch_all() before multisock.monkey.patch_all() and before "
            "creating sockets, or use 'python -m multisock run --gevent script.py'."
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
