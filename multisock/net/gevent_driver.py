"""The cooperative driver: the stack's timers and device fds run on the gevent hub.

Same run-to-completion model as :class:`~multisock.net.driver.Driver` (the lock,
the ready queue, the timer heap are inherited unchanged); only *where time passes*
differs. Instead of a daemon thread sleeping in ``select()``:

* the earliest timer is one libev timer watcher on the hub, unreferenced (like a
  daemon thread, a pending TCP timer does not keep ``gevent.wait()`` or the
  program alive), re-armed when an earlier timer is added;
* a device fd (TUN) is a libev io watcher;
* what a budget-limited drain left continues in a hub callback (one budget each, so
  greenlets run in between);
* a core blocks on :class:`GreenCondition`: it releases the driver lock and parks
  the greenlet on a gevent ``Event``, so a blocking ``recv`` yields to the hub.
* while it sleeps, the socket's watcher for that direction is started
  (``net.gevent_waits``): the hub's loop stays alive as for gevent's kernel socket
  (unless ``sock.ref = False``) and a second waiter gets ConcurrentObjectUseError.

The lock is a ``gevent.lock.RLock``. Nothing switches greenlets while holding it
(the only switch point is ``GreenCondition.wait``, which releases it), so hub
callbacks (the timer, io watchers) always find it free.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from gevent import get_hub, getcurrent, sleep
from gevent.event import Event
from gevent.lock import RLock

from multisock.net.driver import Driver
from multisock.net.gevent_waits import KeepAlive, SocketEvents, Waiting


class GreenCondition:
    """``threading.Condition``'s ``wait``/``notify_all`` for greenlets sharing one lock.

    Waiting from the hub itself (a watcher callback, e.g. gevent's servers reading an
    unwrapped socket) cannot block: it fails with EAGAIN, which is what gevent's code
    expects there from the non-blocking kernel socket it normally holds.
    """

    __slots__ = ("_lock", "_event", "_hub")

    def __init__(self, lock: Any, hub: Any) -> None:
        self._lock = lock
        self._event: Event | None = None
        self._hub = hub

    def wait(self, timeout: float | None = None) -> bool:
        if getcurrent() is self._hub:
            # what gevent's non-blocking kernel socket raises (the facade's would_block(),
            # built here: the driver sits below the facade)
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        event = self._event
        if event is None:
            event = self._event = Event()
        saved = self._lock._release_save()
        try:
            return bool(event.wait(timeout))
        finally:
            self._lock._acquire_restore(saved)

    def notify_all(self) -> None:
        event = self._event
        if event is not None:
            self._event = None  # later waiters get a fresh event; these ones wake
            event.set()

    def notify(self) -> None:
        """As ``notify_all`` (a method, not an alias: a native class's alias is dropped)."""
        self.notify_all()


class GeventDriver(Driver):
    """A :class:`Driver` whose timers and device fds are watchers on the gevent hub."""

    backend = "gevent"

    def __init__(self, clock: Callable[[], float] = time.monotonic, name: str = "multisock") -> None:
        self.hub = get_hub()
        super().__init__(clock, name)
        self._timer: Any = None
        self._io: dict[int, Any] = {}
        self._wio: dict[int, Any] = {}  # the gateway's kernel sockets waiting to be writable
        self._continuing = False  # a hub callback will go on with a drain's leftovers
        self._keepalive = KeepAlive(self.hub.loop)

    def events(self, core: Any) -> SocketEvents:
        """The core's ``_read_event``/``_write_event`` pair (see ``net.gevent_waits``)."""
        events = core.green_events
        if events is None:
            events = core.green_events = SocketEvents(self.hub.loop)
        return events

    def waiting(self, core: Any, kind: int) -> Any:
        """``with driver.waiting(core, kind):`` around a greenlet's sleep in ``core.wait``:
        holds the hub's loop as gevent's kernel socket would (unless ``ref`` is False), and
        refuses a second waiter in the same direction with gevent's ConcurrentObjectUseError.
        From the hub itself nothing sleeps (the wait raises EAGAIN): nothing is held."""
        if getcurrent() is self.hub:
            return nullcontext()
        return Waiting(self.events(core), kind, self._keepalive)

    def cooperate(self) -> None:
        """Yield once to the hub (gevent's own connect waits at least once for EINPROGRESS):
        a greenlet opening thousands of connections in a loop must let the server accept."""
        if getcurrent() is not self.hub:
            sleep(0)

    def new_lock(self) -> RLock:
        return RLock()

    def new_condition(self) -> GreenCondition:
        return GreenCondition(self.lock, self.hub)

    # ----------------------------------------------------------------- timers

    def _ensure_thread(self) -> None:
        """No thread: the hub's loop is the thread."""

    def _wake(self) -> None:
        """An earlier timer was added (``call_at``): arm the hub timer for it."""
        self._arm()

    def _arm(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.stop()
            self._timer = None
        self._sleeping_until = None
        if self._closed or not self._timers:
            return
        when = self._timers[0][0]
        delay = max(0.0, when - self.clock())
        timer = self.hub.loop.timer(delay, 0.0, ref=False)
        timer.start(self._fire, update=True)
        self._timer = timer
        self._sleeping_until = when

    def _fire(self) -> None:
        """Hub callback: run due timers to completion, then sleep towards the next one."""
        self._timer = None
        self._sleeping_until = float("-inf")  # timers added while firing need no wake-up
        with self.lock:
            if self._closed:
                return
            self.run_due()
            self._arm()

    # ----------------------------------------------------------------- drains

    def _continue_later(self) -> None:
        """A drain spent its budget: go on in a hub callback, after what is already
        scheduled there (woken greenlets included), not in the caller's operation."""
        if not self._continuing:
            self._continuing = True
            self.hub.loop.run_callback(self._continue)

    def _continue(self) -> None:
        self._continuing = False
        with self.lock:
            if not self._closed:
                self.drain()  # (schedules the next pass itself while work is left)

    # ------------------------------------------------------------ device fds

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        with self.lock:
            self.remove_reader(fd)
            self._readers[fd] = callback
            watcher = self.hub.loop.io(fd, 1, ref=False)
            watcher.start(self._readable, fd)
            self._io[fd] = watcher

    def remove_reader(self, fd: int) -> None:
        with self.lock:
            self._readers.pop(fd, None)
            watcher = self._io.pop(fd, None)
            if watcher is not None:
                watcher.stop()
                watcher.close()

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        with self.lock:
            self.remove_writer(fd)
            self._writers[fd] = callback
            watcher = self.hub.loop.io(fd, 2, ref=False)
            watcher.start(self._writable, fd)
            self._wio[fd] = watcher

    def remove_writer(self, fd: int) -> None:
        with self.lock:
            self._writers.pop(fd, None)
            watcher = self._wio.pop(fd, None)
            if watcher is not None:
                watcher.stop()
                watcher.close()

    def _writable(self, fd: int) -> None:
        with self.lock:
            callback = self._writers.get(fd)
            if callback is not None and not self._closed:
                self._guarded(callback)
                self.drain()

    def _readable(self, fd: int) -> None:
        with self.lock:
            callback = self._readers.get(fd)
            if callback is not None and not self._closed:
                self._guarded(callback)
                self.drain()

    # --------------------------------------------------------------- lifetime

    def close(self) -> None:
        with self.lock:
            for fd in list(self._io):
                self.remove_reader(fd)
            for fd in list(self._wio):
                self.remove_writer(fd)
        super().close()  # its _wake() reaches _arm(), which stops the hub timer once closed
