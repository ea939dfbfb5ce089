"""The driver: one lock, one timer queue and a ready queue per network.

Run-to-completion: a socket call takes the lock, works on the stack, and before
releasing drains the ready queue — so a ``send()`` over an ideal link pushes the
segment into the peer's receive buffer, and the peer's ACK back, inside the
same call. Deliveries are queued rather than called recursively, so a long
exchange never deepens the Python stack.

A drain has a budget (``Driver.drain_budget`` callbacks): whatever is still queued
when it is spent continues on the driver thread, woken at once, in passes of the
same budget with the lock released between them. No exchange that feeds itself (an
ACK loop, a bug) can keep a socket call from returning or the lock from other threads.

Timers (link delays, TCP timers, reassembly expiry) live in one heap; a daemon
thread sleeps in the kernel's selector (epoll; ``select()`` would spin on an fd
past FD_SETSIZE, and the gateway registers a kernel socket per flow) — on a wake-up pipe
plus any registered fds (a TUN device, the gateway's kernel sockets) —
until the earliest timer, a readable device, or a wake-up because an earlier timer
was added or a drain left work. It never busy-waits, and it does not hold the lock
while it sleeps. The driver is the only place that reads the clock.
"""

from __future__ import annotations

import heapq
import itertools
import os
import select as _select_module
import selectors
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar


def _kernel_selector_class() -> type[selectors.BaseSelector]:
    """The stdlib's DefaultSelector (epoll on Linux), taken at import: before activation
    replaces ``selectors``' classes with multisock's, and from gevent's saved originals
    if gevent patched ``selectors`` first."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("selectors"):
        cls: type[selectors.BaseSelector] = gevent_monkey.get_original(
            "selectors", "DefaultSelector"
        )
        return cls
    return selectors.DefaultSelector


_KernelSelector = _kernel_selector_class()


def _kernel_poll() -> Callable[[], Any]:
    """``select.poll`` as the kernel gives it, taken at import like the selector class
    (activation and gevent replace the module's; gevent removes ``poll``)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("select"):
        original: Callable[[], Any] = gevent_monkey.get_original("select", "poll")
        return original
    return _select_module.poll


_new_poll: Final = _kernel_poll()


class Timed(Protocol):
    def on_deadline(self, now: float) -> None: ...


class TimerHandle:
    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


# the pid of this process, refreshed in a forked child: comparing with a driver's own pid
# costs an attribute read, where ``os.getpid()`` on every socket call is a system call
_current_pid: Final = [os.getpid()]


def _after_fork_in_child() -> None:
    _current_pid[0] = os.getpid()
    # the forking thread's wake-up eventfd is shared with the parent's thread: a new one
    _waiters.__dict__.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Operation:
    """The context manager ``Driver.operation()`` returns; stateless, so re-entrant."""

    __slots__ = ("driver", "acquire", "release")

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        # the lock's bound methods, taken once: a method call on the lock (a C object of
        # another type, unknown to compiled code) would look the name up on every call
        self.acquire: Callable[[], Any] = driver.lock.acquire
        self.release: Callable[[], Any] = driver.lock.release

    def __enter__(self) -> None:
        driver = self.driver
        if _current_pid[0] != driver.pid:
            raise OSError(
                "multisock: this virtual network belongs to the parent process; its driver "
                "does not survive fork() (use threads, or create a new Network in the child)"
            )
        self.acquire()
        driver.depth += 1

    def __exit__(self, *exc: object) -> None:
        driver = self.driver
        try:
            driver.drain()
        finally:
            depth = driver.depth - 1
            driver.depth = depth
            if depth or not driver.wakes:
                self.release()
            else:
                # the threads this operation made ready are woken once the lock is free,
                # each by a system call that releases the GIL: a woken thread finds both free
                wakes = driver.wakes
                driver.wakes = []
                self.release()
                for waiter in wakes:
                    waiter.wake()


_Class = TypeVar("_Class", bound=type)


def _python_class(cls: _Class) -> _Class:
    """Keeps a class an ordinary Python class in the compiled build; identity at run time.

    mypyc compiles a class with a decorator it does not know as a non-native class (its
    methods compiled, its instances plain objects): for the simulation's exception classes,
    which programs catch and subclass like any exception, and for ``_Waiter``, whose
    ``__del__`` closes its eventfd when its thread's locals go."""
    return cls


_waiters = threading.local()
_NO_WAKES: Final[list[Any]] = []  # only ever iterated


@_python_class
class _Waiter:
    """A thread's wake-up: an eventfd it blocks on in ``os.eventfd_read`` (reused by every
    wait of the thread). The waker's ``os.eventfd_write`` releases the GIL for its system
    call, so the woken thread can take the GIL at once - where releasing a
    ``threading.Lock`` keeps it, and a woken thread's first act is to block on the GIL."""

    __slots__ = ("fd", "poll")

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC)
        self.poll: Any = None  # made by the first wait with a timeout

    def wake(self) -> None:
        try:
            os.eventfd_write(self.fd, 1)
        except OSError:
            pass  # closed under us (the thread ended): nobody to wake

    def wait(self, timeout: float | None) -> bool:
        """Until woken (True) or ``timeout`` seconds passed (False); 0: only a pending one."""
        if timeout is not None and not self.pending(timeout):
            return False
        self.consume()
        return True

    def pending(self, timeout: float = 0.0) -> bool:
        """Is a wake-up there (waiting up to ``timeout`` seconds for one)? Not consumed."""
        poll = self.poll
        if poll is None:
            poll = self.poll = _new_poll()
            poll.register(self.fd, _select_module.POLLIN)
        return bool(poll.poll(max(timeout, 0.0) * 1000.0))

    def consume(self) -> None:
        """Take the wake-up (blocks until one lands). A signal's handler runs and the read
        goes on, as a lock's acquire does (PEP 475): ``os.eventfd_read`` alone raises
        InterruptedError instead, which a blocked ``sendall`` would pass to its caller."""
        while True:
            try:
                os.eventfd_read(self.fd)
                return
            except InterruptedError:
                continue

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _thread_waiter() -> _Waiter:
    """This thread's waiter."""
    waiter: _Waiter | None = getattr(_waiters, "event", None)
    if waiter is None:
        waiter = _waiters.event = _Waiter()
    return waiter


class WaitQueue:
    """What a blocked socket call sleeps on with the threads backend.

    It does ``threading.Condition``'s job for the one pattern the socket cores use - wait
    with the driver's lock held, ``notify_all`` - at less cost: waiting costs no lock
    allocation and notifying no deque walk, and both happen once per segment on a blocking
    socket (docs/performance.md). Spurious wake-ups are possible, as with a condition; the
    callers loop on their own predicate.
    """

    __slots__ = ("_lock", "_waiters", "_driver")

    def __init__(self, lock: Any, driver: Driver) -> None:
        self._lock = lock  # the driver's RLock, held by every caller
        self._waiters: list[_Waiter] = []
        self._driver = driver

    def wait(self, timeout: float | None = None) -> bool:
        waiter = _thread_waiter()
        self._waiters.append(waiter)
        driver = self._driver
        # the lock is let go for the wait, this operation's part in it too: wakes it owes
        # go now, and whoever takes the lock meanwhile owes its own
        depth = driver.depth
        driver.depth = 0
        wakes = driver.owed_wakes()
        saved = self._lock._release_save()
        got = False
        try:
            for other in wakes:
                other.wake()
            got = waiter.wait(timeout)
        finally:
            self._lock._acquire_restore(saved)
            driver.depth = depth
            if not got:
                # timed out, but maybe notified meanwhile: the signal is taken back, so
                # no wait of this thread's returns early because of this one
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter in driver.wakes:
                    driver.wakes.remove(waiter)  # owed by an operation still running
                else:
                    waiter.consume()  # written, or being written once a lock was let go
        return got

    def notify_all(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            driver = self._driver
            if driver.depth:
                driver.wakes.extend(waiters)  # woken when the operation lets the lock go
            else:
                for waiter in waiters:
                    waiter.wake()


class Driver:
    """Owns time and concurrency for one network.

    A native class in the compiled build (its attributes are struct fields, its methods
    direct calls: every socket call and every delivered packet passes through it), so it
    has no ``__weakref__``: ``net.backends`` keeps live drivers through a weakly held
    registration object instead (``registration``)."""

    backend = "threads"  # net.gevent_driver.GeventDriver is the cooperative one
    # callbacks one drain() may run; far above what a socket call queues (a send buffer's
    # segments and their ACKs), so only a loop that feeds itself ever reaches it
    drain_budget = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic, name: str = "multisock") -> None:
        self.clock = clock
        self.name = name
        self.lock = self.new_lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sleeping_until: float | None = None  # what the driver thread sleeps towards
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        self._selector = _KernelSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self.passes = 0  # the driver thread's loop passes: a test's measure of idleness
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._ready: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._draining = False
        # (not "_thread": mypyc names the C field after the attribute, and __thread is a C keyword)
        self._runner: threading.Thread | None = None
        self._closed = False
        # insertion-ordered set: a callback queued twice runs once (bound methods compare
        # equal when they bind the same function to the same object)
        self._after_drain: dict[Callable[[], None], None] = {}
        self._operation = _Operation(self)
        # nesting of operations() holding the lock, and the waiters they made ready, woken
        # once the outermost lets it go (_Operation.__exit__)
        self.depth = 0
        self.wakes: list[_Waiter] = []
        self.errors: list[BaseException] = []
        self.pid = os.getpid()  # a forked child gets a dead copy: see operation()
        self.origin = clock()  # the network's time 0: ``Network.at`` and ``Link.down(at=)``
        self.registration: object | None = None  # net.backends' weakly held entry for it

    # ----------------------------------------------------------------- queues

    def now(self) -> float:
        return self.clock()

    def wall(self) -> float:
        """Wall-clock time for a capture's timestamps (a virtual driver gives its own)."""
        return time.time()

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` before the current locked operation returns."""
        self._ready.append((callback, args))

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        handle = TimerHandle(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        self._ensure_thread()
        sleeping = self._sleeping_until
        if sleeping is None or when < sleeping:
            self._wake()
        return handle

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending already) or closed

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (lock held) whenever ``fd`` is readable (e.g. a TUN device)."""
        with self.lock:
            self._readers[fd] = callback
            self._interest(fd)
            self._wake()

    def remove_reader(self, fd: int) -> None:
        with self.lock:
            if self._readers.pop(fd, None) is not None:
                self._interest(fd)
            self._wake()

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (lock held) whenever ``fd`` is writable (a kernel socket of the
        gateway whose connect is under way, or whose send buffer was full)."""
        with self.lock:
            self._writers[fd] = callback
            self._interest(fd)

    def remove_writer(self, fd: int) -> None:
        with self.lock:
            if self._writers.pop(fd, None) is not None:
                self._interest(fd)

    def _interest(self, fd: int) -> None:
        """Tell the selector what ``fd`` is now watched for (lock held). It is unregistered
        first: a number closed without remove_reader/remove_writer may have been reused, and
        epoll forgot the old file. The selector is persistent (epoll), so a thread asleep
        in it sees the change without being woken."""
        if self._closed:
            return
        events = ((selectors.EVENT_READ if fd in self._readers else 0)
                  | (selectors.EVENT_WRITE if fd in self._writers else 0))
        self._unregister(fd)
        if events:
            self._selector.register(fd, events)
            self._ensure_thread()

    def _unregister(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def cooperate(self) -> None:
        """A point (lock not held) where a cooperative driver lets others run: after a
        connect that an ideal link completed at once, where the kernel would have had the
        caller wait for EINPROGRESS. Threads need nothing here."""

    def new_lock(self) -> Any:
        """The network's one lock (a cooperative driver returns a greenlet-aware one)."""
        return threading.RLock()

    def new_condition(self) -> Any:
        """What a socket core blocks on: a :class:`WaitQueue` on this driver's lock.

        A cooperative driver (``net.gevent_driver``) returns a greenlet-friendly equivalent."""
        return WaitQueue(self.lock, self)

    def after_drain(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once after the ready queue empties (e.g. re-arm a host's timer)."""
        self._after_drain[callback] = None

    def drain(self) -> None:
        """Run what is ready, up to ``drain_budget`` callbacks; what is left then continues
        on the driver (``_continue_later``). Safe to call re-entrantly (the outer call
        does the work)."""
        if self._draining:
            return
        self._draining = True
        try:
            ready = self._ready
            popleft = ready.popleft
            budget = self.drain_budget
            while True:
                while ready:
                    if budget <= 0:
                        self._continue_later()
                        return
                    budget -= 1
                    callback, args = popleft()
                    try:  # (inline rather than _guarded: every delivered packet passes here)
                        callback(*args)
                    except Exception as exc:  # noqa: BLE001 - the driver must survive
                        self._record(exc)
                if not self._after_drain:
                    break
                if budget <= 0:
                    self._continue_later()
                    return
                pending, self._after_drain = self._after_drain, {}
                budget -= len(pending)
                for callback in pending:
                    try:
                        callback()
                    except Exception as exc:  # noqa: BLE001 - the driver must survive
                        self._record(exc)
        finally:
            self._draining = False

    def _continue_later(self) -> None:
        """A drain spent its budget: the driver thread goes on with the rest at once."""
        self._ensure_thread()
        self._wake()

    @property
    def backlog(self) -> bool:
        """Work a budget-limited drain left (the driver is continuing it)."""
        return bool(self._ready) or bool(self._after_drain)

    def _guarded(self, callback: Callable[..., None], *args: Any) -> None:
        """A bug in one callback must not kill the driver: record it and go on."""
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001 - the driver must survive; errors are kept
            self._record(exc)

    def _record(self, exc: Exception) -> None:
        self.errors.append(exc)
        if len(self.errors) > 100:
            del self.errors[:50]
        import traceback

        traceback.print_exception(exc)

    def operation(self) -> _Operation:
        """``with driver.operation():`` holds the lock for one socket call and drains
        deliveries before releasing it. (One reusable object, not a generator-based
        context manager: every socket call passes here, see docs/performance.md.)"""
        return self._operation

    # ----------------------------------------------------------------- timers

    def run_due(self) -> float | None:
        """Fire due timers (lock held); returns the next deadline or None."""
        timers = self._timers
        while timers:
            when, _, handle = timers[0]
            if handle.cancelled:
                heapq.heappop(timers)
                continue
            now = self.clock()
            if when > now:
                return when
            heapq.heappop(timers)
            self._guarded(handle.callback, *handle.args)
            self.drain()
        return None

    def start(self) -> None:
        """Start the driver thread now rather than at the first timer (activation does, so
        the thread exists before the program's first socket, like the kernel's machinery)."""
        with self.lock:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._runner is None and not self._closed:
            self._runner = threading.Thread(target=self._run, name=f"{self.name}-driver", daemon=True)
            self._runner.start()

    def _run(self) -> None:
        wake_r = self._wake_r
        select = self._selector.select
        while True:
            with self.lock:
                if self._closed:
                    return
                self.depth += 1  # (the wakes it owes go once the lock is let go)
                try:
                    self.passes += 1
                    if self._ready or self._after_drain:
                        self.drain()  # one budget of what a drain left (the lock is freed below)
                    deadline = self.run_due()
                    backlog = self.backlog
                    if backlog:
                        self._sleeping_until = float("-inf")  # no wake-up needed: not sleeping
                    else:
                        self._sleeping_until = deadline if deadline is not None else float("inf")
                finally:
                    self.depth -= 1
                    wakes = self.owed_wakes()
            for waiter in wakes:
                waiter.wake()
            if backlog:
                timeout: float | None = 0.0
            else:
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                events = select(timeout)
            except (OSError, ValueError):
                events = []  # the selector was closed under us (close()): the next pass ends
            with self.lock:
                self._sleeping_until = None
                if self._closed:
                    return
                self.depth += 1
                try:
                    self._dispatch(events, wake_r)
                finally:
                    self.depth -= 1
                    wakes = self.owed_wakes()
            for waiter in wakes:
                waiter.wake()

    def owed_wakes(self) -> list[_Waiter]:
        """The waiters made ready while the lock is held, taken (lock held) to be woken once
        it is let go: never the list that others fill once it is free."""
        wakes = self.wakes
        if not wakes:
            return _NO_WAKES
        self.wakes = []
        return wakes

    def _dispatch(self, events: list[tuple[Any, int]], wake_r: int) -> None:
        """The fds the selector reported (lock held): the wake-up pipe, readers, writers."""
        for key, mask in events:
            fd = key.fd
            if fd == wake_r:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            # (the selector reports an error or hang-up as both, masked by interest)
            if mask & selectors.EVENT_WRITE:
                callback = self._writers.get(fd)
                if callback is not None:
                    self._guarded(callback)
                    self.drain()
            if mask & selectors.EVENT_READ:
                callback = self._readers.get(fd)
                if callback is not None:
                    self._guarded(callback)
                    self.drain()

    def close(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._closed = True
            self._timers.clear()
            self._readers.clear()
            self._wake()
        thread = self._runner
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def closed(self) -> bool:
        return self._closed

    def pending_timers(self) -> int:
        return sum(1 for _, _, h in self._timers if not h.cancelled)
