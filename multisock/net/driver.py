"""The driver: one lock, one timer queue and a ready queue per network.

Run-to-completion: a socket call takes the lock, works on the stack, and before
releasing drains the ready queue — so a ``send()`` over an ideal link pushes the
segment into the peer's receive buffer, and the peer's ACK back, inside the
same call. Deliveries are queued rather than called recursively, so a long
exchange never deepens the Python stack.

Timers (link delays, TCP timers, reassembly expiry) live in one heap; a daemon
thread sleeps in the kernel's ``epoll`` — on a wake-up pipe plus any registered fds
(a TUN device, the gateway's kernel sockets) — until the earliest timer, a readable device, or a wake-up because
an earlier timer was added. It never busy-waits, and it does not hold the lock
while it sleeps. The driver is the only place that reads the clock.
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

# the kernel's, taken before activation can replace select.epoll with multisock's
_kernel_epoll = getattr(select, "epoll", None)
_EPOLLIN, _EPOLLOUT, _EPOLLERR, _EPOLLHUP = 0x001, 0x004, 0x008, 0x010  # sys/epoll.h


def _find_epoll() -> Any:
    """The kernel's epoll class: gevent's monkey-patching removes it from ``select`` (and
    keeps the original), for a threads driver made after that."""
    if _kernel_epoll is not None:
        return _kernel_epoll
    try:
        from gevent import monkey

        return monkey.get_original("select", "epoll")
    except (ImportError, AttributeError) as exc:
        raise OSError("multisock: the threads driver needs the kernel's select.epoll") from exc


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
_current_pid = [os.getpid()]


def _after_fork_in_child() -> None:
    _current_pid[0] = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Operation:
    """The context manager ``Driver.operation()`` returns; stateless, so re-entrant."""

    __slots__ = ("driver", "lock")

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.lock = driver.lock

    def __enter__(self) -> None:
        if _current_pid[0] != self.driver.pid:
            raise OSError(
                "multisock: this virtual network belongs to the parent process; its driver "
                "does not survive fork() (use threads, or create a new Network in the child)"
            )
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        try:
            self.driver.drain()
        finally:
            self.lock.release()


_waiters = threading.local()


def _thread_waiter() -> Any:
    """This thread's waiter lock, kept *held* while nobody has signalled it (reused by every
    wait of the thread: no lock is allocated per wait, as ``threading.Condition`` does)."""
    waiter = getattr(_waiters, "lock", None)
    if waiter is None:
        waiter = _waiters.lock = threading.Lock()
        waiter.acquire()
    return waiter


class WaitQueue:
    """What a blocked socket call sleeps on with the threads backend.

    It does ``threading.Condition``'s job for the one pattern the socket cores use - wait
    with the driver's lock held, ``notify_all`` - at less cost: waiting costs no lock
    allocation and notifying no deque walk, and both happen once per segment on a blocking
    socket (docs/performance.md). Spurious wake-ups are possible, as with a condition; the
    callers loop on their own predicate.
    """

    __slots__ = ("_lock", "_waiters")

    def __init__(self, lock: Any) -> None:
        self._lock = lock  # the driver's RLock, held by every caller
        self._waiters: list[Any] = []

    def wait(self, timeout: float | None = None) -> bool:
        waiter = _thread_waiter()
        self._waiters.append(waiter)
        saved = self._lock._release_save()
        got = False
        try:
            if timeout is None:
                got = waiter.acquire()
            elif timeout > 0:
                got = waiter.acquire(True, timeout)
            else:
                got = waiter.acquire(False)
        finally:
            self._lock._acquire_restore(saved)
            if not got:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:
                    waiter.acquire(False)  # signalled after the timeout: take it back
        return got

    def notify_all(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                waiter.release()


class Driver:
    """Owns time and concurrency for one network."""

    backend = "threads"  # net.gevent_driver.GeventDriver is the cooperative one

    def __init__(self, clock: Callable[[], float] = time.monotonic, name: str = "multisock") -> None:
        self.clock = clock
        self.name = name
        self.lock = self.new_lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sleeping_until: float | None = None  # what the driver thread sleeps towards
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        # one persistent kernel epoll (not select(): the gateway registers a kernel socket per
        # flow, thousands of fds, beyond select's FD_SETSIZE and its scan per wake-up)
        self._epoll: Any = self._make_poller()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._ready: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._draining = False
        self._thread: threading.Thread | None = None
        self._closed = False
        # insertion-ordered set: a callback queued twice runs once (bound methods compare
        # equal when they bind the same function to the same object)
        self._after_drain: dict[Callable[[], None], None] = {}
        self._operation = _Operation(self)
        self.errors: list[BaseException] = []
        self.pid = os.getpid()  # a forked child gets a dead copy: see operation()

    def _make_poller(self) -> Any:
        """The persistent epoll the driver thread sleeps in, the wake-up pipe in it."""
        epoll = _find_epoll()()
        epoll.register(self._wake_r, _EPOLLIN)
        return epoll

    # ----------------------------------------------------------------- queues

    def now(self) -> float:
        return self.clock()

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

    def remove_reader(self, fd: int) -> None:
        with self.lock:
            if self._readers.pop(fd, None) is not None:
                self._interest(fd)

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
        """Tell the kernel's epoll what ``fd`` is now watched for (lock held). The epoll
        object is persistent, so the driver thread need not wake up for a change."""
        if self._closed:
            return
        mask = (_EPOLLIN if fd in self._readers else 0) | (_EPOLLOUT if fd in self._writers else 0)
        try:
            if mask:
                try:
                    self._epoll.modify(fd, mask)
                except FileNotFoundError:
                    self._epoll.register(fd, mask)
            else:
                self._epoll.unregister(fd)
        except OSError:
            pass  # an fd closed under us: epoll forgot it already
        self._ensure_thread()

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
        return WaitQueue(self.lock)

    def after_drain(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once after the ready queue empties (e.g. re-arm a host's timer)."""
        self._after_drain[callback] = None

    def drain(self) -> None:
        """Run everything ready; safe to call re-entrantly (the outer call does the work)."""
        if self._draining:
            return
        self._draining = True
        try:
            ready = self._ready
            popleft = ready.popleft
            while True:
                while ready:
                    callback, args = popleft()
                    try:  # (inline rather than _guarded: every delivered packet passes here)
                        callback(*args)
                    except Exception as exc:  # noqa: BLE001 - the driver must survive
                        self._record(exc)
                if not self._after_drain:
                    break
                pending, self._after_drain = self._after_drain, {}
                for callback in pending:
                    try:
                        callback()
                    except Exception as exc:  # noqa: BLE001 - the driver must survive
                        self._record(exc)
        finally:
            self._draining = False

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
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-driver", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        wake_r = self._wake_r
        epoll = self._epoll
        while True:
            with self.lock:
                if self._closed:
                    return
                deadline = self.run_due()
                self._sleeping_until = deadline if deadline is not None else float("inf")
            timeout = -1.0 if deadline is None else max(0.0, deadline - self.clock())
            try:
                events = epoll.poll(timeout)
            except (OSError, ValueError):
                events = []  # closed under us: the next pass sees _closed
            with self.lock:
                self._sleeping_until = None
                if self._closed:
                    return
                for fd, mask in events:
                    if fd == wake_r:
                        try:
                            while os.read(wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                        continue
                    if mask & (_EPOLLOUT | _EPOLLERR | _EPOLLHUP):
                        callback = self._writers.get(fd)
                        if callback is not None:
                            self._guarded(callback)
                            self.drain()
                    if mask & ~_EPOLLOUT:
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
            self._writers.clear()
            self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._epoll is not None:
            self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def closed(self) -> bool:
        return self._closed

    def pending_timers(self) -> int:
        return sum(1 for _, _, h in self._timers if not h.cancelled)
