"""What a greenlet waiting on a userspace socket holds on gevent's hub.

gevent's kernel socket waits on two libev io watchers, ``_read_event`` and ``_write_event``,
and programs written for gevent rely on two consequences:

* *liveness*: a started watcher is *referenced* by default, so while a greenlet is blocked in
  ``recv`` the hub's loop keeps running (``gevent.wait()`` does not return, the waiting greenlet
  gets no ``LoopExit``); ``sock.ref = False`` unreferences both watchers (a background reader
  that must not keep the program's ``gevent.wait()`` alive);
* *one waiter per direction*: a watcher has one callback, so a second greenlet waiting to read
  (or to write) the same socket gets ``ConcurrentObjectUseError``, an AssertionError, at once.

A userspace socket parks on the stack's condition (a gevent ``Event``), which holds nothing on
the loop. So each socket that waits gets the same pair of watchers, libev *async* watchers that
nobody ever sends: started with the waiting greenlet's ``switch`` as callback for the duration
of a wait, they cost nothing while idle, hold the loop exactly when a kernel socket's io watcher
would (and only if ``ref``), make the concurrent-use check gevent's own test (``callback is not
None``), and let ``hub.cancel_wait(sock._read_event, exc)`` throw into the waiter as it does for
a kernel socket. Waits that are not a socket's own read or write (gevent's ``wait_read(fd)``,
the TLS layer's transport waits) hold one shared, counted async watcher instead, with no
concurrent-use check.
"""

from __future__ import annotations

from typing import Any

from gevent import getcurrent

# the kinds of wait (``Core.wait(..., kind=)``)
OTHER = 0  # no per-direction watcher: liveness only
READ = 1
WRITE = 2


class SocketEvents:
    """A socket's ``_read_event``/``_write_event`` (made on its first wait or ``ref`` access)."""

    __slots__ = ("read", "write")

    def __init__(self, loop: Any) -> None:
        self.read = loop.async_()
        self.write = loop.async_()

    @property
    def ref(self) -> bool:
        """gevent's ``socket.ref``: either watcher referenced."""
        return bool(self.read.ref or self.write.ref)

    @ref.setter
    def ref(self, value: bool) -> None:
        self.read.ref = value
        self.write.ref = value


class KeepAlive:
    """One referenced async watcher started while at least one uncounted-direction wait is on."""

    __slots__ = ("_watcher", "_count")

    def __init__(self, loop: Any) -> None:
        self._watcher = loop.async_()
        self._count = 0

    def hold(self) -> None:
        self._count += 1
        if self._count == 1:
            self._watcher.start(_never)

    def release(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._watcher.stop()


def _never() -> None:
    """The keep-alive watcher's callback (nobody sends it)."""


class Waiting:
    """``with``: the greenlet is about to sleep in a wait of ``kind`` on the socket whose
    events are ``events`` (one object per wait)."""

    __slots__ = ("_events", "_kind", "_keepalive", "_watcher", "_held")

    def __init__(self, events: SocketEvents, kind: int, keepalive: KeepAlive) -> None:
        self._events = events
        self._kind = kind
        self._keepalive = keepalive
        self._watcher: Any = None
        self._held = False

    def __enter__(self) -> None:
        events = self._events
        kind = self._kind
        if kind == OTHER:
            if events.ref:
                self._keepalive.hold()
                self._held = True
            return
        watcher = events.read if kind == READ else events.write
        if watcher.callback is not None:
            from gevent.exceptions import ConcurrentObjectUseError

            # gevent's wording (``_hub_primitives._primitive_wait``)
            raise ConcurrentObjectUseError(
                f"This socket is already used by another greenlet: {watcher.callback!r}")
        watcher.start(getcurrent().switch)
        self._watcher = watcher

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self._keepalive.release()
        watcher = self._watcher
        if watcher is not None:
            self._watcher = None
            watcher.stop()
